/* Inputs that must not hang or mislead, from C: a FIFO as the model path (explicit,
 * WOOLLY_MODEL, the cache) and among the thermal sensors, the "model not found" message without
 * HOME, thread counts above the CPUs (capped, with a warning), empty token pieces (a valid ""),
 * and detokenized text holding a NUL byte (`len` is authoritative). A watchdog alarm turns a hang
 * into a failure. Argument: the synthetic model. */
#define _GNU_SOURCE
#include <woolly.h>

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char logged[16384];

static void on_log(woolly_log_level level, const char *message, void *ud) {
    (void)ud;
    if (level >= WOOLLY_LOG_WARN && strlen(logged) + strlen(message) + 2 < sizeof logged) {
        strcat(logged, message);
        strcat(logged, "\n");
    }
}

static void make_fifo(const char *path) {
    unlink(path);
    if (mkfifo(path, 0600) != 0) {
        perror("mkfifo");
        exit(2);
    }
}

static void mkdirs(const char *root, const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0700);
            *s = '/';
        }
    }
    mkdir(p, 0700);
}

/* Loading and estimating `path` (NULL: what Woolly resolves) fail with an IO error naming a FIFO. */
static void refused_as_fifo(const char *path, const char *what) {
    woolly_model *m = (woolly_model *)1;
    woolly_status st = woolly_model_load(path, woolly_model_default_params(), &m);
    CHECK(st == WOOLLY_ERR_IO, "%s: load gave %s", what, woolly_status_name(st));
    CHECK(m == NULL, "%s: no model on failure", what);
    CHECK(strstr(woolly_last_error(), "FIFO") != NULL, "%s: load message", what);
    woolly_memory_estimate est;
    st = woolly_model_estimate(path, woolly_model_default_params(), &est);
    CHECK(st == WOOLLY_ERR_IO, "%s: estimate gave %s", what, woolly_status_name(st));
    CHECK(strstr(woolly_last_error(), "FIFO") != NULL, "%s: estimate message", what);
}

struct pieces {
    int calls, empty, null;
    char first[64];
};

static bool on_piece(const char *piece, size_t len, int32_t id, void *ud) {
    (void)id;
    struct pieces *p = ud;
    p->calls++;
    if (piece == NULL) {
        p->null++;
        return true;
    }
    if (len == 0) {
        p->empty++;
        /* A valid empty string: readable, NUL-terminated. */
        if (piece[0] != '\0') p->null++;
    }
    if (!p->first[0] && len > 0 && len < sizeof p->first) {
        memcpy(p->first, piece, len);
        p->first[len] = 0;
    }
    return true;
}

