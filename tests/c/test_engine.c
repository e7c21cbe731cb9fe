/* The engine from C: concurrent requests from several threads equal to each run alone, a full
 * queue answering BUSY, cancellation by id freeing the slot, deadlines, and every request
 * answered when the engine is freed. */
#include <woolly.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static const char *prompts[4] = {"The capital of France is", "Once upon a time,",
                                  "def fibonacci(n):", "The three primary colors are"};

typedef struct {
    char text[4096];
    size_t len;
} buf;

static bool collect(const char *piece, size_t len, int32_t id, void *user_data) {
    (void)id;
    buf *b = user_data;
    if (b->len + len < sizeof b->text) {
        memcpy(b->text + b->len, piece, len);
        b->len += len;
        b->text[b->len] = 0;
    }
    return true;
}

static woolly_request_params greedy(uint32_t n) {
    woolly_request_params p = woolly_request_default_params();
    p.generate.max_tokens = n;
    p.generate.temperature = 0;
    p.generate.ignore_eos = true;
    return p;
}

static woolly_engine *engine;
static buf alone[4], together[4];

static void *run_one(void *arg) {
    int i = (int)(intptr_t)arg;
    woolly_result r;
    woolly_status st = woolly_engine_generate(engine, prompts[i], greedy(10), collect, &together[i], NULL, &r);
    CHECK(st == WOOLLY_OK && r.generated_tokens == 10, "concurrent %d: %s", i, woolly_status_name(st));
    return NULL;
}

/* Events of callback-driven requests. */
typedef struct {
    atomic_int tokens;
    atomic_int final_kind; /* -1 until the end */
    atomic_int status;
} tracker;

static void track(const woolly_event *ev, void *user_data) {
    tracker *t = user_data;
    if (ev->kind == WOOLLY_EVENT_TOKEN) {
        atomic_fetch_add(&t->tokens, 1);
    } else {
        CHECK(atomic_load(&t->final_kind) == -1, "one final event");
        atomic_store(&t->status, (int)ev->status);
        atomic_store(&t->final_kind, (int)ev->kind);
    }
}

static void init(tracker *t) {
    atomic_init(&t->tokens, 0);
    atomic_init(&t->final_kind, -1);
    atomic_init(&t->status, 0);
}

static void wait_final(tracker *t) {
    for (int i = 0; i < 3000 && atomic_load(&t->final_kind) == -1; i++) nanosleep(&(struct timespec){0, 10000000}, NULL);
}

static void wait_tokens(tracker *t) {
    for (int i = 0; i < 3000 && atomic_load(&t->tokens) == 0; i++) nanosleep(&(struct timespec){0, 10000000}, NULL);
}

int main(void) {
    woolly_model *model = NULL;
    woolly_status st = woolly_model_load(NULL, woolly_model_default_params(), &model);
    CHECK(st == WOOLLY_OK, "load: %s", woolly_status_name(st));
    if (st != WOOLLY_OK) return 1;

    woolly_engine_params ep = woolly_engine_default_params();
    ep.context_size = 512;
    ep.n_threads = 2;
    CHECK(woolly_engine_create(NULL, ep, &engine) == WOOLLY_ERR_NULL_ARGUMENT, "model NULL");
    ep.kv_precision = (woolly_kv_precision)5;
    CHECK(woolly_engine_create(model, ep, &engine) == WOOLLY_ERR_INVALID_ARGUMENT && engine == NULL, "bad kv");
    ep.kv_precision = WOOLLY_KV_F16;
    CHECK(woolly_engine_create(model, ep, &engine) == WOOLLY_OK, "engine");

    /* Alone, then four threads at once: the same text. */
    for (int i = 0; i < 4; i++) {
        CHECK(woolly_engine_generate(engine, prompts[i], greedy(10), collect, &alone[i], NULL, NULL) == WOOLLY_OK, "alone %d", i);
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, run_one, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK(strcmp(alone[i].text, together[i].text) == 0, "batched %d: '%s' vs alone '%s'", i, together[i].text, alone[i].text);
    }
    char json[4096];
    size_t len;
    CHECK(woolly_engine_stats_json(engine, json, sizeof json, &len) == WOOLLY_OK && strstr(json, "\"completed\":8"),
          "stats: %s", json);
    woolly_request_params bad = greedy(4);
    bad.priority = (woolly_priority)9;
    CHECK(woolly_engine_submit(engine, "x", bad, NULL, NULL, NULL) == WOOLLY_ERR_INVALID_ARGUMENT, "bad priority");
    CHECK(woolly_engine_submit(engine, NULL, greedy(4), NULL, NULL, NULL) == WOOLLY_ERR_NULL_ARGUMENT, "prompt NULL");
    CHECK(woolly_engine_submit(engine, "x", greedy(100000), NULL, NULL, NULL) == WOOLLY_ERR_CONTEXT_OVERFLOW, "overflow");
    woolly_engine_free(engine);

    /* One slot, a queue of one: busy, cancel by id, deadlines. */
    ep.max_concurrent = 1;
    ep.queue_capacity = 1;
    CHECK(woolly_engine_create(model, ep, &engine) == WOOLLY_OK, "small engine");
    tracker lng, queued, late;
    init(&lng);
    init(&queued);
    init(&late);
    uint64_t long_id = 0;
    CHECK(woolly_engine_submit(engine, "Count:", greedy(400), track, &lng, &long_id) == WOOLLY_OK && long_id > 0, "long");
    wait_tokens(&lng);
    CHECK(woolly_engine_submit(engine, "Hello", greedy(3), track, &queued, NULL) == WOOLLY_OK, "queued");
    st = woolly_engine_submit(engine, "Hello", greedy(3), track, &late, NULL);
    CHECK(st == WOOLLY_ERR_BUSY, "busy: %s", woolly_status_name(st));
    CHECK(woolly_engine_cancel(engine, long_id) == WOOLLY_OK, "cancel");
    wait_final(&lng);
    CHECK(atomic_load(&lng.final_kind) == WOOLLY_EVENT_ERROR && atomic_load(&lng.status) == WOOLLY_ERR_CANCELLED, "long cancelled");
    wait_final(&queued);
    CHECK(atomic_load(&queued.final_kind) == WOOLLY_EVENT_DONE && atomic_load(&queued.tokens) == 3, "queued ran");
    CHECK(woolly_engine_cancel(engine, long_id) == WOOLLY_OK, "cancel after the end");

    woolly_request_params dl = greedy(400);
    dl.timeout_ms = 200;
    woolly_result r;
    st = woolly_engine_generate(engine, "Count:", dl, NULL, NULL, NULL, &r);
    CHECK(st == WOOLLY_ERR_DEADLINE_EXCEEDED, "deadline: %s", woolly_status_name(st));

    /* Freeing with requests pending: each is answered. */
    tracker a, b;
    init(&a);
    init(&b);
    CHECK(woolly_engine_submit(engine, "Count:", greedy(400), track, &a, NULL) == WOOLLY_OK, "a");
    wait_tokens(&a);
    CHECK(woolly_engine_submit(engine, "Hello", greedy(3), track, &b, NULL) == WOOLLY_OK, "b");
    woolly_engine_free(engine);
    CHECK(atomic_load(&a.final_kind) == WOOLLY_EVENT_ERROR && atomic_load(&a.status) == WOOLLY_ERR_CANCELLED, "a answered");
    CHECK(atomic_load(&b.final_kind) == WOOLLY_EVENT_ERROR && atomic_load(&b.status) == WOOLLY_ERR_CANCELLED, "b answered");
    woolly_engine_free(NULL);

    woolly_model_free(model);
    return finish("test_engine");
}
