/* The concurrency promises of the header, from C with real threads on the default model:
 * woolly_engine_generate's hand-off under many short calls, a long prompt being prepared
 * holding up no cancel, re-entrant calls from callbacks answering WOOLLY_ERR_BUSY (never
 * hanging), woolly_session_last_result never waiting for a generation, the log callback never
 * called once woolly_set_log_callback has replaced it, deadlines inside the prompt, and freed
 * engines leaving no metric series behind. Every wait has a watchdog. */
#include <woolly.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static void sleep_ms(long ms) { nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL); }

/* Waits (at most 120 s) until *flag is nonzero. */
static int wait_flag(atomic_int *flag) {
    for (int i = 0; i < 12000 && !atomic_load(flag); i++) sleep_ms(10);
    return atomic_load(flag);
}

static woolly_request_params greedy(uint32_t n) {
    woolly_request_params p = woolly_request_default_params();
    p.generate.max_tokens = n;
    p.generate.temperature = 0;
    p.generate.ignore_eos = true;
    return p;
}

static woolly_model *model;

/* ---------------------------------------------------------------------------------------
 * woolly_engine_generate: many short calls from several threads, each frame reused at once. */

static woolly_engine *shared_engine;

static bool count_token(const char *piece, size_t len, int32_t id, void *user_data) {
    (void)piece, (void)len, (void)id;
    atomic_fetch_add((atomic_int *)user_data, 1);
    return true;
}

/* Writes over the stack where woolly_engine_generate's frame was. */
static __attribute__((noinline)) int scribble(int seed) {
    volatile char junk[16384];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(seed + i);
    return junk[seed % sizeof junk];
}

static void *generate_loop(void *arg) {
    (void)arg;
    for (int i = 0; i < 15; i++) {
        atomic_int tokens;
        atomic_init(&tokens, 0);
        woolly_result r;
        woolly_status st = woolly_engine_generate(shared_engine, "Hello", greedy(1), count_token, &tokens, NULL, &r);
        CHECK(st == WOOLLY_OK && r.generated_tokens == 1 && atomic_load(&tokens) == 1, "generate %d: %s", i,
              woolly_status_name(st));
        scribble(i);
    }
    return NULL;
}

static void test_generate_handoff(void) {
    woolly_engine_params ep = woolly_engine_default_params();
    ep.context_size = 256;
    ep.n_threads = 2;
    CHECK(woolly_engine_create(model, ep, &shared_engine) == WOOLLY_OK, "engine");
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, generate_loop, NULL);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    woolly_engine_free(shared_engine);
}

/* ---------------------------------------------------------------------------------------
 * A 4 MiB prompt being tokenized holds up no cancel (and no running request). */

typedef struct {
    atomic_int tokens;
    atomic_int ended;
    atomic_int status;
} tracker;

static void track(const woolly_event *ev, void *user_data) {
    tracker *t = user_data;
    if (ev->kind == WOOLLY_EVENT_TOKEN) {
        atomic_fetch_add(&t->tokens, 1);
    } else {
        atomic_store(&t->status, (int)ev->status);
        atomic_store(&t->ended, 1);
    }
}

static void init_tracker(tracker *t) {
    atomic_init(&t->tokens, 0);
    atomic_init(&t->ended, 0);
    atomic_init(&t->status, -1);
}

typedef struct {
    woolly_engine *engine;
    atomic_int started, finished;
    woolly_status status;
} huge_submit;

static void *submit_huge(void *arg) {
    huge_submit *h = arg;
    size_t n = 4u << 20;
    char *text = malloc(n + 1);
    for (size_t i = 0; i < n; i++) text[i] = "word "[i % 5];
    text[n] = 0;
    atomic_store(&h->started, 1);
    h->status = woolly_engine_submit(h->engine, text, greedy(1), NULL, NULL, NULL);
    atomic_store(&h->finished, 1);
    free(text);
    return NULL;
}