static long worker_threads_metric(void) {
    static char buf[1 << 16];
    size_t len = 0;
    if (woolly_metrics_prometheus(buf, sizeof buf, &len) != WOOLLY_OK) return -1;
    const char *line = strstr(buf, "\nwoolly_worker_threads ");
    return line ? strtol(line + strlen("\nwoolly_worker_threads "), NULL, 10) : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_inputs <synthetic-llama.gguf>\n");
        return 2;
    }
    const char *synthetic = argv[1];
    alarm(120); /* the watchdog: a hang is killed by SIGALRM and fails the test */
    woolly_set_log_callback(on_log, NULL);

    char root[256], fifo[512], cached[1024], cache[512];
    snprintf(root, sizeof root, "/tmp/woolly-inputs-test-%d", (int)getpid());
    mkdir(root, 0700);

    /* A FIFO as the model path: explicit, through WOOLLY_MODEL, and in the cache. */
    snprintf(fifo, sizeof fifo, "%s/fifo.gguf", root);
    make_fifo(fifo);
    refused_as_fifo(fifo, "explicit");
    setenv("WOOLLY_MODEL", fifo, 1);
    refused_as_fifo(NULL, "WOOLLY_MODEL");
    unsetenv("WOOLLY_MODEL");
    snprintf(cache, sizeof cache, "%s/cache", root);
    mkdirs(root, "cache/woolly/models");
    snprintf(cached, sizeof cached, "%s/woolly/models/gemma-3-270m-q4_k_m.gguf", cache);
    make_fifo(cached);
    setenv("XDG_CACHE_HOME", cache, 1);
    refused_as_fifo(NULL, "the cache");
    unlink(cached);

    /* Nothing found, with neither XDG_CACHE_HOME nor HOME: the message still says where. */
    unsetenv("XDG_CACHE_HOME");
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    unsetenv("HOME");
    woolly_model *m = NULL;
    woolly_status st = woolly_model_load(NULL, woolly_model_default_params(), &m);
    CHECK(st == WOOLLY_ERR_MODEL_NOT_FOUND, "no model: %s", woolly_status_name(st));
    CHECK(strstr(woolly_last_error(), "WOOLLY_MODEL") && strstr(woolly_last_error(), "HOME") &&
              strstr(woolly_last_error(), "XDG_CACHE_HOME"),
          "the message names what was tried");
    if (home) {
        setenv("HOME", home, 1);
        free(home);
    }

    /* Threads above the CPUs this process may use: capped there, with a warning, and a
     * generation still completes. */
    cpu_set_t set;
    long cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    woolly_model_params mp = woolly_model_default_params();
    mp.n_threads = 1024;
    CHECK(woolly_model_load(synthetic, mp, &m) == WOOLLY_OK, "load the synthetic model");
    if (m) {
        woolly_session_params sp = woolly_session_default_params();
        sp.n_threads = 1024;
        woolly_session *s = NULL;
        logged[0] = 0;
        CHECK(woolly_session_create(m, sp, &s) == WOOLLY_OK, "session with 1024 threads");
        CHECK(strstr(logged, "1024 threads requested") && strstr(logged, "capped"), "warning: %s", logged);
        woolly_generate_params gp = woolly_generate_default_params();
        gp.max_tokens = 4;
        gp.temperature = 0;
        gp.ignore_eos = true;
        struct pieces first = {0};
        CHECK(woolly_session_generate(s, "the cat", gp, on_piece, &first) == WOOLLY_OK, "generate");
        long workers = worker_threads_metric();
        CHECK(workers >= 1 && workers <= cpus, "worker threads %ld with %ld CPUs", workers, cpus);
        CHECK(first.calls >= 4 && first.null == 0, "pieces: %d calls", first.calls);

        /* An empty piece is a valid "" (on_piece reads its first byte). When this generation
         * had none, the next one holds its first text back as a possible stop string. */
        char stop[80];
        const char *stops[] = {stop};
        if (first.empty == 0 && first.first[0]) {
            snprintf(stop, sizeof stop, "%s\x01", first.first);
            gp.stop = stops;
            gp.n_stop = 1;
            struct pieces held = {0};
            CHECK(woolly_session_reset(s) == WOOLLY_OK, "reset");
            CHECK(woolly_session_generate(s, "the cat", gp, on_piece, &held) == WOOLLY_OK, "generate held");
            CHECK(held.empty >= 1, "an empty piece (%d calls)", held.calls);
            CHECK(held.null == 0, "empty pieces point to a valid empty string");
        } else {
            CHECK(first.empty >= 1, "an empty piece (%d calls)", first.calls);
        }

        /* The same generation through the engine (gp as the session's last one, which had an
         * empty piece): its empty pieces are a valid "" too. */
        woolly_engine_params ep = woolly_engine_default_params();
        ep.n_threads = 2;
        woolly_engine *e = NULL;
        CHECK(woolly_engine_create(m, ep, &e) == WOOLLY_OK, "engine");
        woolly_request_params rp = woolly_request_default_params();
        rp.generate = gp;
        struct pieces engine_held = {0};
        CHECK(woolly_engine_generate(e, "the cat", rp, on_piece, &engine_held, NULL, NULL) == WOOLLY_OK,
              "engine generate held");
        CHECK(engine_held.empty >= 1, "an empty engine piece (%d calls)", engine_held.calls);
        CHECK(engine_held.null == 0, "empty engine pieces point to a valid empty string");
        woolly_engine_free(e);
        woolly_session_free(s);

        /* The byte token <0x00> (id 3) decodes to a NUL byte inside the text: len says 1. */
        int32_t nul_id = 3;
        char buf[8];
        memset(buf, 'x', sizeof buf);
        size_t len = 99;
        CHECK(woolly_detokenize(m, &nul_id, 1, buf, sizeof buf, &len) == WOOLLY_OK, "detokenize");
        CHECK(len == 1 && buf[0] == '\0' && buf[1] == '\0', "len %zu", len);
        woolly_model_free(m);
    }

    /* A FIFO among the thermal sensors: reads skip it, and stopping the monitor returns. */
    mkdirs(root, "sys/class/thermal/thermal_zone0");
    mkdirs(root, "sys/class/hwmon/hwmon0");
    char p[1024];
    snprintf(p, sizeof p, "%s/sys/class/thermal/thermal_zone0/temp", root);
    FILE *f = fopen(p, "w");
    fprintf(f, "61000\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/sys/class/hwmon/hwmon0/temp1_input", root);
    make_fifo(p);
    CHECK(woolly_start_thermal_monitor(0.0f, 10, root) == WOOLLY_OK, "monitor");
    char json[4096];
    bool seen = false;
    for (int i = 0; i < 500 && !seen; i++) {
        size_t len;
        seen = woolly_power_state_json(json, sizeof json, &len) == WOOLLY_OK &&
               strstr(json, "\"temperature_c\":61");
        if (!seen) nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    CHECK(seen, "the regular sensor is read: %s", json);
    woolly_stop_thermal_monitor();
    unlink(p);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", root);
    return finish("test_inputs");
}
