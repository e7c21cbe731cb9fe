/*
 * woolly.h: the C API of Woolly, an LLM runtime for desktop applications.
 *
 * GENERATED from woolly-ffi/src (lib.rs and its modules) by `make header` (cbindgen); do not
 * edit by hand.
 *
 * Conventions
 * - Every fallible function returns a woolly_status; WOOLLY_OK is 0. woolly_last_error() gives
 *   the calling thread's message for its last failure. Status numbers are never reused.
 * - Handles (woolly_model, woolly_session) are opaque, created by *_load / *_create and released
 *   by *_free, which accept NULL. The caller owns every handle it receives.
 * - A NULL where a pointer is required returns WOOLLY_ERR_NULL_ARGUMENT; nothing crashes, and no
 *   Rust panic crosses into C (it becomes WOOLLY_ERR_INTERNAL).
 * - Params structs are passed by value; start from the *_default_params() functions.
 * - Enum numbers never change and are never reused. Where a C name disagreed with the name
 *   Python, Node and JSON use, that name was added and the old one kept as a deprecated
 *   #define of the same number (WOOLLY_PRELOAD_FULL, WOOLLY_POWER_SAVER).
 *
 * Threads
 * - A woolly_model may be used from any number of threads at once.
 * - A woolly_session runs one generation at a time (a concurrent call waits for the first);
 *   woolly_abort() may be called on it from any thread, at any time.
 * - Token callbacks run on the thread that called the generate function; progress callbacks on
 *   the loading thread; the log callback on whichever thread logs. user_data is passed through
 *   untouched and must be valid for the calls it is used in.
 * - Woolly never changes system settings (CPU governor, page cache, scheduling classes).
 */

#ifndef WOOLLY_H
#define WOOLLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Major version of this library.
#define WOOLLY_VERSION_MAJOR 0

// Minor version of this library.
#define WOOLLY_VERSION_MINOR 1

// Patch version of this library.
#define WOOLLY_VERSION_PATCH 0

// Version of the C ABI: raised only when a change breaks binaries built against an older
// header (never within a major version).
#define WOOLLY_ABI_VERSION 5

// `woolly_generate_params.seed` value that asks for a fresh random seed.
#define WOOLLY_SEED_RANDOM UINT64_MAX

// Result of every fallible function. The numbers are part of the ABI: they never change and are
// never reused; new codes are only added.
typedef enum {
  // Success.
  WOOLLY_OK = 0,
  // An argument is out of range or malformed.
  WOOLLY_ERR_INVALID_ARGUMENT = 1,
  // A required pointer argument is NULL.
  WOOLLY_ERR_NULL_ARGUMENT = 2,
  // A file could not be read.
  WOOLLY_ERR_IO = 3,
  // The file is not a valid GGUF model.
  WOOLLY_ERR_INVALID_MODEL = 4,
  // The model uses something Woolly does not support.
  WOOLLY_ERR_UNSUPPORTED = 5,
  // No path was given and the default model is not installed.
  WOOLLY_ERR_MODEL_NOT_FOUND = 6,
  // Text could not be tokenized or tokens decoded.
  WOOLLY_ERR_TOKENIZER = 7,
  // The prompt plus `max_tokens` does not fit in the context.
  WOOLLY_ERR_CONTEXT_OVERFLOW = 8,
  // Cancelled: `woolly_abort`, or a progress callback returned false.
  WOOLLY_ERR_CANCELLED = 9,
  // The output buffer is too small; the needed size was written to the count argument.
  WOOLLY_ERR_BUFFER_TOO_SMALL = 10,
  // A string argument is not valid UTF-8.
  WOOLLY_ERR_INVALID_UTF8 = 11,
  // The system refused an opt-in operation (such as a change of thread priority).
  WOOLLY_ERR_PERMISSION_DENIED = 12,
  // What was asked for does not fit in the memory Woolly may use (the message gives the
  // required and available figures).
  WOOLLY_ERR_INSUFFICIENT_MEMORY = 13,
  // The request queue is full; try again later.
  WOOLLY_ERR_BUSY = 14,
  // The request's deadline passed before it finished.
  WOOLLY_ERR_DEADLINE_EXCEEDED = 15,
  // A GPU ran out of memory for what was asked (the message gives the required and free
  // figures; a load offloads fewer layers instead of failing).
  WOOLLY_ERR_OUT_OF_DEVICE_MEMORY = 16,
  // The GPU driver reported an error.
  WOOLLY_ERR_DEVICE = 17,
  // A bug inside Woolly (a panic was caught at the boundary).
  WOOLLY_ERR_INTERNAL = 100,
} woolly_status;

// Log severities passed to a [`woolly_log_callback`].
typedef enum {
  WOOLLY_LOG_DEBUG = 0,
  WOOLLY_LOG_INFO = 1,
  WOOLLY_LOG_WARN = 2,
  WOOLLY_LOG_ERROR = 3,
} woolly_log_level;

// When the model's pages are read from disk. Python, Node and JSON name these `lazy`,
// `full_blocking`, `sequential`, `critical` and `full` (see each value).
typedef enum {
  // On first use (the mapping is lazy): the fastest load.
  WOOLLY_PRELOAD_LAZY = 0,
  // All of them during the load, so that the first generation does not wait for the disk.
  // Python, Node and JSON call it `full_blocking`; its older C name `WOOLLY_PRELOAD_FULL`
  // stays as a deprecated alias.
  WOOLLY_PRELOAD_FULL_BLOCKING = 1,
  // Sequential read-ahead into the page cache by a background thread; the load does not
  // wait ([`woolly_model_preload_progress`] tells how far it got).
  WOOLLY_PRELOAD_SEQUENTIAL = 2,
  // The header and the first quarter of the layers during the load, the rest on first use.
  WOOLLY_PRELOAD_CRITICAL = 3,
  // Every page, read by a background thread after the load returns. Python, Node and JSON
  // call it `full`; in C, `WOOLLY_PRELOAD_FULL` is the deprecated name of 1, not this.
  WOOLLY_PRELOAD_FULL_BACKGROUND = 4,
} woolly_preload;

