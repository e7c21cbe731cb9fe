/* The hostile corpus (tests/hostile, written by tools/corpus) through the C API: every file
 * refused with the status and message its manifest names, never a crash; the harmless oddities
 * load and generate. Run under valgrind as well (the files are tiny). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char *field(char **line) {
    char *start = *line;
    char *tab = strchr(start, '\t');
    if (tab) {
        *tab = '\0';
        *line = tab + 1;
    } else {
        *line = start + strlen(start);
    }
    return start;
}

/* The chat runs on a thread with a 512 KiB stack, as some hosts run their workers: a template
 * built to exhaust the stack must give an error there too, not a signal. */
typedef struct {
    woolly_session *session;
    woolly_generate_params params;
    woolly_status status;
    char error[1024]; /* woolly_last_error is per thread: copied on the chat's thread */
} chat_job;

static void *chat_thread(void *arg) {
    chat_job *j = arg;
    woolly_chat_message msg = {"user", "the cat"};
    j->status = woolly_session_chat(j->session, &msg, 1, j->params, NULL, NULL);
    snprintf(j->error, sizeof j->error, "%s", woolly_last_error());
    return NULL;
}

static woolly_status chat_on_small_stack(woolly_session *session, woolly_generate_params gp,
                                         char *error, size_t cap) {
    chat_job j = {session, gp, WOOLLY_ERR_INTERNAL, ""};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    pthread_t t;
    CHECK(pthread_create(&t, &attr, chat_thread, &j) == 0, "a 512 KiB thread starts");
    pthread_join(t, NULL);
    pthread_attr_destroy(&attr);
    snprintf(error, cap, "%s", j.error);
    return j.status;
}

static void check_case(const char *dir, char *line) {
    char *file = field(&line), *stage = field(&line), *status = field(&line),
         *message = field(&line), *what = line;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);

    woolly_model_params mp = woolly_model_default_params();
    mp.preload = WOOLLY_PRELOAD_LAZY;
    woolly_model *model = (woolly_model *)1;
    woolly_status st = woolly_model_load(path, mp, &model);
    if (strcmp(stage, "load") == 0) {
        CHECK(strcmp(woolly_status_name(st), status) == 0, "%s (%s): %s, expected %s", file, what,
              woolly_status_name(st), status);
        CHECK(strstr(woolly_last_error(), message) != NULL, "%s: message lacks `%s`", file, message);
        CHECK(model == NULL, "%s: the handle is cleared on failure", file);
        woolly_model_free(model);
        return;
    }
    CHECK(st == WOOLLY_OK, "%s (%s) loads", file, what);
    if (st != WOOLLY_OK) return;
    woolly_session *session = NULL;
    st = woolly_session_create(model, woolly_session_default_params(), &session);
    CHECK(st == WOOLLY_OK, "%s: a session opens", file);
    woolly_generate_params gp = woolly_generate_default_params();
    gp.max_tokens = 2;
    gp.temperature = 0;
    gp.ignore_eos = true;
    char error[1024];
    st = chat_on_small_stack(session, gp, error, sizeof error);
    if (strcmp(stage, "chat") == 0) {
        CHECK(strcmp(woolly_status_name(st), status) == 0, "%s (%s): chat gave %s, expected %s",
              file, what, woolly_status_name(st), status);
        CHECK(strstr(error, message) != NULL, "%s: message `%s` lacks `%s`", file, error, message);
    } else {
        CHECK(st == WOOLLY_OK, "%s: chat works", file);
    }
    gp.max_tokens = 4;
    st = woolly_session_generate(session, "the cat", gp, NULL, NULL);
    CHECK(st == WOOLLY_OK, "%s: plain generation works", file);
    woolly_session_free(session);
    woolly_model_free(model);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_hostile <tests/hostile>\n");
        return 2;
    }
    char manifest[4096];
    snprintf(manifest, sizeof manifest, "%s/manifest.tsv", argv[1]);
    FILE *f = fopen(manifest, "r");
    CHECK(f != NULL, "%s opens", manifest);
    if (!f) return finish("test_hostile");
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        check_case(argv[1], line);
        n++;
    }
    fclose(f);
    CHECK(n >= 40, "the manifest lists %d files", n);
    printf("%d hostile files\n", n);
    return finish("test_hostile");
}
