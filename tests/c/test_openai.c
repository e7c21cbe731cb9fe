/* OpenAI-shaped requests through the C API on the default model: woolly_session_openai and
 * woolly_engine_openai take a request body as JSON and give the response object (or the stream
 * chunks) to a callback: chat and completions, a JSON-schema response format, a required tool
 * call, streaming that spells the same text as the whole response, a callback that stops, and
 * malformed bodies, NULL arguments and bad enum values as clear errors. */
#include <woolly.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct {
    int calls;
    int stop_after; /* 0: never stop */
    char last[16384];
    char content[4096]; /* the "content" deltas of a stream, concatenated */
} seen;

/* Appends the string value after each `"content":"` in a chunk (enough for these replies,
 * which hold no escaped quotes). */
static void append_content(seen *s, const char *json) {
    const char *key = "\"delta\":{\"content\":\"";
    const char *p = strstr(json, key);
    if (!p) return;
    p += strlen(key);
    const char *end = strchr(p, '"');
    size_t have = strlen(s->content);
    if (end && have + (size_t)(end - p) < sizeof s->content) {
        memcpy(s->content + have, p, (size_t)(end - p));
        s->content[have + (size_t)(end - p)] = 0;
    }
}

static bool on_json(const char *json, void *user_data) {
    seen *s = user_data;
    s->calls++;
    snprintf(s->last, sizeof s->last, "%s", json);
    append_content(s, json);
    return s->stop_after == 0 || s->calls < s->stop_after;
}

/* The string value of `"key":"` in `json`, into out. */
static bool field(const char *json, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p) return false;
    p += strlen(pat);
    size_t n = 0;
    while (p[n] && !(p[n] == '"' && (n == 0 || p[n - 1] != '\\')) && n + 1 < cap) n++;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

static const char *CHAT =
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Count to five.\"}], \"max_tokens\": 12, \"temperature\": 0}";
static const char *CHAT_STREAM =
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Count to five.\"}], \"max_tokens\": 12, \"temperature\": 0, "
    "\"stream\": true, \"stream_options\": {\"include_usage\": true}}";