// How a session spreads its work over threads (Woolly's own policy, `policy::threads`).
// Python, Node and JSON name these `auto`, `interactive` and `background`.
typedef enum {
  // In session params: whatever the model was loaded with. In model params: `WOOLLY_THREADS_AUTO`.
  WOOLLY_THREADS_DEFAULT = 0,
  // Per phase: one thread per physical core for the prompt, capped for generation.
  WOOLLY_THREADS_AUTO = 1,
  // Inside an application with a UI: leave a core to it (never fewer than one thread).
  WOOLLY_THREADS_INTERACTIVE = 2,
  // Background work: the worker threads run at a lower priority (nice 10).
  WOOLLY_THREADS_BACKGROUND = 3,
} woolly_thread_policy;

// How a model uses several GPUs. Python, Node and JSON name these `none` and `layer`. (Added in
// ABI 4.)
typedef enum {
  // One GPU: `main_gpu`, or the one with the most free memory.
  WOOLLY_SPLIT_NONE = 0,
  // The offloaded layers split across every GPU in proportion to its free memory (the
  // default).
  WOOLLY_SPLIT_LAYER = 1,
} woolly_split_mode;

// What a sequence does when its KV cache does not fit in GPU memory during generation (the
// load itself never fails for lack of device memory: it offloads fewer layers). Python, Node
// and JSON name these `cpu` and `error`. (Added in ABI 4.)
typedef enum {
  // The sequence runs all its layers on the CPU (the default): a warning to the log
  // callback, once per model, and `woolly_gpu_oom_fallbacks_total` in the metrics counts
  // each one. It produces the tokens the CPU alone would.
  WOOLLY_DEVICE_OOM_CPU = 0,
  // The generation (or that engine request) fails with `WOOLLY_ERR_OUT_OF_DEVICE_MEMORY`;
  // other sessions and requests go on.
  WOOLLY_DEVICE_OOM_ERROR = 1,
} woolly_device_oom;

// How a session's KV cache stores keys and values.
typedef enum {
  // Half precision, as llama.cpp keeps it (the default).
  WOOLLY_KV_F16 = 0,
  // Full precision: twice the memory.
  WOOLLY_KV_F32 = 1,
} woolly_kv_precision;

// How a generation ended.
typedef enum {
  // No generation has finished on this session yet (or the last one failed).
  WOOLLY_STOP_NONE = 0,
  // `max_tokens` were generated.
  WOOLLY_STOP_MAX_TOKENS = 1,
  // The model produced an end-of-generation token.
  WOOLLY_STOP_END_OF_GENERATION = 2,
  // The text reached one of the stop strings.
  WOOLLY_STOP_STOP_STRING = 3,
  // The token callback returned false.
  WOOLLY_STOP_CALLBACK = 4,
} woolly_stop_reason;

// How urgent a request is.
typedef enum {
  WOOLLY_PRIORITY_LOW = 0,
  WOOLLY_PRIORITY_NORMAL = 1,
  WOOLLY_PRIORITY_HIGH = 2,
  WOOLLY_PRIORITY_CRITICAL = 3,
} woolly_priority;

// What an event reports.
typedef enum {
  // A generated token: `token`, and `text`/`text_len` (the text it made final, maybe empty).
  WOOLLY_EVENT_TOKEN = 0,
  // The request finished: `result`.
  WOOLLY_EVENT_DONE = 1,
  // The request failed, was cancelled or expired: `status` and `message`.
  WOOLLY_EVENT_ERROR = 2,
} woolly_event_kind;

// Which OpenAI endpoint a request body is for.
typedef enum {
  // `/v1/chat/completions`: `messages`, `tools`, `tool_choice`, `response_format`, ...
  WOOLLY_OPENAI_CHAT = 0,
  // `/v1/completions`: `prompt`.
  WOOLLY_OPENAI_COMPLETION = 1,
} woolly_openai_endpoint;

// How Woolly trades speed for power (process-wide: every session and engine follows it).
// Python, Node and JSON name these `balanced`, `high_performance`, `power_saver` and
// `adaptive`.
typedef enum {
  // Woolly's thread policy per phase (the default).
  WOOLLY_POWER_BALANCED = 0,
  // Every physical core, the largest batches, no pauses.
  WOOLLY_POWER_HIGH_PERFORMANCE = 1,
  // Half the cores, small batches, a pause between decode steps. Python, Node and JSON call
  // it `power_saver`; its older C name `WOOLLY_POWER_SAVER` stays as a deprecated alias.
  WOOLLY_POWER_POWER_SAVER = 2,
  // Balanced on mains power, power saver on battery.
  WOOLLY_POWER_ADAPTIVE = 3,
} woolly_power_profile;

// Models by id within one memory policy (opaque). Thread-safe: any call from any thread.
// When a load would exceed the budget, the least recently used model that no handle or
// session holds (and that is not pinned) is evicted first; a model in use never is.
typedef struct woolly_cache woolly_cache;

// One model serving many requests (opaque). Thread-safe: submit and cancel from any thread;
// a long prompt being prepared (tokenized, its template rendered) holds up no other call.
typedef struct woolly_engine woolly_engine;

// A loaded model (opaque). Immutable: any number of threads and sessions may use one model at
// once.
typedef struct woolly_model woolly_model;

// A conversation with its own KV cache and threads (opaque). One generation at a time per
// session: a second call from another thread waits for the running one to end; a call from
// the running generation's own token callback (`woolly_session_generate`, `_chat`, `_reset`)
// returns `WOOLLY_ERR_BUSY` at once. [`woolly_abort`] and [`woolly_session_last_result`] may
// be called from any thread (also from the callback) and never wait for a generation.
typedef struct woolly_session woolly_session;

// Receives Woolly's log messages (the message is valid during the call only). Called on
// whichever thread logs: it must be thread-safe.
typedef void (*woolly_log_callback)(woolly_log_level level, const char *message, void *user_data);

// Load progress: `progress` goes from 0 to 1; return false to cancel the load
// (`WOOLLY_ERR_CANCELLED`). Called on the loading thread.
typedef bool (*woolly_progress_callback)(float progress, void *user_data);

// What Woolly may use of the machine's memory. Zero in a field means its default.
typedef struct {
  // A hard limit on what Woolly holds for this model (or for every model of a
  // `woolly_cache`) and its sessions, in bytes (0: none beyond what the system has).
  uint64_t budget_bytes;
  // Memory left to the system and other programs (0: 25% of RAM up to 8 GiB, 20% up to
  // 16 GiB, about 17% up to 32 GiB, 12.5% above).
  uint64_t reserve_bytes;
  // Used fraction of RAM from which the machine counts as under pressure (0: 0.85).
  float pressure_threshold;
} woolly_memory_policy;

