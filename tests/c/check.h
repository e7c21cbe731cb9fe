/* The checks every C test uses: a failed CHECK prints where and why (with Woolly's last
 * error message) and counts; FINISH reports and gives the exit status. */
#ifndef WOOLLY_TEST_CHECK_H
#define WOOLLY_TEST_CHECK_H

#include <stdio.h>

#include <woolly.h>

static int failures = 0;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            failures++;                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, " (last error: %s)\n", woolly_last_error());         \
        }                                                                         \
    } while (0)

/* The exit status of a test program named `name`. */
static inline int finish(const char *name) {
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
