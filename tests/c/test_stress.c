/* Stress through the C API: threads submitting to a shared engine and cancelling at random,
 * engines created and freed with requests pending, sessions aborted from other threads during
 * their prompt, and a model cache loading and unloading, all at once for a bounded time.
 * Nothing may deadlock (each request's end is awaited with a timeout), and every accepted
 * request must get exactly one DONE or ERROR event.
 *
 * usage: test_stress <seconds> <small model> [big model]: the big model (default: the default
 * model) serves the shared engine; the small one is loaded, used and freed over and over. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static const char *small_path;
static const char *big_path;
static atomic_int stop;
static atomic_long submitted, ended, done_events, error_events, loads, aborted_sessions;

/* One request's state: its terminal events are counted, so a second one is caught. */
typedef struct {
    atomic_int finals;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} request;

static void on_event(const woolly_event *ev, void *user_data) {
    request *r = user_data;
    if (ev->kind == WOOLLY_EVENT_TOKEN) return;
    if (ev->kind == WOOLLY_EVENT_DONE) atomic_fetch_add(&done_events, 1);
    if (ev->kind == WOOLLY_EVENT_ERROR) atomic_fetch_add(&error_events, 1);
    pthread_mutex_lock(&r->mu);
    atomic_fetch_add(&r->finals, 1);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits up to 60 s for the request's end; false on a timeout (a lost request). */
static int await_end(request *r) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 60;
    pthread_mutex_lock(&r->mu);
    int ok = 1;
    while (atomic_load(&r->finals) == 0 && ok) ok = pthread_cond_timedwait(&r->cv, &r->mu, &t) == 0;
    pthread_mutex_unlock(&r->mu);
    return atomic_load(&r->finals) > 0;
}