// How to load a model. Start from [`woolly_model_default_params`].
typedef struct {
  // When the file is read from disk.
  woolly_preload preload;
  // Lock the model in memory (mlock). When the system refuses (RLIMIT_MEMLOCK), the load
  // goes on unlocked with a warning to the log callback; [`woolly_model_is_locked`] says.
  bool use_mlock;
  // Copy weights into faster layouts for this CPU (default true).
  bool repack;
  // Threads for `woolly_generate` and for sessions whose params leave them to the model
  // (0: chosen by `thread_policy`; at most 1024). A count above the CPUs available to the
  // process is capped there, with a warning to the log callback.
  uint32_t n_threads;
  // Thread policy for the same (`WOOLLY_THREADS_DEFAULT` means `WOOLLY_THREADS_AUTO`).
  woolly_thread_policy thread_policy;
  // Optional progress callback, and its user data.
  woolly_progress_callback progress_callback;
  void *progress_user_data;
  // The context the load plans memory for (0: the smaller of 4096 and the model's): the
  // load fails with `WOOLLY_ERR_INSUFFICIENT_MEMORY` when the model and one session of it
  // do not fit.
  uint32_t context_size;
  // The memory policy of this model (ignored by `woolly_cache_load`: the cache's applies).
  woolly_memory_policy memory;
  // Layers to run on CUDA GPUs, counted from the last, with the output projection: -1 (the
  // default) as many as fit in free device memory after the margin, 0 none (CPU only), `n`
  // that many (fewer when they do not fit: the load never fails for lack of device memory).
  // Below -1: `WOOLLY_ERR_INVALID_ARGUMENT`. (Added in ABI 4.)
  int32_t gpu_layers;
  // The GPU that holds the output and the last layers (its CUDA ordinal); -1 (the default)
  // the one with the most free memory. (Added in ABI 4.)
  int32_t main_gpu;
  // How several GPUs share the offloaded layers (default `WOOLLY_SPLIT_LAYER`). (Added in
  // ABI 4.)
  woolly_split_mode split_mode;
  // Device memory to leave free on each GPU, in bytes; 0 (the default) the larger of 1 GiB
  // and 10% of the device. (Added in ABI 4.)
  uint64_t gpu_margin_bytes;
  // What a sequence whose KV cache does not fit in GPU memory does (default
  // `WOOLLY_DEVICE_OOM_CPU`). (Added in ABI 4.)
  woolly_device_oom on_device_oom;
} woolly_model_params;

// What to generate. Start from [`woolly_generate_default_params`].
typedef struct {
  // Most tokens to generate.
  uint32_t max_tokens;
  // 0 is greedy.
  float temperature;
  // 0 keeps every token.
  uint32_t top_k;
  // 1 turns nucleus sampling off.
  float top_p;
  // 0 turns min-p off.
  float min_p;
  // 1 turns the repetition penalty off.
  float repeat_penalty;
  // Subtracted from a recent token's logit once per occurrence (0: off).
  float frequency_penalty;
  // Subtracted from the logit of every recent token (0: off).
  float presence_penalty;
  // How many of the latest tokens the penalties look at.
  uint32_t penalty_last_n;
  // The same seed, prompt and settings give the same text; [`WOOLLY_SEED_RANDOM`] draws one.
  uint64_t seed;
  // `n_stop` stop strings (NUL-terminated UTF-8); generation ends before the first one.
  const char *const *stop;
  size_t n_stop;
  // Keep going past end-of-generation tokens.
  bool ignore_eos;
  // Treat the prompt as one user message and apply the model's chat template.
  bool chat;
  // In a chat (`chat`, [`woolly_session_chat`]), also turn special-token text inside the
  // messages, such as `<end_of_turn>`, into control tokens. False by default: message text is
  // tokenized as text, so untrusted content cannot forge a turn; the chat template's own
  // markup is always parsed. (Added in ABI 3.)
  bool parse_special_in_messages;
  // What the output must match, as the JSON every front end spells a constraint with (one
  // NUL-terminated UTF-8 string): `{"json_schema": {...}}` (a JSON Schema), `"json_object"`
  // (any JSON object), `{"gbnf": "root ::= ..."}` (a grammar in llama.cpp's GBNF),
  // `{"lark": "start: ..."}`, `{"regex": "[0-9]+"}` (the whole output matches it) or
  // `{"choice": ["yes", "no"]}` (exactly one of them). Generation ends when the output is
  // complete. NULL (the default): no constraint. JSON that is not one of these, an
  // unsupported schema keyword or a malformed grammar or expression is
  // `WOOLLY_ERR_INVALID_ARGUMENT` (with a message) before anything is generated. Read during
  // the call only. (Added in ABI 5.)
  const char *constraint_json;
  // -1 (the default): no log probabilities; 0 to 20: each generated token's log probability
  // and this many of the most likely alternatives, read with [`woolly_current_logprobs`]
  // in the token callback (or from `woolly_event.logprobs`). Other values:
  // `WOOLLY_ERR_INVALID_ARGUMENT`. (Added in ABI 5.)
  int32_t logprobs;
} woolly_generate_params;

// One token and its log probability. (Added in ABI 5.)
typedef struct {
  int32_t id;
  // Natural logarithm of the token's probability in the model's distribution (a softmax of
  // the raw logits, before sampling filters, penalties or a constraint).
  float logprob;
  // The token's bytes, `bytes_len` of them, not NUL-terminated and not always valid UTF-8 on
  // their own (a character may span tokens); a valid empty string, never NULL, when empty.
  const char *bytes;
  size_t bytes_len;
} woolly_logprob;

// The log probabilities of one generated token: the token chosen, and the `n_top_logprobs`
// most likely tokens of that step, best first (as many as the params' `logprobs` asked for).
// (Added in ABI 5.)
typedef struct {
  woolly_logprob chosen;
  // NULL when `n_top_logprobs` is 0.
  const woolly_logprob *top_logprobs;
  size_t n_top_logprobs;
} woolly_token_logprobs;

