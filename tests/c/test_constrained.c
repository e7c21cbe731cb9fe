/* Constrained output and log probabilities through the C API on the default model: a regular
 * expression (`constraint_json`) shapes a session's chat, woolly_generate and an engine request
 * (the text matches it), a choice picks one of its options, each token's log probabilities
 * come through woolly_current_logprobs() in the token callback and woolly_event.logprobs, and
 * malformed constraints and logprob counts are WOOLLY_ERR_INVALID_ARGUMENT before anything is
 * generated. */
#include <woolly.h>

#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"

/* A US phone number, as a constraint and as the POSIX expression that checks the output. */
static const char *PHONE_JSON = "{\"regex\": \"\\\\(\\\\d{3}\\\\) \\\\d{3}-\\\\d{4}\"}";
static const char *PHONE_POSIX = "^\\([0-9]{3}\\) [0-9]{3}-[0-9]{4}$";

static bool matches(const char *text, const char *pattern) {
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) return false;
    bool ok = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

typedef struct {
    char text[1024];
    size_t len;
    /* The chosen tokens' bytes, concatenated, from the log probabilities. */
    char chosen[1024];
    size_t chosen_len;
    int tokens;
    int with_logprobs;
    int bad_logprobs;
    size_t want_top;
} collected;

/* Checks one token's log probabilities: the chosen token is the callback's, at most 0, the
 * alternatives best first; appends the chosen bytes. */
static void check_logprobs(collected *c, const woolly_token_logprobs *lp, int32_t id) {
    if (!lp) return;
    c->with_logprobs++;
    bool ok = lp->chosen.id == id && lp->chosen.logprob <= 0.0f && lp->chosen.bytes != NULL &&
              lp->n_top_logprobs == c->want_top && (lp->n_top_logprobs == 0 || lp->top_logprobs != NULL);
    for (size_t i = 0; ok && i < lp->n_top_logprobs; i++) {
        const woolly_logprob *t = &lp->top_logprobs[i];
        ok = t->logprob <= 0.0f && t->bytes != NULL && (i == 0 || t->logprob <= lp->top_logprobs[i - 1].logprob);
    }
    if (!ok) c->bad_logprobs++;
    if (c->chosen_len + lp->chosen.bytes_len < sizeof c->chosen) {
        memcpy(c->chosen + c->chosen_len, lp->chosen.bytes, lp->chosen.bytes_len);
        c->chosen_len += lp->chosen.bytes_len;
        c->chosen[c->chosen_len] = 0;
    }
}

static bool collect(const char *piece, size_t len, int32_t id, void *user_data) {
    collected *c = user_data;
    c->tokens++;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = 0;
    }
    check_logprobs(c, woolly_current_logprobs(), id);
    return true;
}

static bool must_not_run(const char *piece, size_t len, int32_t id, void *user_data) {
    (void)piece;
    (void)len;
    (void)id;
    (*(int *)user_data)++;
    return true;
}

static woolly_generate_params greedy(const char *constraint, int32_t logprobs) {
    woolly_generate_params p = woolly_generate_default_params();
    p.max_tokens = 48;
    p.temperature = 0;
    p.constraint_json = constraint;
    p.logprobs = logprobs;
    return p;
}

/* An engine request's events. */
typedef struct {
    collected c;
    atomic_int done; /* 0 running, 1 DONE, 2 ERROR */
    int logprob_pointer_differs;
} request;

static void on_event(const woolly_event *ev, void *user_data) {
    request *r = user_data;
    if (ev->kind == WOOLLY_EVENT_TOKEN) {
        if (ev->logprobs != woolly_current_logprobs()) r->logprob_pointer_differs++;
        collect(ev->text, ev->text_len, ev->token, &r->c);
        /* collect() counted woolly_current_logprobs(); the event's pointer is the same one. */
    } else {
        atomic_store(&r->done, ev->kind == WOOLLY_EVENT_DONE ? 1 : 2);
    }
}