int main(void) {
    woolly_model *model = NULL;
    woolly_status st = woolly_model_load(NULL, woolly_model_default_params(), &model);
    CHECK(st == WOOLLY_OK, "load: %s", woolly_status_name(st));
    if (st != WOOLLY_OK) return finish("test_openai");
    woolly_session_params sp = woolly_session_default_params();
    sp.context_size = 1024;
    woolly_session *session = NULL;
    CHECK(woolly_session_create(model, sp, &session) == WOOLLY_OK, "session");

    /* The whole response, once. */
    seen whole = {0};
    st = woolly_session_openai(session, WOOLLY_OPENAI_CHAT, CHAT, on_json, &whole);
    CHECK(st == WOOLLY_OK, "chat: %s", woolly_status_name(st));
    CHECK(whole.calls == 1, "%d calls", whole.calls);
    CHECK(strstr(whole.last, "\"object\":\"chat.completion\"") && strstr(whole.last, "\"usage\"") &&
              strstr(whole.last, "\"finish_reason\""),
          "%s", whole.last);
    char text[4096] = "";
    CHECK(field(whole.last, "content", text, sizeof text) && text[0], "content in %s", whole.last);

    /* Streamed: the chunks spell the same text, then a usage chunk. */
    seen stream = {0};
    st = woolly_session_openai(session, WOOLLY_OPENAI_CHAT, CHAT_STREAM, on_json, &stream);
    CHECK(st == WOOLLY_OK, "stream: %s", woolly_status_name(st));
    CHECK(stream.calls >= 3, "%d chunks", stream.calls);
    CHECK(strcmp(stream.content, text) == 0, "streamed '%s' vs '%s'", stream.content, text);
    CHECK(strstr(stream.last, "\"choices\":[]") && strstr(stream.last, "\"usage\""), "last: %s", stream.last);

    /* A callback that stops after two chunks: the call still succeeds, with two calls. */
    seen stopped = {.stop_after = 2};
    st = woolly_session_openai(session, WOOLLY_OPENAI_CHAT, CHAT_STREAM, on_json, &stopped);
    CHECK(st == WOOLLY_OK && stopped.calls == 2, "%s after %d calls", woolly_status_name(st), stopped.calls);

    /* A JSON schema response format and a required tool call. */
    seen js = {0};
    st = woolly_session_openai(session, WOOLLY_OPENAI_CHAT,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Is water wet?\"}], \"temperature\": 0,"
        " \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"a\", \"schema\":"
        " {\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"answer\"],"
        "  \"properties\": {\"answer\": {\"type\": \"boolean\"}}}}}}",
        on_json, &js);
    CHECK(st == WOOLLY_OK, "schema: %s", woolly_status_name(st));
    CHECK(strstr(js.last, "{\\\"answer\\\":true}") || strstr(js.last, "{\\\"answer\\\":false}") ||
              strstr(js.last, "\\\"answer\\\": true") || strstr(js.last, "\\\"answer\\\": false"),
          "%s", js.last);
    seen tool = {0};
    st = woolly_session_openai(session, WOOLLY_OPENAI_CHAT,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Oslo?\"}], \"temperature\": 0,"
        " \"tool_choice\": \"required\", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
        " \"parameters\": {\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"city\"],"
        " \"properties\": {\"city\": {\"type\": \"string\", \"maxLength\": 20}}}}}]}",
        on_json, &tool);
    CHECK(st == WOOLLY_OK, "tool: %s", woolly_status_name(st));
    CHECK(strstr(tool.last, "\"finish_reason\":\"tool_calls\"") && strstr(tool.last, "\"name\":\"get_weather\""),
          "%s", tool.last);

    /* A completion. */
    seen comp = {0};
    st = woolly_session_openai(session, WOOLLY_OPENAI_COMPLETION,
                               "{\"prompt\": \"The capital of France is\", \"max_tokens\": 4, \"temperature\": 0}",
                               on_json, &comp);
    CHECK(st == WOOLLY_OK && strstr(comp.last, "\"object\":\"text_completion\""), "%s: %s", woolly_status_name(st),
          comp.last);

    /* Errors: before any call of the callback. */
    const char *bad[] = {"{not json", "[]", "{\"messages\": []}", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 3}",
                         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_schema\","
                         " \"json_schema\": {\"schema\": {\"not\": {}}}}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        seen none = {0};
        st = woolly_session_openai(session, WOOLLY_OPENAI_CHAT, bad[i], on_json, &none);
        CHECK(st == WOOLLY_ERR_INVALID_ARGUMENT && none.calls == 0 && strlen(woolly_last_error()) > 0,
              "%s -> %s", bad[i], woolly_status_name(st));
    }
    seen none = {0};
    CHECK(woolly_session_openai(NULL, WOOLLY_OPENAI_CHAT, CHAT, on_json, &none) == WOOLLY_ERR_NULL_ARGUMENT, "NULL session");
    CHECK(woolly_session_openai(session, WOOLLY_OPENAI_CHAT, NULL, on_json, &none) == WOOLLY_ERR_NULL_ARGUMENT, "NULL body");
    CHECK(woolly_session_openai(session, WOOLLY_OPENAI_CHAT, CHAT, NULL, &none) == WOOLLY_ERR_NULL_ARGUMENT, "NULL callback");
    CHECK(woolly_session_openai(session, (woolly_openai_endpoint)7, CHAT, on_json, &none) == WOOLLY_ERR_INVALID_ARGUMENT,
          "bad endpoint");
    CHECK(none.calls == 0, "no calls");

    /* Through an engine: the same text as the session's. */
    woolly_engine_params ep = woolly_engine_default_params();
    ep.context_size = 1024;
    ep.n_threads = 2;
    woolly_engine *engine = NULL;
    CHECK(woolly_engine_create(model, ep, &engine) == WOOLLY_OK, "engine");
    seen es = {0};
    st = woolly_engine_openai(engine, WOOLLY_OPENAI_CHAT, CHAT_STREAM, on_json, &es);
    CHECK(st == WOOLLY_OK, "engine stream: %s", woolly_status_name(st));
    CHECK(strcmp(es.content, text) == 0, "engine streamed '%s' vs '%s'", es.content, text);
    seen ew = {0};
    st = woolly_engine_openai(engine, WOOLLY_OPENAI_CHAT, CHAT, on_json, &ew);
    CHECK(st == WOOLLY_OK && ew.calls == 1 && strstr(ew.last, "\"chat.completion\""), "engine whole: %s",
          woolly_status_name(st));
    seen estop = {.stop_after = 2};
    st = woolly_engine_openai(engine, WOOLLY_OPENAI_CHAT, CHAT_STREAM, on_json, &estop);
    CHECK(st == WOOLLY_OK && estop.calls == 2, "engine stop: %s after %d", woolly_status_name(st), estop.calls);
    seen ebad = {0};
    CHECK(woolly_engine_openai(engine, WOOLLY_OPENAI_CHAT, "{\"messages\": 1}", on_json, &ebad) == WOOLLY_ERR_INVALID_ARGUMENT &&
              ebad.calls == 0,
          "engine bad body");
    CHECK(woolly_engine_openai(NULL, WOOLLY_OPENAI_CHAT, CHAT, on_json, &ebad) == WOOLLY_ERR_NULL_ARGUMENT, "NULL engine");
    woolly_engine_free(engine);

    woolly_session_free(session);
    woolly_model_free(model);
    return finish("test_openai");
}