// Receives each piece of generated text (`piece[0..len]`, UTF-8, not NUL-terminated; a piece
// may be empty while a character or a possible stop string is incomplete, and `piece` then
// points to a valid empty string, never NULL) with the token id. `piece` is valid only during
// the call. When the params asked for `logprobs`, [`woolly_current_logprobs`] gives this
// token's log probabilities during the call.
// Return false to stop generating. Called on the thread that called the generate function.
typedef bool (*woolly_token_callback)(const char *piece, size_t len, int32_t id, void *user_data);

// How to open a session. Start from [`woolly_session_default_params`].
typedef struct {
  // Context size in tokens (0: the smaller of 4096 and the model's).
  uint32_t context_size;
  // Threads for both phases, the caller's included (0: chosen by `thread_policy`; at most
  // 1024). A count above the CPUs available to the process is capped there, with a warning
  // to the log callback (the `woolly_worker_threads` metric shows what runs).
  uint32_t n_threads;
  // `WOOLLY_THREADS_DEFAULT`: the model's settings (`n_threads` 0 then means the model's too).
  woolly_thread_policy thread_policy;
  // Pin worker threads to distinct physical cores (Linux; off by default, as other programs
  // on a desktop compete for the cores).
  bool pin_threads;
  // Prompt tokens per forward pass (0: 512); woolly_abort is checked between layers.
  uint32_t batch_size;
  // How the KV cache stores keys and values.
  woolly_kv_precision kv_precision;
} woolly_session_params;

// One chat message: a role (`"system"`, `"user"`, `"assistant"`) and its content, both
// NUL-terminated UTF-8.
typedef struct {
  const char *role;
  const char *content;
} woolly_chat_message;

// What the last successful generation on a session did (see [`woolly_session_last_result`]).
typedef struct {
  woolly_stop_reason stop_reason;
  // Tokens of the prompt, and how many of them came from the session's cache.
  uint32_t prompt_tokens;
  uint32_t cached_tokens;
  // Tokens generated.
  uint32_t generated_tokens;
  // Milliseconds spent on the prompt and on generation, and from the call to the first token.
  double prompt_ms;
  double generation_ms;
  double ttft_ms;
  // Prompt and generation speed, tokens per second.
  double prompt_tok_s;
  double generation_tok_s;
  // Milliseconds an engine request waited before it started (0 for sessions).
  double queue_ms;
} woolly_result;

// How an engine runs. Start from [`woolly_engine_default_params`]; 0 in a field means its
// default.
typedef struct {
  // Most sequences in one step (16).
  uint32_t max_batch_size;
  // Most requests running at once, each with a KV cache of `context_size` (16).
  uint32_t max_concurrent;
  // Most requests waiting; beyond it submissions fail with `WOOLLY_ERR_BUSY` (256).
  uint32_t queue_capacity;
  // Prompt tokens read per step (256).
  uint32_t prefill_chunk;
  // When idle, how long a new request may wait for others to share its first step (0).
  uint32_t max_latency_ms;
  // Context of each sequence (the smaller of 4096 and the model's).
  uint32_t context_size;
  woolly_kv_precision kv_precision;
  // Threads, the engine's own included (Woolly's policy for batched work).
  uint32_t n_threads;
} woolly_engine_params;

// How to run one request. Start from [`woolly_request_default_params`].
typedef struct {
  // What to generate (`generate.chat` renders the prompt as one user message).
  woolly_generate_params generate;
  woolly_priority priority;
  // Someone waits for the first token: ahead of its priority's others, and urgent.
  bool latency_sensitive;
  // The request fails with `WOOLLY_ERR_DEADLINE_EXCEEDED` unless it finishes within this
  // many milliseconds of its submission (0: no deadline).
  uint32_t timeout_ms;
} woolly_request_params;

// One event of a request, valid only during the callback (copy what you keep). Woolly
// writes it and passes it by pointer, so fields are added only at its end.
typedef struct {
  woolly_event_kind kind;
  uint64_t request_id;
  int32_t token;
  // Not NUL-terminated; `text_len` bytes of UTF-8 (when 0, a valid empty string, never NULL).
  const char *text;
  size_t text_len;
  // `WOOLLY_OK`, or the failure of an ERROR event.
  woolly_status status;
  // NUL-terminated message of an ERROR event ("" otherwise).
  const char *message;
  // The figures of a DONE event.
  woolly_result result;
  // A TOKEN event's log probabilities when the request asked for them (`logprobs` 0 to 20
  // in its params), else NULL; what [`woolly_current_logprobs`] returns during the callback.
  // Valid only during the callback. (Added in ABI 5.)
  const woolly_token_logprobs *logprobs;
} woolly_event;

// Receives a request's events: tokens, then exactly one DONE or ERROR. Called on the engine's
// thread (never the submitting one); keep it short. From it, [`woolly_engine_submit`] and
// [`woolly_engine_cancel`] work, [`woolly_engine_generate`] on the same engine returns
// `WOOLLY_ERR_BUSY` (it would wait for itself), and [`woolly_engine_free`] of the same engine
// returns at once, the engine stopping when the callback returns.
typedef void (*woolly_event_callback)(const woolly_event *event, void *user_data);

// Receives one JSON object: NUL-terminated UTF-8, owned by Woolly and valid only during the
// call. Return false to stop (the reply then ends as it stands, and the function returns
// `WOOLLY_OK`). Called on the thread that called the function.
typedef bool (*woolly_json_callback)(const char *json, void *user_data);

// What a model needs in memory, estimated from its file's header (see [`woolly_model_estimate`]).
typedef struct {
  // Tensor data the forward pass reads.
  uint64_t weights_bytes;
  // Tokenizer tables and other per-model structures.
  uint64_t overhead_bytes;
  // One session's KV cache at `context_size`.
  uint64_t kv_cache_bytes;
  // One session's activations.
  uint64_t scratch_bytes;
  // The sum of the above: what the load checks against the budget.
  uint64_t total_bytes;
  uint32_t context_size;
} woolly_memory_estimate;

// Deprecated: the old name of `WOOLLY_PRELOAD_FULL_BLOCKING` (1, the preload Python, Node and
// JSON call `full_blocking`). What they call `full` is `WOOLLY_PRELOAD_FULL_BACKGROUND` (4).
#define WOOLLY_PRELOAD_FULL WOOLLY_PRELOAD_FULL_BLOCKING