int main(void) {
    CHECK(woolly_abi_version() >= 5 && WOOLLY_ABI_VERSION >= 5, "abi %u", woolly_abi_version());
    woolly_generate_params d = woolly_generate_default_params();
    CHECK(d.constraint_json == NULL && d.logprobs == -1, "defaults: %p %d", (const void *)d.constraint_json, d.logprobs);
    CHECK(woolly_current_logprobs() == NULL, "no logprobs outside a callback");

    woolly_model *model = NULL;
    woolly_status st = woolly_model_load(NULL, woolly_model_default_params(), &model);
    CHECK(st == WOOLLY_OK, "load: %s", woolly_status_name(st));
    if (st != WOOLLY_OK) return finish("test_constrained");
    woolly_session_params sp = woolly_session_default_params();
    sp.context_size = 512;
    woolly_session *session = NULL;
    CHECK(woolly_session_create(model, sp, &session) == WOOLLY_OK, "session");

    /* A chat whose reply must be a phone number, with 3 alternatives per token. */
    woolly_chat_message msg = {"user", "Give a US phone number."};
    collected c = {.want_top = 3};
    st = woolly_session_chat(session, &msg, 1, greedy(PHONE_JSON, 3), collect, &c);
    CHECK(st == WOOLLY_OK, "chat: %s", woolly_status_name(st));
    CHECK(matches(c.text, PHONE_POSIX), "'%s' matches %s", c.text, PHONE_POSIX);
    woolly_result r;
    CHECK(woolly_session_last_result(session, &r) == WOOLLY_OK && r.stop_reason == WOOLLY_STOP_END_OF_GENERATION &&
              (int)r.generated_tokens == c.tokens,
          "stop %d after %u tokens (%d seen)", (int)r.stop_reason, r.generated_tokens, c.tokens);
    CHECK(c.with_logprobs == c.tokens && c.tokens > 0 && c.bad_logprobs == 0, "%d of %d tokens with logprobs, %d bad",
          c.with_logprobs, c.tokens, c.bad_logprobs);
    CHECK(strcmp(c.chosen, c.text) == 0, "chosen bytes '%s' spell the text '%s'", c.chosen, c.text);
    CHECK(woolly_current_logprobs() == NULL, "none after the callback");

    /* woolly_generate with a choice, no log probabilities: none in the callback. */
    collected choice = {0};
    st = woolly_generate(model, "Is the sky blue? Answer:",
                         greedy("{\"choice\": [\" yes\", \" no\", \" maybe\"]}", -1), collect, &choice);
    CHECK(st == WOOLLY_OK, "choice: %s", woolly_status_name(st));
    CHECK(strcmp(choice.text, " yes") == 0 || strcmp(choice.text, " no") == 0 || strcmp(choice.text, " maybe") == 0,
          "choice '%s'", choice.text);
    CHECK(choice.with_logprobs == 0, "logprobs -1 gives none (%d)", choice.with_logprobs);

    /* An engine request: the same constraint, logprobs in the TOKEN events. */
    woolly_engine_params ep = woolly_engine_default_params();
    ep.context_size = 512;
    woolly_engine *engine = NULL;
    CHECK(woolly_engine_create(model, ep, &engine) == WOOLLY_OK, "engine");
    woolly_request_params rp = woolly_request_default_params();
    rp.generate = greedy(PHONE_JSON, 0);
    rp.generate.chat = true;
    request req = {.c = {.want_top = 0}};
    atomic_init(&req.done, 0);
    st = woolly_engine_submit(engine, "Give a US phone number.", rp, on_event, &req, NULL);
    CHECK(st == WOOLLY_OK, "submit: %s", woolly_status_name(st));
    for (int i = 0; i < 6000 && atomic_load(&req.done) == 0; i++) nanosleep(&(struct timespec){0, 10000000}, NULL);
    CHECK(atomic_load(&req.done) == 1, "the request finished (%d)", atomic_load(&req.done));
    CHECK(matches(req.c.text, PHONE_POSIX), "engine '%s' matches", req.c.text);
    CHECK(strcmp(req.c.text, c.text) == 0, "engine '%s' equals the session's '%s'", req.c.text, c.text);
    CHECK(req.c.with_logprobs == req.c.tokens && req.c.bad_logprobs == 0 && req.logprob_pointer_differs == 0,
          "engine logprobs: %d of %d, %d bad, %d differ", req.c.with_logprobs, req.c.tokens, req.c.bad_logprobs,
          req.logprob_pointer_differs);
    /* woolly_engine_generate: woolly_current_logprobs() in its token callback. */
    collected eg = {.want_top = 2};
    rp.generate.logprobs = 2;
    st = woolly_engine_generate(engine, "Give a US phone number.", rp, collect, &eg, NULL, NULL);
    CHECK(st == WOOLLY_OK && matches(eg.text, PHONE_POSIX), "engine generate '%s': %s", eg.text, woolly_status_name(st));
    CHECK(eg.with_logprobs == eg.tokens && eg.bad_logprobs == 0, "engine generate logprobs %d of %d", eg.with_logprobs,
          eg.tokens);

    /* Malformed constraints and counts: refused before any token, with a message. */
    const struct {
        const char *json;
        int32_t logprobs;
        const char *needle;
    } bad[] = {
        {"{\"regex\": ", -1, "constraint_json"},
        {"{\"pattern\": \"x\"}", -1, "constraint_json"},
        {"{\"regex\": 5}", -1, "constraint_json"},
        {"", -1, "constraint_json"},
        {"{\"regex\": \"(unclosed\"}", -1, "regular expression"},
        {"{\"gbnf\": \"root ::= (\\\"a\\\"\"}", -1, "GBNF"},
        {"{\"json_schema\": {\"type\": \"array\", \"uniqueItems\": true}}", -1, "uniqueItems"},
        {"{\"choice\": []}", -1, "choice"},
        {NULL, 21, "20"},
        {NULL, -2, "logprobs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int calls = 0;
        st = woolly_session_generate(session, "x", greedy(bad[i].json, bad[i].logprobs), must_not_run, &calls);
        CHECK(st == WOOLLY_ERR_INVALID_ARGUMENT && calls == 0 && strstr(woolly_last_error(), bad[i].needle),
              "bad %zu (%s, %d): %s, %d calls", i, bad[i].json ? bad[i].json : "NULL", bad[i].logprobs,
              woolly_status_name(st), calls);
        woolly_request_params brp = woolly_request_default_params();
        brp.generate = greedy(bad[i].json, bad[i].logprobs);
        CHECK(woolly_engine_submit(engine, "x", brp, NULL, NULL, NULL) == WOOLLY_ERR_INVALID_ARGUMENT,
              "engine refuses bad %zu", i);
    }
    /* The session is still usable after the refusals. */
    collected again = {.want_top = 3};
    st = woolly_session_chat(session, &msg, 1, greedy(PHONE_JSON, 3), collect, &again);
    CHECK(st == WOOLLY_OK && strcmp(again.text, c.text) == 0, "again '%s'", again.text);

    woolly_engine_free(engine);
    woolly_session_free(session);
    woolly_model_free(model);
    return finish("test_constrained");
}