static void test_long_prompt_holds_up_no_cancel(void) {
    woolly_engine *e = NULL;
    woolly_engine_params ep = woolly_engine_default_params();
    ep.context_size = 1024;
    ep.n_threads = 2;
    CHECK(woolly_engine_create(model, ep, &e) == WOOLLY_OK, "engine");
    tracker running;
    init_tracker(&running);
    uint64_t id = 0;
    CHECK(woolly_engine_submit(e, "Count:", greedy(900), track, &running, &id) == WOOLLY_OK, "running request");
    wait_flag(&running.tokens);
    huge_submit h = {.engine = e};
    atomic_init(&h.started, 0);
    atomic_init(&h.finished, 0);
    pthread_t th;
    pthread_create(&th, NULL, submit_huge, &h);
    wait_flag(&h.started);
    sleep_ms(20);
    /* Before: the engine's map stayed locked while the prompt was tokenized (seconds). */
    CHECK(woolly_engine_cancel(e, id) == WOOLLY_OK, "cancel");
    CHECK(wait_flag(&running.ended) && atomic_load(&running.status) == WOOLLY_ERR_CANCELLED, "cancelled: %d",
          atomic_load(&running.status));
    CHECK(!atomic_load(&h.finished), "the cancel waited for a long prompt's tokenization");
    pthread_join(th, NULL);
    CHECK(h.status == WOOLLY_ERR_CONTEXT_OVERFLOW, "the huge prompt: %s", woolly_status_name(h.status));
    woolly_engine_free(e);
}

/* ---------------------------------------------------------------------------------------
 * Engine callbacks calling back: generate answers BUSY, free returns at once. */

typedef struct {
    woolly_engine *engine;
    atomic_int generate_status; /* -1 until tried */
    atomic_int freed;
    atomic_int ended;
    atomic_int final_status;
} reentry;

static void reenter_engine(const woolly_event *ev, void *user_data) {
    reentry *r = user_data;
    if (ev->kind == WOOLLY_EVENT_TOKEN) {
        if (atomic_load(&r->generate_status) == -1) {
            woolly_status st = woolly_engine_generate(r->engine, "Hello", greedy(2), NULL, NULL, NULL, NULL);
            atomic_store(&r->generate_status, (int)st);
            /* Submitting and cancelling from here work. */
            uint64_t id = 0;
            CHECK(woolly_engine_submit(r->engine, "Hello", greedy(2), NULL, NULL, &id) == WOOLLY_OK, "submit inside");
            CHECK(woolly_engine_cancel(r->engine, id) == WOOLLY_OK, "cancel inside");
            woolly_engine_free(r->engine);
            atomic_store(&r->freed, 1);
        }
    } else {
        atomic_store(&r->final_status, (int)ev->status);
        atomic_store(&r->ended, 1);
    }
}

static void test_engine_reentry(void) {
    woolly_engine *e = NULL;
    woolly_engine_params ep = woolly_engine_default_params();
    ep.context_size = 256;
    ep.n_threads = 2;
    CHECK(woolly_engine_create(model, ep, &e) == WOOLLY_OK, "engine");
    reentry r = {.engine = e};
    atomic_init(&r.generate_status, -1);
    atomic_init(&r.freed, 0);
    atomic_init(&r.ended, 0);
    atomic_init(&r.final_status, -1);
    tracker other;
    init_tracker(&other);
    CHECK(woolly_engine_submit(e, "Once upon a time", greedy(100), reenter_engine, &r, NULL) == WOOLLY_OK, "submit");
    CHECK(woolly_engine_submit(e, "Count:", greedy(100), track, &other, NULL) == WOOLLY_OK, "other");
    CHECK(wait_flag(&r.ended), "the request never ended (the engine hung)");
    CHECK(atomic_load(&r.generate_status) == WOOLLY_ERR_BUSY, "generate from a callback: %d",
          atomic_load(&r.generate_status));
    CHECK(atomic_load(&r.freed), "free from a callback returned");
    CHECK(atomic_load(&r.final_status) == WOOLLY_ERR_CANCELLED, "ended by the free: %d", atomic_load(&r.final_status));
    CHECK(wait_flag(&other.ended) && atomic_load(&other.status) == WOOLLY_ERR_CANCELLED, "other request answered");
}

/* ---------------------------------------------------------------------------------------
 * Sessions: the getter never waits; calls from the token callback answer BUSY. */

typedef struct {
    woolly_session *session;
    atomic_int tokens;
    atomic_int generating;
    woolly_status inner_generate, inner_chat, inner_reset, inner_last;
    woolly_stop_reason inner_last_stop;
} session_probe;

static bool probe_token(const char *piece, size_t len, int32_t id, void *user_data) {
    (void)piece, (void)len, (void)id;
    session_probe *p = user_data;
    if (atomic_fetch_add(&p->tokens, 1) == 0) {
        woolly_generate_params gp = woolly_generate_default_params();
        gp.max_tokens = 2;
        p->inner_generate = woolly_session_generate(p->session, "Hello", gp, NULL, NULL);
        woolly_chat_message m = {"user", "Hello"};
        p->inner_chat = woolly_session_chat(p->session, &m, 1, gp, NULL, NULL);
        p->inner_reset = woolly_session_reset(p->session);
        woolly_result r;
        p->inner_last = woolly_session_last_result(p->session, &r);
        p->inner_last_stop = r.stop_reason;
        /* Ignored (logged): the session stays usable. */
        woolly_session_free(p->session);
    }
    /* Keep generating long enough for the other thread's getter. */
    return true;
}