// Deprecated: the old name of `WOOLLY_POWER_POWER_SAVER` (2, the profile Python, Node and JSON
// call `power_saver`).
#define WOOLLY_POWER_SAVER WOOLLY_POWER_POWER_SAVER

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// The library version, e.g. `"0.1.0"`. Static storage: do not free.
const char *woolly_version(void);

// The C ABI version ([`WOOLLY_ABI_VERSION`] of the library actually loaded).
uint32_t woolly_abi_version(void);

// The message of the calling thread's last failure ("" when none). The string belongs to the
// library and stays valid until the next failing call on this thread.
const char *woolly_last_error(void);

// A short name for `status` (static storage), e.g. `"WOOLLY_ERR_IO"`;
// `"WOOLLY_STATUS_UNKNOWN"` for a number this library does not know.
const char *woolly_status_name(woolly_status status);

// Installs the process-wide log callback (NULL removes it). Woolly writes nothing to
// stdout/stderr itself. Returns once no call of the callback it replaces runs any more on any
// other thread: from then on the old callback is never called again (its `user_data` may be
// freed). Messages Woolly logs while the callback runs on the same thread (the callback
// calling into Woolly) are dropped; calling this from inside the callback is allowed.
void woolly_set_log_callback(woolly_log_callback callback, void *user_data);

// Default load parameters: lazy mapping, no mlock, repacking on, automatic threads, no
// progress callback, the default context and memory policy, and on CUDA GPUs as many layers
// as fit (`gpu_layers` -1, `main_gpu` -1, `WOOLLY_SPLIT_LAYER`, the default margin,
// `WOOLLY_DEVICE_OOM_CPU`).
woolly_model_params woolly_model_default_params(void);

// Loads the GGUF model at `path` (NULL: `$WOOLLY_MODEL`, then the default model installed by
// `make model`) and stores a new handle in `*out_model` (set to NULL on failure). The caller
// owns the handle and releases it with [`woolly_model_free`].
//
// # Safety
// `path` is NULL or a NUL-terminated string; `out_model` points to writable storage.
woolly_status woolly_model_load(const char *path,
                                woolly_model_params params,
                                woolly_model **out_model);

// Releases a model (NULL is allowed). Sessions created from it keep their own reference and
// stay usable until they are freed.
//
// # Safety
// `model` is NULL or a handle from [`woolly_model_load`] not freed before.
void woolly_model_free(woolly_model *model);

// The model's vocabulary size (0 for NULL).
//
// # Safety
// `model` is NULL or a live handle.
uint32_t woolly_model_n_vocab(const woolly_model *model);

// The context length the model was trained with, in tokens (0 for NULL).
//
// # Safety
// `model` is NULL or a live handle.
uint32_t woolly_model_n_ctx_train(const woolly_model *model);

// The model's architecture name, e.g. `"gemma3"` (static storage; "" for NULL).
//
// # Safety
// `model` is NULL or a live handle.
const char *woolly_model_architecture(const woolly_model *model);

// The model's facts (architecture, hyperparameters, tensor types and sizes, vocabulary, chat
// format, load time) as JSON, written like [`woolly_detokenize`] writes text.
//
// # Safety
// `model` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_model_info_json(const woolly_model *model,
                                     char *buf,
                                     size_t capacity,
                                     size_t *len);

// Tokenizes the UTF-8 `text` (BOS added as the model asks; special-token text such as
// `<start_of_turn>` parsed). Writes up to `capacity` ids to `ids` and the token count to
// `*n_tokens`. When the ids do not fit, nothing is written to `ids`, `*n_tokens` is the count
// needed and the result is `WOOLLY_ERR_BUFFER_TOO_SMALL` (so `capacity` 0 with `ids` NULL asks
// for the size).
//
// # Safety
// `model` is a live handle; `text` a NUL-terminated string; `ids` NULL or writable for
// `capacity` elements; `n_tokens` writable.
woolly_status woolly_tokenize(const woolly_model *model,
                              const char *text,
                              int32_t *ids,
                              size_t capacity,
                              size_t *n_tokens);

// Turns `n_ids` token ids into UTF-8 text (control tokens such as BOS render as nothing) and writes
// it, NUL-terminated, to `buf`. `*len` receives the text's length in bytes without the NUL.
// The text itself may contain NUL bytes (the byte token `<0x00>` decodes to one, as it does in
// Python and Node): `*len` is authoritative, not `strlen`.
// When `capacity` cannot hold the text and its NUL, nothing is written to `buf` and the result
// is `WOOLLY_ERR_BUFFER_TOO_SMALL` (so `capacity` 0 with `buf` NULL asks for the size). Bytes
// that are not valid UTF-8 on their own (a character split across the ids) become U+FFFD.
//
// # Safety
// `model` is a live handle; `ids` readable for `n_ids` elements (NULL when `n_ids` is 0);
// `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_detokenize(const woolly_model *model,
                                const int32_t *ids,
                                size_t n_ids,
                                char *buf,
                                size_t capacity,
                                size_t *len);

// Defaults: 256 tokens, temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty, a
// random seed, no stop strings, no constraint (`constraint_json` NULL), no log probabilities
// (`logprobs` -1).
woolly_generate_params woolly_generate_default_params(void);

// The log probabilities of the token being delivered, called from inside a token callback
// (`woolly_token_callback`, also `woolly_engine_generate`'s) or an engine's TOKEN event: the
// chosen token and its most likely alternatives. NULL when the generation did not ask for
// them (`logprobs` -1) or outside such a callback. Owned by Woolly and valid only until the
// callback returns (copy what you keep); only on the thread that runs the callback.
const woolly_token_logprobs *woolly_current_logprobs(void);

// Generates a reply to the UTF-8 `prompt` on a session the model keeps for these calls
// (threads as the model was loaded with; concurrent calls each get their own), calling `on_token` (may be NULL) for each piece. Blocks until done. To cancel,
// return false from `on_token`; to cancel also during the prompt, use a session and
// [`woolly_abort`].
//
// # Safety
// `model` is a live handle; `prompt` a NUL-terminated string; the pointers inside `params`
// valid as documented there.
woolly_status woolly_generate(const woolly_model *model,
                              const char *prompt,
                              woolly_generate_params params,
                              woolly_token_callback on_token,
                              void *user_data);