static void request_init(request *r) {
    atomic_init(&r->finals, 0);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void request_destroy(request *r) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static unsigned next(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

static void sleep_ms(unsigned ms) { usleep(ms * 1000); }

static const char *prompts[] = {"The capital of France is", "Once upon a time,", "def f(n):",
                                "A recipe for pancakes needs"};

static woolly_engine *shared_engine;

static void *client(void *arg) {
    unsigned seed = (unsigned)(size_t)arg;
    while (!atomic_load(&stop)) {
        woolly_request_params rp = woolly_request_default_params();
        rp.generate.max_tokens = 1 + next(&seed) % 6;
        rp.generate.temperature = 0;
        rp.generate.ignore_eos = true;
        rp.priority = (woolly_priority)(next(&seed) % 4);
        if (next(&seed) % 4 == 0) rp.timeout_ms = next(&seed) % 300;
        request r;
        request_init(&r);
        uint64_t id = 0;
        woolly_status st = woolly_engine_submit(shared_engine, prompts[next(&seed) % 4], rp, on_event, &r, &id);
        if (st == WOOLLY_ERR_BUSY || st == WOOLLY_ERR_DEADLINE_EXCEEDED) {
            request_destroy(&r);
            sleep_ms(10);
            continue;
        }
        CHECK(st == WOOLLY_OK, "submit: %s", woolly_status_name(st));
        atomic_fetch_add(&submitted, 1);
        if (next(&seed) % 3 == 0) {
            sleep_ms(next(&seed) % 80);
            CHECK(woolly_engine_cancel(shared_engine, id) == WOOLLY_OK, "cancel");
        }
        CHECK(await_end(&r), "request %llu never ended", (unsigned long long)id);
        sleep_ms(2); /* a second terminal event would show here */
        CHECK(atomic_load(&r.finals) == 1, "request %llu ended %d times", (unsigned long long)id,
              atomic_load(&r.finals));
        atomic_fetch_add(&ended, 1);
        request_destroy(&r);
    }
    return NULL;
}

/* Engines on the small model, freed with requests still pending. */
static void *churn(void *arg) {
    unsigned seed = (unsigned)(size_t)arg;
    woolly_model_params mp = woolly_model_default_params();
    mp.preload = WOOLLY_PRELOAD_LAZY;
    while (!atomic_load(&stop)) {
        woolly_model *m = NULL;
        CHECK(woolly_model_load(small_path, mp, &m) == WOOLLY_OK, "load small");
        if (!m) break;
        atomic_fetch_add(&loads, 1);
        woolly_engine *e = NULL;
        CHECK(woolly_engine_create(m, woolly_engine_default_params(), &e) == WOOLLY_OK, "engine");
        woolly_model_free(m); /* the engine keeps it alive */
        request rs[6];
        int n = 1 + next(&seed) % 6;
        for (int i = 0; i < n; i++) {
            request_init(&rs[i]);
            woolly_request_params rp = woolly_request_default_params();
            rp.generate.max_tokens = 32;
            rp.generate.ignore_eos = true;
            CHECK(woolly_engine_submit(e, "the cat", rp, on_event, &rs[i], NULL) == WOOLLY_OK, "submit");
            atomic_fetch_add(&submitted, 1);
        }
        sleep_ms(next(&seed) % 5);
        woolly_engine_free(e); /* answers every pending request before it returns */
        for (int i = 0; i < n; i++) {
            CHECK(atomic_load(&rs[i].finals) == 1, "a request of a freed engine ended %d times",
                  atomic_load(&rs[i].finals));
            atomic_fetch_add(&ended, 1);
            request_destroy(&rs[i]);
        }
    }
    return NULL;
}

typedef struct {
    const woolly_session *session;
    unsigned delay_ms;
} abort_job;

static void *aborter(void *arg) {
    abort_job *j = arg;
    sleep_ms(j->delay_ms);
    woolly_abort(j->session);
    return NULL;
}

/* Sessions on the big model, aborted from another thread during a long prompt; and a cache. */
static void *sessions(void *arg) {
    unsigned seed = (unsigned)(size_t)arg;
    woolly_model *big = NULL;
    CHECK(woolly_model_load(big_path, woolly_model_default_params(), &big) == WOOLLY_OK, "load big");
    woolly_cache *cache = NULL;
    woolly_memory_policy policy = {0};
    CHECK(woolly_cache_create(policy, &cache) == WOOLLY_OK, "cache");
    /* A long prompt that still fits the session's context (1024, or less on a small model). */
    uint32_t ctx = big ? woolly_model_n_ctx_train(big) : 0;
    if (ctx > 1024) ctx = 1024;
    char prompt[4096] = "";
    size_t n_tokens = 0;
    const char *sentence = "The quick brown fox jumps over the lazy dog. ";
    while (big && strlen(prompt) + strlen(sentence) < sizeof prompt) {
        size_t before = strlen(prompt);
        strcat(prompt, sentence);
        woolly_tokenize(big, prompt, NULL, 0, &n_tokens);
        if (n_tokens + 8 > ctx) {
            prompt[before] = '\0';
            break;
        }
    }
    woolly_model_params mp = woolly_model_default_params();
    mp.preload = WOOLLY_PRELOAD_LAZY;
    while (big && cache && !atomic_load(&stop)) {
        woolly_session_params sp = woolly_session_default_params();
        sp.context_size = ctx;
        sp.n_threads = 1;
        woolly_session *s = NULL;
        CHECK(woolly_session_create(big, sp, &s) == WOOLLY_OK, "session");
        abort_job j = {s, next(&seed) % 150};
        pthread_t t;
        pthread_create(&t, NULL, aborter, &j);
        woolly_generate_params gp = woolly_generate_default_params();
        gp.max_tokens = 4;
        woolly_status st = woolly_session_generate(s, prompt, gp, NULL, NULL);
        CHECK(st == WOOLLY_OK || st == WOOLLY_ERR_CANCELLED, "generate: %s", woolly_status_name(st));
        if (st == WOOLLY_ERR_CANCELLED) atomic_fetch_add(&aborted_sessions, 1);
        pthread_join(t, NULL);
        woolly_session_free(s);

        woolly_model *m = NULL;
        CHECK(woolly_cache_load(cache, "small", small_path, mp, &m) == WOOLLY_OK, "cache load");
        atomic_fetch_add(&loads, 1);
        woolly_model_free(m);
        bool was = false;
        if (next(&seed) % 2) CHECK(woolly_cache_unload(cache, "small", &was) == WOOLLY_OK, "unload");
    }
    woolly_cache_free(cache);
    woolly_model_free(big);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_stress <seconds> <small model> [big model]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    small_path = argv[2];
    big_path = argc > 3 ? argv[3] : NULL;
    woolly_model *model = NULL;
    CHECK(woolly_model_load(big_path, woolly_model_default_params(), &model) == WOOLLY_OK, "load");
    woolly_engine_params ep = woolly_engine_default_params();
    ep.context_size = 512;
    ep.queue_capacity = 12;
    CHECK(woolly_engine_create(model, ep, &shared_engine) == WOOLLY_OK, "engine");
    woolly_model_free(model);
    if (!shared_engine) return finish("test_stress");

    pthread_t t[6];
    for (size_t i = 0; i < 4; i++) pthread_create(&t[i], NULL, client, (void *)(i + 1));
    pthread_create(&t[4], NULL, churn, (void *)77);
    pthread_create(&t[5], NULL, sessions, (void *)5);
    sleep_ms((unsigned)(seconds * 1000));
    atomic_store(&stop, 1);
    for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
    woolly_engine_free(shared_engine);

    long s = atomic_load(&submitted), e = atomic_load(&ended);
    printf("stress %.0f s: %ld submitted, %ld ended (%ld done, %ld errors), %ld loads, %ld sessions aborted\n",
           seconds, s, e, atomic_load(&done_events), atomic_load(&error_events), atomic_load(&loads),
           atomic_load(&aborted_sessions));
    CHECK(s == e && e == atomic_load(&done_events) + atomic_load(&error_events),
          "every accepted request ends exactly once");
    CHECK(atomic_load(&done_events) > 0 && atomic_load(&loads) > 2, "the mix ran");
    return finish("test_stress");
}