typedef struct {
    session_probe *probe;
    woolly_status status;
    woolly_stop_reason stop;
    int while_generating;
} getter;

static void *get_last(void *arg) {
    getter *g = arg;
    wait_flag(&g->probe->tokens);
    woolly_result r;
    g->status = woolly_session_last_result(g->probe->session, &r);
    g->stop = r.stop_reason;
    g->while_generating = atomic_load(&g->probe->generating);
    return NULL;
}

static void test_sessions(void) {
    woolly_session *s = NULL;
    woolly_session_params sp = woolly_session_default_params();
    sp.context_size = 1024;
    sp.n_threads = 2;
    CHECK(woolly_session_create(model, sp, &s) == WOOLLY_OK, "session");
    session_probe p = {.session = s};
    atomic_init(&p.tokens, 0);
    atomic_init(&p.generating, 1);
    getter g = {.probe = &p};
    pthread_t th;
    pthread_create(&th, NULL, get_last, &g);
    woolly_generate_params gp = woolly_generate_default_params();
    gp.max_tokens = 100;
    gp.temperature = 0;
    gp.ignore_eos = true;
    woolly_status st = woolly_session_generate(s, "Count:", gp, probe_token, &p);
    atomic_store(&p.generating, 0);
    pthread_join(th, NULL);
    CHECK(st == WOOLLY_OK, "outer generation: %s", woolly_status_name(st));
    CHECK(p.inner_generate == WOOLLY_ERR_BUSY, "generate from the callback: %s", woolly_status_name(p.inner_generate));
    CHECK(p.inner_chat == WOOLLY_ERR_BUSY, "chat from the callback: %s", woolly_status_name(p.inner_chat));
    CHECK(p.inner_reset == WOOLLY_ERR_BUSY, "reset from the callback: %s", woolly_status_name(p.inner_reset));
    CHECK(p.inner_last == WOOLLY_OK && p.inner_last_stop == WOOLLY_STOP_NONE, "last result from the callback");
    /* Before: the getter waited for the whole generation. */
    CHECK(g.status == WOOLLY_OK && g.stop == WOOLLY_STOP_NONE && g.while_generating,
          "the getter waited for the generation (%d, %d, %d)", (int)g.status, (int)g.stop, g.while_generating);
    woolly_result r;
    CHECK(woolly_session_last_result(s, &r) == WOOLLY_OK && r.stop_reason == WOOLLY_STOP_MAX_TOKENS &&
              r.generated_tokens == 100,
          "last result after: %d tokens", (int)r.generated_tokens);
    CHECK(woolly_session_reset(s) == WOOLLY_OK, "reset after");
    woolly_session_free(s);
}

/* ---------------------------------------------------------------------------------------
 * The log callback: never called after woolly_set_log_callback returns; re-entry is safe. */

static atomic_int log_inside, log_release, log_finished, log_calls_after;
static atomic_int log_removed;

static void slow_log(woolly_log_level level, const char *message, void *user_data) {
    (void)level, (void)message, (void)user_data;
    if (atomic_load(&log_removed)) atomic_fetch_add(&log_calls_after, 1);
    if (!atomic_exchange(&log_inside, 1)) {
        while (!atomic_load(&log_release)) sleep_ms(1);
        /* Still inside: the removal must not have returned yet. */
        if (atomic_load(&log_removed)) atomic_fetch_add(&log_calls_after, 1);
        atomic_store(&log_finished, 1);
    }
}

static void *log_something(void *arg) {
    (void)arg;
    woolly_set_power_profile(WOOLLY_POWER_BALANCED); /* logs "power profile: ..." */
    return NULL;
}

static void *remove_log(void *arg) {
    (void)arg;
    woolly_set_log_callback(NULL, NULL);
    atomic_store(&log_removed, 1);
    return NULL;
}

static atomic_int reentrant_calls;

static void reentrant_log(woolly_log_level level, const char *message, void *user_data) {
    (void)level, (void)message, (void)user_data;
    atomic_fetch_add(&reentrant_calls, 1);
    woolly_set_power_profile(WOOLLY_POWER_BALANCED); /* logs again: dropped, no recursion */
    woolly_set_log_callback(NULL, NULL);               /* replaces itself: no deadlock */
}