// Defaults: context 0 (automatic), threads as the model was loaded with, no pinning,
// batch size 512.
woolly_session_params woolly_session_default_params(void);

// Opens a session on `model` into `*out_session` (NULL on failure). The session keeps the model
// alive; release it with [`woolly_session_free`].
//
// # Safety
// `model` is a live handle; `out_session` writable.
woolly_status woolly_session_create(const woolly_model *model,
                                    woolly_session_params params,
                                    woolly_session **out_session);

// Releases a session (NULL is allowed). Must not be called while a generation on it runs on
// another thread; called from that generation's own token callback it does nothing but log
// an error (the session stays usable: free it after the generation returns).
//
// # Safety
// `session` is NULL or a handle from [`woolly_session_create`] not freed before.
void woolly_session_free(woolly_session *session);

// Generates on `session` (its cache keeps the conversation's shared prefix between calls),
// streaming to `on_token` (may be NULL). Returns `WOOLLY_ERR_CANCELLED` after
// [`woolly_abort`].
//
// # Safety
// As for [`woolly_generate`], with `session` a live handle.
woolly_status woolly_session_generate(const woolly_session *session,
                                      const char *prompt,
                                      woolly_generate_params params,
                                      woolly_token_callback on_token,
                                      void *user_data);

// Generates the assistant's reply to `n_messages` messages, rendered with the model's chat
// template (its own Jinja template, or the built-in format of its family), on `session`.
// `params.chat` is ignored. Returns `WOOLLY_ERR_CANCELLED` after [`woolly_abort`].
//
// # Safety
// `session` is a live handle; `messages` readable for `n_messages` elements whose strings are
// NUL-terminated; the pointers inside `params` valid as documented there.
woolly_status woolly_session_chat(const woolly_session *session,
                                  const woolly_chat_message *messages,
                                  size_t n_messages,
                                  woolly_generate_params params,
                                  woolly_token_callback on_token,
                                  void *user_data);

// Writes what the last generation on `session` did to `*out` (`stop_reason`
// `WOOLLY_STOP_NONE` when the last call failed, none has run, or one runs now). Never waits
// for a running generation; may be called from any thread, its token callback included.
//
// # Safety
// `session` is a live handle; `out` writable.
woolly_status woolly_session_last_result(const woolly_session *session, woolly_result *out);

// Forgets the conversation kept in `session`'s cache (the next prompt is computed from the
// start). Waits for a generation running on it on another thread to end; from that
// generation's own token callback returns `WOOLLY_ERR_BUSY` (nothing reset).
//
// # Safety
// `session` is a live handle.
woolly_status woolly_session_reset(const woolly_session *session);

// Stops the generation running on `session`, from any thread (also in the middle of a long
// prompt): that call returns `WOOLLY_ERR_CANCELLED` within one layer's work. No effect when
// nothing runs. NULL is allowed.
//
// # Safety
// `session` is NULL or a live handle.
void woolly_abort(const woolly_session *session);

// The defaults (all zero: see each field).
woolly_engine_params woolly_engine_default_params(void);

// Defaults: `woolly_generate_default_params()`, Normal priority, no deadline.
woolly_request_params woolly_request_default_params(void);

// Starts an engine on `model` into `*out_engine` (NULL on failure). The engine keeps the
// model alive; free it with [`woolly_engine_free`].
//
// # Safety
// `model` a live handle; `out_engine` writable.
woolly_status woolly_engine_create(const woolly_model *model,
                                   woolly_engine_params params,
                                   woolly_engine **out_engine);

// Stops an engine (NULL is allowed): every request still waiting or running ends with an
// ERROR event (`WOOLLY_ERR_CANCELLED`) before this returns. From one of the engine's own
// event callbacks it returns at once instead (the handle is gone; the engine's thread ends
// the other requests the same way once the callback returns, and the callback's own request
// gets no further event after an ERROR).
//
// # Safety
// `engine` NULL or a handle from [`woolly_engine_create`] not freed before.
void woolly_engine_free(woolly_engine *engine);

// Submits `prompt` with `params`; its events go to `callback` (may be NULL) with
// `user_data`, on the engine's thread; `*out_id` (may be NULL) gets its id for
// [`woolly_engine_cancel`]. Fails at once, and never calls `callback`, with `WOOLLY_ERR_BUSY`
// (queue full), `WOOLLY_ERR_DEADLINE_EXCEEDED`, `WOOLLY_ERR_CONTEXT_OVERFLOW` or an argument
// error; otherwise exactly one DONE or ERROR event ends the request.
//
// # Safety
// `engine` a live handle; `prompt` a NUL-terminated string; `user_data` valid until the last
// event; `out_id` NULL or writable.
woolly_status woolly_engine_submit(const woolly_engine *engine,
                                   const char *prompt,
                                   woolly_request_params params,
                                   woolly_event_callback callback,
                                   void *user_data,
                                   uint64_t *out_id);

// Cancels request `id` (from any thread): it ends with an ERROR event
// (`WOOLLY_ERR_CANCELLED`) within a step, and its slot goes to the next request. No effect
// (still `WOOLLY_OK`) when it already ended.
//
// # Safety
// `engine` a live handle.
woolly_status woolly_engine_cancel(const woolly_engine *engine, uint64_t id);

// Submits `prompt` and waits for its end, streaming tokens to `on_token` (may be NULL; its
// return value is ignored: cancel with [`woolly_engine_cancel`] and the id written to
// `*out_id` (may be NULL) as soon as the request is queued). `*out_result` (may be NULL) gets
// the figures. Returns the request's status (`WOOLLY_ERR_CANCELLED`,
// `WOOLLY_ERR_DEADLINE_EXCEEDED`, `WOOLLY_ERR_BUSY`, ...); `WOOLLY_ERR_BUSY` at once, with
// nothing queued, when called from an event callback of the same engine (it would wait for
// itself: use [`woolly_engine_submit`] there).
//
// # Safety
// As [`woolly_engine_submit`]; `out_result` NULL or writable. `on_token` runs on the engine's
// thread.
woolly_status woolly_engine_generate(const woolly_engine *engine,
                                     const char *prompt,
                                     woolly_request_params params,
                                     woolly_token_callback on_token,
                                     void *user_data,
                                     uint64_t *out_id,
                                     woolly_result *out_result);

