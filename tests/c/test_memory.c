/* The memory API from C: estimates, budgets that refuse with the figures, preload strategies,
 * reports, and a model cache that evicts the oldest idle model and keeps the ones in use. */
#include <woolly.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static char tiny[4096];

static woolly_session *open_session(woolly_model *m, uint32_t ctx) {
    woolly_session_params sp = woolly_session_default_params();
    sp.context_size = ctx;
    sp.n_threads = 1;
    woolly_session *s = NULL;
    woolly_status st = woolly_session_create(m, sp, &s);
    CHECK(st == WOOLLY_OK, "session: %s", woolly_status_name(st));
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REFERENCE_DIR\n", argv[0]);
        return 2;
    }
    snprintf(tiny, sizeof tiny, "%s/tiny/tiny-llama-spm-q4_k_m.gguf", argv[1]);
    char json[16384];
    size_t len = 0;

    /* Estimates from the header. */
    woolly_model_params mp = woolly_model_default_params();
    woolly_memory_estimate est;
    CHECK(woolly_model_estimate(NULL, mp, &est) == WOOLLY_OK, "estimate the default model");
    CHECK(est.weights_bytes > 200u << 20 && est.kv_cache_bytes > 0 && est.context_size > 0 &&
              est.total_bytes == est.weights_bytes + est.overhead_bytes + est.kv_cache_bytes + est.scratch_bytes,
          "estimate figures");
    CHECK(woolly_model_estimate(NULL, mp, NULL) == WOOLLY_ERR_NULL_ARGUMENT, "estimate out NULL");

    /* A budget smaller than the model: refused, with the figures. */
    woolly_model *model = NULL;
    mp.memory.budget_bytes = 100u << 20;
    woolly_status st = woolly_model_load(NULL, mp, &model);
    CHECK(st == WOOLLY_ERR_INSUFFICIENT_MEMORY && model == NULL, "budget refused: %s", woolly_status_name(st));
    CHECK(strstr(woolly_last_error(), "MiB") != NULL, "message has the figures");
    uint64_t required = 0, available = 0;
    CHECK(woolly_last_error_memory(&required, &available) && required == est.total_bytes &&
              available == 100u << 20,
          "figures %llu %llu", (unsigned long long)required, (unsigned long long)available);
    CHECK(strcmp(woolly_status_name(WOOLLY_ERR_INSUFFICIENT_MEMORY), "WOOLLY_ERR_INSUFFICIENT_MEMORY") == 0, "name");
    mp.memory.pressure_threshold = 3.0f;
    CHECK(woolly_model_load(NULL, mp, &model) == WOOLLY_ERR_INVALID_ARGUMENT, "absurd threshold");
    CHECK(!woolly_last_error_memory(NULL, NULL), "no figures after another error");

    /* Every preload strategy loads; the background one finishes. */
    for (int p = 0; p <= 4; p++) {
        woolly_model_params pp = woolly_model_default_params();
        pp.preload = (woolly_preload)p;
        st = woolly_model_load(tiny, pp, &model);
        CHECK(st == WOOLLY_OK, "preload %d: %s", p, woolly_status_name(st));
        float frac = -1;
        bool done = false;
        for (int i = 0; i < 500 && !done; i++) {
            CHECK(woolly_model_preload_progress(model, &frac, &done) == WOOLLY_OK, "progress");
            if (!done) nanosleep(&(struct timespec){0, 10000000}, NULL);
        }
        CHECK(done && frac == 1.0f, "preload %d finished (%f)", p, frac);
        CHECK(!woolly_model_is_locked(model), "not locked without mlock");
        CHECK(woolly_model_memory_json(model, json, sizeof json, &len) == WOOLLY_OK &&
                  strstr(json, "\"file_resident_bytes\"") && strstr(json, "\"estimate\""),
              "memory json: %s", json);
        woolly_model_free(model);
    }
    woolly_model_params bad = woolly_model_default_params();
    bad.preload = (woolly_preload)5;
    CHECK(woolly_model_load(tiny, bad, &model) == WOOLLY_ERR_INVALID_ARGUMENT, "bad preload");
    CHECK(woolly_model_preload_progress(NULL, NULL, NULL) == WOOLLY_ERR_NULL_ARGUMENT, "progress NULL");
    CHECK(!woolly_model_is_locked(NULL), "locked NULL");

    /* The machine's memory. */
    woolly_memory_policy none = {0};
    CHECK(woolly_memory_report_json(none, json, sizeof json, &len) == WOOLLY_OK &&
              strstr(json, "\"process_rss_bytes\"") && strstr(json, "\"reserve_bytes\""),
          "memory report: %s", json);

    /* KV precision: f32 takes twice the memory; a bad value is refused. */
    st = woolly_model_load(tiny, woolly_model_default_params(), &model);
    CHECK(st == WOOLLY_OK, "tiny");
    woolly_session_params sp = woolly_session_default_params();
    sp.kv_precision = (woolly_kv_precision)7;
    woolly_session *s = NULL;
    CHECK(woolly_session_create(model, sp, &s) == WOOLLY_ERR_INVALID_ARGUMENT && s == NULL, "bad kv precision");
    sp.kv_precision = WOOLLY_KV_F32;
    CHECK(woolly_session_create(model, sp, &s) == WOOLLY_OK, "f32 kv");
    woolly_session_free(s);
    woolly_model_free(model);

    /* The cache: two models and two small sessions fit, a third model does not. */
    woolly_model_params cp = woolly_model_default_params();
    cp.context_size = 256;
    CHECK(woolly_model_estimate(tiny, cp, &est) == WOOLLY_OK, "estimate tiny");
    uint64_t m = est.weights_bytes + est.overhead_bytes, ses = est.kv_cache_bytes + est.scratch_bytes;
    woolly_memory_policy policy = {0};
    policy.budget_bytes = 2 * m + 2 * ses + ses / 2;
    woolly_cache *cache = NULL;
    CHECK(woolly_cache_create(policy, NULL) == WOOLLY_ERR_NULL_ARGUMENT, "cache out NULL");
    CHECK(woolly_cache_create(policy, &cache) == WOOLLY_OK, "cache");
    woolly_model *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    CHECK(woolly_cache_load(cache, "a", tiny, cp, &a) == WOOLLY_OK, "load a");
    CHECK(woolly_cache_load(cache, "b", tiny, cp, &b) == WOOLLY_OK, "load b");
    woolly_model_free(b); /* b is idle now; a has a handle and a session */
    woolly_session *sa = open_session(a, 256);
    CHECK(woolly_cache_load(cache, "c", tiny, cp, &c) == WOOLLY_OK, "load c (evicts b)");
    woolly_model *got = NULL;
    CHECK(woolly_cache_get(cache, "b", &got) == WOOLLY_OK && got == NULL, "b was evicted");
    CHECK(woolly_cache_get(cache, "a", &got) == WOOLLY_OK && got != NULL, "a was kept");
    woolly_model_free(got);
    CHECK(woolly_cache_report_json(cache, json, sizeof json, &len) == WOOLLY_OK && strstr(json, "\"evictions\":1"),
          "report: %s", json);
    /* Both in use: the next one cannot fit. */
    st = woolly_cache_load(cache, "d", tiny, cp, &d);
    CHECK(st == WOOLLY_ERR_INSUFFICIENT_MEMORY && d == NULL, "d refused: %s", woolly_status_name(st));
    CHECK(woolly_last_error_memory(&required, &available) && required > available, "d figures");
    /* Pinned a stays even idle; c goes. */
    woolly_session_free(sa);
    woolly_model_free(a);
    woolly_model_free(c);
    CHECK(woolly_cache_pin(cache, "a", true) == WOOLLY_OK, "pin");
    CHECK(woolly_cache_pin(cache, "nope", true) == WOOLLY_ERR_INVALID_ARGUMENT, "pin unknown");
    CHECK(woolly_cache_load(cache, "d", tiny, cp, &d) == WOOLLY_OK, "load d");
    CHECK(woolly_cache_get(cache, "c", &got) == WOOLLY_OK && got == NULL, "c was evicted");
    bool was = false;
    CHECK(woolly_cache_unload(cache, "a", &was) == WOOLLY_OK && was, "unload a");
    CHECK(woolly_cache_unload(cache, "a", &was) == WOOLLY_OK && !was, "unload a again");
    uint32_t evicted = 99;
    CHECK(woolly_cache_relieve_pressure(cache, &evicted) == WOOLLY_OK && evicted == 0, "no pressure here");
    CHECK(woolly_cache_load(cache, NULL, tiny, cp, &got) == WOOLLY_ERR_NULL_ARGUMENT, "id NULL");
    CHECK(woolly_cache_load(NULL, "x", tiny, cp, &got) == WOOLLY_ERR_NULL_ARGUMENT, "cache NULL");
    woolly_cache_free(cache);
    /* The handle outlives the cache. */
    CHECK(woolly_model_n_vocab(d) > 0, "d usable after the cache is freed");
    woolly_model_free(d);
    woolly_cache_free(NULL);

    return finish("test_memory");
}