static void test_log_callback(void) {
    woolly_set_log_callback(slow_log, NULL);
    pthread_t logger, remover;
    pthread_create(&logger, NULL, log_something, NULL);
    CHECK(wait_flag(&log_inside), "the callback was called");
    pthread_create(&remover, NULL, remove_log, NULL);
    sleep_ms(50);
    CHECK(!atomic_load(&log_removed), "woolly_set_log_callback(NULL) returned while the callback ran");
    atomic_store(&log_release, 1);
    pthread_join(remover, NULL);
    CHECK(atomic_load(&log_finished), "the removal returned before the callback's call ended");
    pthread_join(logger, NULL);
    for (int i = 0; i < 5; i++) woolly_set_power_profile(WOOLLY_POWER_BALANCED);
    CHECK(atomic_load(&log_calls_after) == 0, "the old callback ran after its removal");

    woolly_set_log_callback(reentrant_log, NULL);
    woolly_set_power_profile(WOOLLY_POWER_BALANCED);
    woolly_set_power_profile(WOOLLY_POWER_BALANCED);
    CHECK(atomic_load(&reentrant_calls) == 1, "re-entrant log calls: %d", atomic_load(&reentrant_calls));
    woolly_set_log_callback(NULL, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Deadlines inside the prompt: a 50 ms deadline with a ~400-token prompt never succeeds. */

static void test_deadline_in_prompt(void) {
    char prompt[4096] = "";
    for (int i = 0; i < 33; i++) strcat(prompt, "The history of the printing press is long and full of turns. ");
    for (int chunk = 0; chunk < 2; chunk++) {
        woolly_engine *e = NULL;
        woolly_engine_params ep = woolly_engine_default_params();
        ep.context_size = 1024;
        ep.n_threads = 2;
        ep.prefill_chunk = chunk ? 4096 : 0;
        CHECK(woolly_engine_create(model, ep, &e) == WOOLLY_OK, "engine");
        woolly_request_params rp = greedy(1);
        rp.timeout_ms = 50;
        woolly_result r;
        woolly_status st = woolly_engine_generate(e, prompt, rp, NULL, NULL, NULL, &r);
        CHECK(st == WOOLLY_ERR_DEADLINE_EXCEEDED, "prefill_chunk %u: %s", ep.prefill_chunk, woolly_status_name(st));
        woolly_engine_free(e);
    }
}

/* ---------------------------------------------------------------------------------------
 * Freed engines leave no metric series: the Prometheus text returns to its size. */

static size_t prometheus_size(char **text) {
    size_t len = 0;
    woolly_metrics_prometheus(NULL, 0, &len);
    *text = malloc(len + 4096);
    CHECK(woolly_metrics_prometheus(*text, len + 4096, &len) == WOOLLY_OK, "prometheus");
    return len;
}

static void test_engine_series(const char *synthetic) {
    woolly_model *m = NULL;
    CHECK(woolly_model_load(synthetic, woolly_model_default_params(), &m) == WOOLLY_OK, "synthetic model");
    if (!m) return;
    woolly_engine_params ep = woolly_engine_default_params();
    ep.context_size = 64;
    ep.n_threads = 1;
    char *base = NULL, *after = NULL;
    size_t base_len = 0;
    for (int i = 0; i < 120; i++) {
        if (i == 20) base_len = prometheus_size(&base);
        woolly_engine *e = NULL;
        CHECK(woolly_engine_create(m, ep, &e) == WOOLLY_OK, "engine %d", i);
        woolly_result r;
        CHECK(woolly_engine_generate(e, "hello", greedy(2), NULL, NULL, NULL, &r) == WOOLLY_OK, "request %d", i);
        woolly_engine_free(e);
    }
    size_t after_len = prometheus_size(&after);
    CHECK(!strstr(after, "engine=\"engine-"), "a freed engine left series");
    CHECK(after_len <= base_len + 512, "the Prometheus text grew from %zu to %zu bytes", base_len, after_len);
    free(base);
    free(after);
    woolly_model_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SYNTHETIC_MODEL\n", argv[0]);
        return 2;
    }
    woolly_status st = woolly_model_load(NULL, woolly_model_default_params(), &model);
    CHECK(st == WOOLLY_OK, "load: %s", woolly_status_name(st));
    if (st != WOOLLY_OK) return finish("test_concurrency");
    struct {
        const char *name;
        void (*run)(void);
    } parts[] = {{"log callback", test_log_callback},
                 {"generate hand-off", test_generate_handoff},
                 {"long prompt vs cancel", test_long_prompt_holds_up_no_cancel},
                 {"engine re-entry", test_engine_reentry},
                 {"sessions", test_sessions},
                 {"deadline in the prompt", test_deadline_in_prompt}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        parts[i].run();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%s: %.1f s\n", parts[i].name, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    test_engine_series(argv[1]);
    woolly_model_free(model);
    return finish("test_concurrency");
}