// The engine's counters (submitted, completed, failed, cancelled, deadline_exceeded,
// rejected_busy, steps, preempted_steps, mean_batch_size, queued, active, decode_step_ms,
// mean_queue_ms, mean_ttft_ms) and `estimated_wait_ms` for a Normal request, as JSON, written
// like `woolly_detokenize` writes text.
//
// # Safety
// `engine` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_engine_stats_json(const woolly_engine *engine,
                                       char *buf,
                                       size_t capacity,
                                       size_t *len);

// Runs an OpenAI-shaped request (`request_json`, the body a client would POST) on `session`.
// Not streaming, `on_json` receives the response object once (`chat.completion` or
// `text_completion`, with `usage`, `finish_reason`, `tool_calls`, `logprobs`); with
// `"stream": true` it receives each chunk (`chat.completion.chunk` / `text_completion`), the
// closing one with `finish_reason`, then the `usage` chunk when
// `stream_options.include_usage`. The request's fields and Woolly's extensions are those of
// `woolly serve` (see the README). An invalid body is `WOOLLY_ERR_INVALID_ARGUMENT` (its
// message in [`woolly_last_error`](crate::woolly_last_error)) before any work;
// [`woolly_abort`](crate::woolly_abort) cancels. The session's cache keeps the shared prefix
// between calls.
//
// # Safety
// `session` a live handle; `request_json` NUL-terminated; `on_json` safe to call on this
// thread with `user_data`.
woolly_status woolly_session_openai(const woolly_session *session,
                                    woolly_openai_endpoint endpoint,
                                    const char *request_json,
                                    woolly_json_callback on_json,
                                    void *user_data);

// [`woolly_session_openai`] through `engine`: the request is batched with the engine's others
// (its `priority`, `deadline_ms` and `latency_sensitive` fields are honoured). The call waits
// for the reply, passing the chunks (or the response) to `on_json` on this thread; returning
// false cancels the request. A full queue is `WOOLLY_ERR_BUSY`, a passed deadline
// `WOOLLY_ERR_DEADLINE_EXCEEDED`. Not from an engine's own event callback (that would wait for
// itself: `WOOLLY_ERR_BUSY`).
//
// # Safety
// `engine` a live handle; `request_json` NUL-terminated; `on_json` safe to call on this
// thread with `user_data`.
woolly_status woolly_engine_openai(const woolly_engine *engine,
                                   woolly_openai_endpoint endpoint,
                                   const char *request_json,
                                   woolly_json_callback on_json,
                                   void *user_data);

// Estimates what loading `path` (NULL: the default model) with `params` takes, from the
// file's header alone, into `*out`.
//
// # Safety
// `path` NULL or a NUL-terminated string; `out` writable.
woolly_status woolly_model_estimate(const char *path,
                                    woolly_model_params params,
                                    woolly_memory_estimate *out);

// The figures of the calling thread's last failure when it was
// `WOOLLY_ERR_INSUFFICIENT_MEMORY`: bytes required and bytes Woolly could use. Returns false
// (and leaves the outputs alone) when the last failure was another one.
//
// # Safety
// `required` and `available` NULL or writable.
bool woolly_last_error_memory(uint64_t *required, uint64_t *available);

// The machine's memory as Woolly sees it under `policy` (total, available, reserve,
// pressure, budget, headroom, page sizes, this process's RSS and peak RSS) as JSON, written
// like `woolly_detokenize` writes text.
//
// # Safety
// `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_memory_report_json(woolly_memory_policy policy,
                                        char *buf,
                                        size_t capacity,
                                        size_t *len);

// The model's memory (its estimate, what it and its sessions are charged, headroom, the
// file's resident bytes, lock and preload state, RSS) as JSON, written like
// `woolly_detokenize` writes text.
//
// # Safety
// `model` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_model_memory_json(const woolly_model *model,
                                       char *buf,
                                       size_t capacity,
                                       size_t *len);

// How far a background preload (`WOOLLY_PRELOAD_SEQUENTIAL`, `_FULL_BACKGROUND`) got: the
// fraction of the file read (1 for the other strategies) and whether it finished.
//
// # Safety
// `model` a live handle; `fraction` and `finished` NULL or writable.
woolly_status woolly_model_preload_progress(const woolly_model *model,
                                            float *fraction,
                                            bool *finished);

// Whether the model's memory is locked (`use_mlock` was asked for and the system allowed it).
// False for NULL.
//
// # Safety
// `model` NULL or a live handle.
bool woolly_model_is_locked(const woolly_model *model);

// Creates a cache whose models share `policy` into `*out_cache` (NULL on failure); release it
// with [`woolly_cache_free`].
//
// # Safety
// `out_cache` writable.
woolly_status woolly_cache_create(woolly_memory_policy policy, woolly_cache **out_cache);

// Releases a cache (NULL is allowed). Model handles taken from it stay valid until freed.
//
// # Safety
// `cache` NULL or a handle from [`woolly_cache_create`] not freed before.
void woolly_cache_free(woolly_cache *cache);

// The model `id`, loaded from `path` (NULL: the default model) when the cache does not hold
// it (the same id from another path swaps the model), as a new handle in `*out_model` (NULL on
// failure). The caller owns the handle and frees it with `woolly_model_free`; while it (or a
// session on it) lives, the model counts as in use and is never evicted. `params.memory` is
// ignored: the cache's policy applies. Fails with `WOOLLY_ERR_INSUFFICIENT_MEMORY` when the
// model does not fit even after evicting every idle model.
//
// # Safety
// `cache` a live handle; `id` a NUL-terminated string; `path` NULL or one; `out_model`
// writable.
woolly_status woolly_cache_load(const woolly_cache *cache,
                                const char *id,
                                const char *path,
                                woolly_model_params params,
                                woolly_model **out_model);

// The model `id` as a new handle in `*out_model`, or NULL there when the cache does not hold
// it (still `WOOLLY_OK`). Thread settings are automatic.
//
// # Safety
// `cache` a live handle; `id` a NUL-terminated string; `out_model` writable.
woolly_status woolly_cache_get(const woolly_cache *cache, const char *id, woolly_model **out_model);

// Removes `id` from the cache; `*was_loaded` (may be NULL) says whether it was there. Its
// memory returns when the last handle and session on it are freed.
//
// # Safety
// `cache` a live handle; `id` a NUL-terminated string; `was_loaded` NULL or writable.
woolly_status woolly_cache_unload(const woolly_cache *cache, const char *id, bool *was_loaded);

// Keeps `id` from eviction (`pinned` true) or allows it again. `WOOLLY_ERR_INVALID_ARGUMENT`
// when `id` is not loaded.
//
// # Safety
// `cache` a live handle; `id` a NUL-terminated string.
woolly_status woolly_cache_pin(const woolly_cache *cache, const char *id, bool pinned);

// Evicts idle, unpinned models while the machine is under memory pressure; `*evicted` (may
// be NULL) gets how many went.
//
// # Safety
// `cache` a live handle; `evicted` NULL or writable.
woolly_status woolly_cache_relieve_pressure(const woolly_cache *cache, uint32_t *evicted);

// The cache (each model's id, path, size, in use and pinned; evictions; held bytes,
// headroom, budget, reserve, pressure) as JSON, written like `woolly_detokenize` writes text.
//
// # Safety
// `cache` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_cache_report_json(const woolly_cache *cache,
                                       char *buf,
                                       size_t capacity,
                                       size_t *len);

// Sets the process-wide power profile.
woolly_status woolly_set_power_profile(woolly_power_profile profile);

// Starts the thermal monitor on a background thread: above `threshold_c` (0: 80 °C) Woolly
// halves its worker threads, and restores them 5 °C lower; sensors are read every
// `interval_ms` (0: 2000). `sysfs_root` NULL reads the real `/sys`; a path reads a fake tree
// (tests). Replaces a monitor already running.
//
// # Safety
// `sysfs_root` NULL or a NUL-terminated string.
woolly_status woolly_start_thermal_monitor(float threshold_c,
                                           uint32_t interval_ms,
                                           const char *sysfs_root);

// Stops the thermal monitor (no effect when none runs); the thread cap it set is lifted.
void woolly_stop_thermal_monitor(void);

// The power state (profile, power source, the knobs in effect, throttled, temperature,
// throttle events, whether the monitor runs) as JSON, written like `woolly_detokenize`
// writes text.
//
// # Safety
// `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_power_state_json(char *buf, size_t capacity, size_t *len);

// Explicit opt-in that changes the system for every program: sets the CPU frequency governor
// (e.g. `"powersave"`) of every CPU. `sysfs_root` NULL is the real `/`. Returns
// `WOOLLY_ERR_PERMISSION_DENIED` when the system refuses (it needs root),
// `WOOLLY_ERR_UNSUPPORTED` without cpufreq. Woolly never calls this by itself.
//
// # Safety
// `governor` a NUL-terminated string; `sysfs_root` NULL or one.
woolly_status woolly_set_cpu_governor(const char *governor, const char *sysfs_root);

// Explicit opt-in that changes the system for every program: sets NVIDIA GPU `index`'s power
// limit to `watts` through NVML. `WOOLLY_ERR_PERMISSION_DENIED` when the driver refuses,
// `WOOLLY_ERR_UNSUPPORTED` without a driver. Woolly never calls this by itself.
woolly_status woolly_set_gpu_power_limit(uint32_t index, double watts);

// Every metric Woolly keeps (requests, tokens, latencies and TTFT histograms per model, engine
// queue depth and batch sizes, RSS, thermal throttling, worker threads, GPU figures when an
// NVIDIA driver is present) in the Prometheus text exposition format 0.0.4, written like
// `woolly_detokenize` writes text. Woolly opens no port: serve it from the host application.
//
// # Safety
// `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_metrics_prometheus(char *buf, size_t capacity, size_t *len);

// The same metrics as a JSON snapshot, written like `woolly_detokenize` writes text.
//
// # Safety
// `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_metrics_json(char *buf, size_t capacity, size_t *len);

// The model's counters (generations, failures, cancellations, tokens, times, rates) as JSON,
// written like [`woolly_detokenize`] writes text.
//
// # Safety
// `model` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_model_metrics_json(const woolly_model *model,
                                        char *buf,
                                        size_t capacity,
                                        size_t *len);

// This machine's hardware as Woolly detected it (cores, caches, SIMD, memory), as JSON, written
// like [`woolly_detokenize`] writes text (`capacity` 0 with `buf` NULL asks for the size).
//
// # Safety
// `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_hardware_json(char *buf, size_t capacity, size_t *len);

// The CUDA devices as the driver reports them now, as JSON, written like
// [`woolly_detokenize`] writes text (`capacity` 0 with `buf` NULL asks for the size): an
// object with `available`, `reason` (why there is no device: a build without CUDA, no driver,
// no device, a driver error; null when there are devices), `driver_version` (e.g. `"12.4"`)
// and `devices`, each with `index`, `name`, `total_bytes`, `free_bytes`,
// `compute_capability` (e.g. `"9.0"`), `sm_count`, `max_threads_per_block` and `warp_size`.
// The caller owns `buf`; free memory is read anew on each call, so leave some room between a
// size query and the call after it. (Added in ABI 4.)
//
// # Safety
// `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_cuda_devices_json(char *buf, size_t capacity, size_t *len);

// The diagnostics report as JSON: version, build, hardware, the kernels and thread counts
// Woolly chose, this process's memory, and with a `model` (may be NULL) that model's facts and
// counters. Written like [`woolly_detokenize`] writes text. The report is made anew on each
// call, so a size query and the call after it may differ slightly: leave some room.
//
// # Safety
// `model` NULL or a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
woolly_status woolly_diagnostics_json(const woolly_model *model,
                                      char *buf,
                                      size_t capacity,
                                      size_t *len);

// The doctor's report as JSON (keys `cpu`, `memory`, `gpu`, `inference`, `recommendations`):
// the machine and, with `measure`, generation speed at batch sizes 1 to 16 on the model at
// `path` (NULL: the default model; about 10 s on two cores) with recommendations from those
// figures. Written like `woolly_detokenize` writes text; blocks while it measures.
//
// # Safety
// `path` NULL or a NUL-terminated string; `buf` NULL or writable for `capacity` bytes; `len`
// writable.
woolly_status woolly_doctor_json(const char *path,
                                 bool measure,
                                 char *buf,
                                 size_t capacity,
                                 size_t *len);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* WOOLLY_H */


