// Types of the woolly package (Node.js and Electron main process).

/** The C API's status names; `WoollyError.code` is one of them. */
export type WoollyErrorCode =
  | 'WOOLLY_ERR_INVALID_ARGUMENT'
  | 'WOOLLY_ERR_IO'
  | 'WOOLLY_ERR_INVALID_MODEL'
  | 'WOOLLY_ERR_UNSUPPORTED'
  | 'WOOLLY_ERR_MODEL_NOT_FOUND'
  | 'WOOLLY_ERR_TOKENIZER'
  | 'WOOLLY_ERR_CONTEXT_OVERFLOW'
  | 'WOOLLY_ERR_CANCELLED'
  | 'WOOLLY_ERR_PERMISSION_DENIED'
  | 'WOOLLY_ERR_INSUFFICIENT_MEMORY'
  | 'WOOLLY_ERR_BUSY'
  | 'WOOLLY_ERR_DEADLINE_EXCEEDED'
  | 'WOOLLY_ERR_OUT_OF_DEVICE_MEMORY'
  | 'WOOLLY_ERR_DEVICE'
  | 'WOOLLY_ERR_INTERNAL';

/** Every error Woolly throws or rejects with. Cancellation has name 'AbortError'. */
export declare class WoollyError extends Error {
  constructor(code: WoollyErrorCode, message: string, options?: { cause?: unknown });
  readonly code: WoollyErrorCode;
  /** 'AbortError' for WOOLLY_ERR_CANCELLED, else 'WoollyError'. */
  readonly name: 'WoollyError' | 'AbortError';
  /** WOOLLY_ERR_INSUFFICIENT_MEMORY: the bytes asked for. */
  readonly required?: number;
  /** WOOLLY_ERR_INSUFFICIENT_MEMORY: the bytes that could be had. */
  readonly available?: number;
  /** WOOLLY_ERR_INSUFFICIENT_MEMORY: whether the memory budget (not the system) was the limit. */
  readonly budgeted?: boolean;
}

export declare const codes: Readonly<{
  INVALID_ARGUMENT: 'WOOLLY_ERR_INVALID_ARGUMENT';
  IO: 'WOOLLY_ERR_IO';
  INVALID_MODEL: 'WOOLLY_ERR_INVALID_MODEL';
  UNSUPPORTED: 'WOOLLY_ERR_UNSUPPORTED';
  MODEL_NOT_FOUND: 'WOOLLY_ERR_MODEL_NOT_FOUND';
  TOKENIZER: 'WOOLLY_ERR_TOKENIZER';
  CONTEXT_OVERFLOW: 'WOOLLY_ERR_CONTEXT_OVERFLOW';
  CANCELLED: 'WOOLLY_ERR_CANCELLED';
  PERMISSION_DENIED: 'WOOLLY_ERR_PERMISSION_DENIED';
  INSUFFICIENT_MEMORY: 'WOOLLY_ERR_INSUFFICIENT_MEMORY';
  BUSY: 'WOOLLY_ERR_BUSY';
  DEADLINE_EXCEEDED: 'WOOLLY_ERR_DEADLINE_EXCEEDED';
  OUT_OF_DEVICE_MEMORY: 'WOOLLY_ERR_OUT_OF_DEVICE_MEMORY';
  DEVICE: 'WOOLLY_ERR_DEVICE';
  INTERNAL: 'WOOLLY_ERR_INTERNAL';
}>;

/** Bytes, or a size such as "512MB" or "1.5GiB" (binary units). */
export type Size = number | bigint | string;

/**
 * When the model file is read: 'lazy' (or 'none': on first use, the default), 'sequential' (the
 * kernel reads ahead in the background), 'critical' (the first layers during the load),
 * 'full' (every page, by a background thread after the load resolves) or 'full_blocking'
 * (every page, during the load).
 */
export type PreloadStrategy = 'lazy' | 'none' | 'sequential' | 'critical' | 'full' | 'full_blocking';

/** How a model's sessions spread their work over threads (woolly-core's thread policy). */
export type ThreadPolicy = 'auto' | 'interactive' | 'background';

/** What Woolly may use of the machine's memory. */
export interface MemoryOptions {
  /**
   * The most memory Woolly may hold (models, KV caches, scratch). A load or session that would
   * exceed it rejects with WOOLLY_ERR_INSUFFICIENT_MEMORY. Default (or 0, as in the C API): no
   * budget beyond what the system has less the reserve.
   */
  memoryBudget?: Size;
  /** Memory left to the system and other programs (default: 25% of RAM up to 8 GiB, less above). */
  memoryReserve?: Size;
  /** Used fraction of RAM, in (0, 1], from which the machine is under pressure (default 0.85). */
  pressureThreshold?: number;
  /** Layers on CUDA GPUs, from the last, with the output: 'auto' (default: as many as fit), 0 (CPU only) or a count. */
  gpuLayers?: 'auto' | number;
  /** The GPU holding the output and the last layers (default: the one with the most free memory). */
  mainGpu?: number;
  /** 'layer' (default: split across GPUs by free memory) or 'none' (one GPU). */
  splitMode?: 'none' | 'layer';
  /** Device memory left free on each GPU (default 0: the larger of 1 GiB and 10%). */
  gpuMarginBytes?: Size;
  /**
   * When a sequence's KV cache does not fit in GPU memory: 'cpu' (default: it runs on the CPU,
   * with a warning, giving the CPU's tokens) or 'error' (that generation rejects with
   * WOOLLY_ERR_OUT_OF_DEVICE_MEMORY). Echoed in `info().placement.on_device_oom`.
   */
  onDeviceOom?: 'cpu' | 'error';
}

export interface ModelLoadOptions {
  /** Load progress, 0 to 1; returning false cancels the load. */
  progress?: (fraction: number) => boolean | void;
  signal?: AbortSignal;
  /** A strategy (default 'lazy'), or a boolean: true = 'full_blocking', false = 'lazy'. */
  preload?: PreloadStrategy | boolean;
  /** Lock the model in memory; when the system refuses, a warning is logged and `isLocked` is false. */
  mlock?: boolean;
  /** How the KV cache stores keys and values: 'f16' (default, as llama.cpp) or 'f32' (twice the memory). */
  kvPrecision?: 'f16' | 'f32';
  /** Copy weights into this CPU's faster layout (default true). */
  repack?: boolean;
  /**
   * Context of each generation in tokens (0 = min(4096, trained context), less when the memory
   * budget has no room for it). The load checks that the model and one session of it fit.
   */
  contextSize?: number;
  /** Threads per generation (0 = Woolly's policy; more than the CPUs available are capped there). */
  threads?: number;
  /**
   * Woolly's thread policy by name, as C, Python and JSON spell it: 'auto', 'interactive' (leave
   * a core to the UI) or 'background' (lower-priority threads). Replaces `interactive` and
   * `background` (give one or the others).
   */
  threadPolicy?: ThreadPolicy;
  /** Leave a core to the UI/JS thread (default true). */
  interactive?: boolean;
  /** Lower-priority worker threads. */
  background?: boolean;
  /** Prompt tokens per forward pass (default 512). */
  batchSize?: number;
  /** Sessions (KV caches) kept for reuse between generations (default 2). */
  maxIdleSessions?: number;
}

export interface LoadOptions extends ModelLoadOptions, MemoryOptions {}

/** What a model needs in memory, from its file's header (snake_case, as in every front end). */
export interface MemoryEstimate {
  /** Tensor data (the model part, with overhead_bytes). */
  weights_bytes: number;
  /** Tokenizer tables and other per-model structures. */
  overhead_bytes: number;
  /** One session's KV cache at context_size (the session part, with scratch_bytes). */
  kv_cache_bytes: number;
  scratch_bytes: number;
  context_size: number;
  batch_size: number;
  total_bytes: number;
}

export interface PreloadProgress {
  done_bytes: number;
  total_bytes: number;
  finished: boolean;
}

/** The machine's memory under a policy, and this process's. */
export interface MemoryReport {
  total_bytes: number;
  available_bytes: number;
  reserve_bytes: number;
  pressure_threshold: number;
  under_pressure: boolean;
  budget_bytes: number | null;
  headroom_bytes: number;
  page_size: number;
  huge_page_size: number | null;
  process_rss_bytes: number;
  process_peak_rss_bytes: number;
  [key: string]: unknown;
}

/** A model's memory: its estimate, its account's charges, residency, preload and lock. */
export interface ModelMemoryReport {
  estimate: MemoryEstimate;
  charged_bytes: number;
  account_held_bytes: number;
  headroom_bytes: number;
  budget_bytes: number | null;
  reserve_bytes: number;
  available_bytes: number;
  under_pressure: boolean;
  file_bytes: number;
  file_resident_bytes: number | null;
  repacked_bytes: number;
  locked: boolean;
  preload: PreloadProgress;
  process_rss_bytes: number;
  [key: string]: unknown;
}

export interface ModelCacheReport {
  models: Array<{ id: string; path: string; model_bytes: number; in_use: boolean; pinned: boolean; last_used: number }>;
  evictions: number;
  held_bytes: number;
  headroom_bytes: number;
  budget_bytes: number | null;
  reserve_bytes: number;
  available_bytes: number;
  total_bytes: number;
  under_pressure: boolean;
}

export interface GenerateOptions {
  /** Default 256. */
  maxTokens?: number;
  /** Default 0.8; 0 is greedy. */
  temperature?: number;
  /** Default 40 (0 = all). */
  topK?: number;
  /** Default 0.95. */
  topP?: number;
  /** Default 0.05. */
  minP?: number;
  /** Default 1 (none). */
  repetitionPenalty?: number;
  /** Default 0. */
  frequencyPenalty?: number;
  /** Default 0. */
  presencePenalty?: number;
  /** Tokens the penalties look back over (default 64). */
  penaltyLastN?: number;
  /** A non-negative integer; absent = random. */
  seed?: number | bigint;
  /** Generation stops before the first of these strings (empty strings are ignored). */
  stop?: string | string[];
  /** Keep generating past an end-of-generation token (default false). */
  ignoreEos?: boolean;
  /** Add BOS/EOS to the prompt as the model asks (default true). */
  addSpecial?: boolean;
  /** Parse special-token text in the prompt (default true). */
  parseSpecial?: boolean;
  /**
   * In a chat, also turn text inside the messages that spells special tokens (`<end_of_turn>`)
   * into control tokens. Default false: message text is tokenized as text, so untrusted content
   * cannot forge a turn; the chat template's own markup is always parsed.
   */
  parseSpecialInMessages?: boolean;
  /**
   * What the output must match, as every front end spells it (at most one of `constraint`,
   * `jsonSchema`, `grammar`, `regex` and `choices`); generation ends when the output is
   * complete. An unsupported schema keyword or a malformed grammar rejects with
   * WOOLLY_ERR_INVALID_ARGUMENT before anything is generated.
   */
  constraint?: Constraint;
  /** Shorthand for `constraint: { json_schema }`: a JSON Schema (or its JSON text). */
  jsonSchema?: JsonSchema | string;
  /** Shorthand for `constraint: { gbnf }`: a grammar in llama.cpp's GBNF syntax, from `root`. */
  grammar?: string;
  /** Shorthand for `constraint: { regex }`: the whole output matches this regular expression. */
  regex?: string;
  /** Shorthand for `constraint: { choice }`: the output is exactly one of these strings. */
  choices?: string[];
  /**
   * Each generated token's log probability and this many of the most likely alternatives
   * (0 to 20; absent: none): in the result's `logprobs` (and an engine's `onToken`).
   */
  logprobs?: number;
  /** Cancels the generation: it rejects with a WoollyError, code WOOLLY_ERR_CANCELLED, name 'AbortError'. */
  signal?: AbortSignal;
}

/** A JSON Schema (as in OpenAI's strict `json_schema` response format), or true/false. */
export type JsonSchema = { [keyword: string]: unknown } | boolean;

/** What the output must match: woolly-core's JSON spelling, the same in C, Python and the CLI. */
export type Constraint =
  | 'json_object'
  | { json_schema: JsonSchema }
  | { gbnf: string }
  | { lark: string }
  | { regex: string }
  | { choice: string[] };

/** A token and its log probability. */
export interface TopLogprob {
  id: number;
  /** The token's text (bytes that are not UTF-8 on their own as U+FFFD). */
  token: string;
  /** The token's bytes exactly. */
  bytes: number[];
  /** Natural log of its probability in the model's distribution (before sampling filters and the constraint). */
  logprob: number;
}

/** A generated token's log probability, and the most likely tokens of that step, best first. */
export interface TokenLogprob extends TopLogprob {
  topLogprobs: TopLogprob[];
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

export interface Timings {
  promptTokens: number;
  cachedTokens: number;
  promptMs: number;
  promptTokS: number;
  generatedTokens: number;
  genMs: number;
  genTokS: number;
  /** From the call (or the submission to an engine) to the first generated token. */
  ttftMs: number;
  /** How long an engine's request waited before it started (0 for Model's generations). */
  queueMs: number;
}

export interface GenerationResult {
  text: string;
  promptIds: number[];
  generatedIds: number[];
  stopReason: 'max_tokens' | 'end_of_generation' | 'stop_string' | 'callback';
  timings: Timings;
  /** One per generated token, when the options asked for `logprobs`. */
  logprobs?: TokenLogprob[];
}

/** `for await (const piece of stream)`; leaving the loop early cancels the generation. */
export interface TokenStream extends AsyncIterableIterator<string> {
  /** The finished generation (rejects like the iterator). */
  readonly result: Promise<GenerationResult>;
  cancel(): void;
}

// ---- OpenAI-shaped requests and responses (snake_case, as OpenAI's API and JS SDK) -----------

/** A text part of a message's content (the only kind of part Woolly reads). */
export interface ChatCompletionContentPartText {
  type: 'text';
  text: string;
}

export type ChatCompletionContent = string | ChatCompletionContentPartText[];

/** A tool call: in an assistant message of a request, and in a response. */
export interface ChatCompletionMessageToolCall {
  /** `call_...` in responses. */
  id: string;
  type: 'function';
  function: {
    name: string;
    /** The arguments as JSON text (valid against the tool's `parameters` schema). */
    arguments: string;
  };
}

/** A tool call in a stream chunk's delta (the whole call, in one chunk). */
export interface ChatCompletionChunkToolCall extends ChatCompletionMessageToolCall {
  index: number;
}

export type ChatCompletionMessageParam =
  | { role: 'system' | 'developer'; content: ChatCompletionContent; name?: string }
  | { role: 'user'; content: ChatCompletionContent; name?: string }
  | {
      role: 'assistant';
      content?: ChatCompletionContent | null;
      tool_calls?: ChatCompletionMessageToolCall[];
      name?: string;
    }
  | { role: 'tool'; content: ChatCompletionContent; tool_call_id: string };

export interface ChatCompletionTool {
  type: 'function';
  function: {
    name: string;
    description?: string;
    /** A JSON Schema (an object) for the arguments; absent: none. */
    parameters?: Record<string, unknown>;
    strict?: boolean;
  };
}

/** 'auto' with tools is the default; 'required' or a named function constrains the reply to a call. */
export type ChatCompletionToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | {
      type: 'json_schema';
      json_schema: { name?: string; description?: string; schema: Record<string, unknown> | boolean; strict?: boolean };
    };

/** The fields both requests share; those Woolly does not know are ignored (as by `woolly serve`). */
export interface CompletionCreateParamsBase {
  /** The name the response reports (default: the model file's name without `.gguf`). */
  model?: string;
  stop?: string | string[] | null;
  seed?: number | null;
  /** Default: what the context leaves after the prompt. */
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  /** In [0, 2]; 0 is greedy. */
  temperature?: number | null;
  top_p?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  /** Must be 1 (one choice per request). */
  n?: number | null;
  user?: string;
  response_format?: ResponseFormat | null;
  /** Woolly: the engine's priority (default 'normal'). */
  priority?: Priority;
  /** Woolly: fails with WOOLLY_ERR_DEADLINE_EXCEEDED unless finished this many ms after it arrives. */
  deadline_ms?: number;
  /** Woolly: someone waits for the first token (ahead of others of the same priority). */
  latency_sensitive?: boolean;
  top_k?: number;
  min_p?: number;
  repeat_penalty?: number;
  /** Woolly: a GBNF grammar (llama.cpp's) the reply follows. */
  grammar?: string;
  /** Woolly: a regular expression the whole reply matches. */
  regex?: string;
  /** Woolly: the reply is exactly one of these. */
  choices?: string[];
  /** The request's AbortSignal, as `options.signal` (not part of the body sent). */
  signal?: AbortSignal;
}

export interface ChatCompletionCreateParams extends CompletionCreateParamsBase {
  messages: ChatCompletionMessageParam[];
  tools?: ChatCompletionTool[] | null;
  tool_choice?: ChatCompletionToolChoice | null;
  logprobs?: boolean | null;
  /** 0 to 20 alternatives per token; needs `logprobs: true`. */
  top_logprobs?: number | null;
}
export interface ChatCompletionCreateParamsStreaming extends ChatCompletionCreateParams {
  stream: true;
}
export interface ChatCompletionCreateParamsNonStreaming extends ChatCompletionCreateParams {
  stream?: false | null;
}

export interface CompletionCreateParams extends CompletionCreateParamsBase {
  /** One prompt (a string, or an array holding one string); no chat template is applied. */
  prompt: string | [string];
  /** The number of alternatives per token to report (0 to 20); absent: no log probabilities. */
  logprobs?: number | null;
  /** The response's text starts with the prompt. */
  echo?: boolean | null;
}
export interface CompletionCreateParamsStreaming extends CompletionCreateParams {
  stream: true;
}
export interface CompletionCreateParamsNonStreaming extends CompletionCreateParams {
  stream?: false | null;
}

/** The second argument of createChatCompletion and createCompletion. */
export interface RequestOptions {
  /** Aborting it cancels the request: it rejects (or its stream throws) with an 'AbortError'. */
  signal?: AbortSignal;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** `cached_tokens`: prompt tokens a reused session already had in its KV cache. */
  prompt_tokens_details: { cached_tokens: number };
}

export interface TopLogprobEntry {
  token: string;
  /** Natural log of the token's probability in the model's distribution. */
  logprob: number;
  /** The token's bytes exactly (its text need not be UTF-8 alone). */
  bytes: number[] | null;
}

export interface ChatCompletionTokenLogprob extends TopLogprobEntry {
  /** The most likely tokens of that step, best first (`top_logprobs` of them). */
  top_logprobs: TopLogprobEntry[];
}

export interface ChatCompletionLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  refusal: null;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

export interface ChatCompletionMessage {
  role: 'assistant';
  /** Null when the reply is only tool calls. */
  content: string | null;
  refusal: null;
  tool_calls?: ChatCompletionMessageToolCall[];
}

/** The response of createChatCompletion. */
export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  /** Seconds since the epoch. */
  created: number;
  model: string;
  system_fingerprint: string | null;
  choices: {
    index: number;
    message: ChatCompletionMessage;
    /** When the request asked for `logprobs`. */
    logprobs: ChatCompletionLogprobs | null;
    finish_reason: FinishReason;
  }[];
  usage: CompletionUsage;
}

/** One chunk of a streamed chat completion; with `stream_options.include_usage`, a last one has no choices and the usage. */
export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint: string | null;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string | null; tool_calls?: ChatCompletionChunkToolCall[] };
    logprobs: ChatCompletionLogprobs | null;
    finish_reason: FinishReason | null;
  }[];
  usage?: CompletionUsage;
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  /** Per token, the alternatives' texts and log probabilities. */
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/** The response of createCompletion, and each of its stream chunks (which have no usage but the last with include_usage). */
export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  system_fingerprint: string | null;
  choices: {
    index: number;
    text: string;
    logprobs: CompletionLogprobs | null;
    finish_reason: 'stop' | 'length' | null;
  }[];
  usage?: CompletionUsage;
}

/** `for await (const chunk of stream)`; leaving the loop early cancels the request. */
export interface CompletionStream<T> extends AsyncIterableIterator<T> {
  cancel(): void;
}

/** Resolves with the stream once the request is planned (a bad request rejects); also iterable itself. */
export type CompletionStreamPromise<T> = Promise<CompletionStream<T>> & AsyncIterable<T>;

/** The OpenAI-shaped methods of a Model and an Engine. */
export interface OpenAICompletions {
  /**
   * A chat completion of OpenAI's body (the model's chat template; tools, tool_choice,
   * response_format, logprobs, ...); planned and generated off the JS thread.
   */
  createChatCompletion(body: ChatCompletionCreateParamsNonStreaming, options?: RequestOptions): Promise<ChatCompletion>;
  createChatCompletion(
    body: ChatCompletionCreateParamsStreaming,
    options?: RequestOptions,
  ): CompletionStreamPromise<ChatCompletionChunk>;
  createChatCompletion(
    body: ChatCompletionCreateParams,
    options?: RequestOptions,
  ): Promise<ChatCompletion> | CompletionStreamPromise<ChatCompletionChunk>;
  /** A completion of `body.prompt` (no chat template). */
  createCompletion(body: CompletionCreateParamsNonStreaming, options?: RequestOptions): Promise<Completion>;
  createCompletion(body: CompletionCreateParamsStreaming, options?: RequestOptions): CompletionStreamPromise<Completion>;
  createCompletion(
    body: CompletionCreateParams,
    options?: RequestOptions,
  ): Promise<Completion> | CompletionStreamPromise<Completion>;
}

/** The model's facts; the same report as C's woolly_model_info_json and Python's Model.info. */
export interface ModelInfo {
  path: string;
  name: string | null;
  architecture: string;
  gguf_version: number;
  file_size: number;
  n_params: number;
  n_tensors: number;
  n_layer: number;
  n_vocab: number;
  n_ctx_train: number;
  /** Tensor counts and bytes by type name, e.g. "Q4_K". */
  tensor_types: Record<string, { tensors: number; bytes: number }>;
  vocab_kind: string | null;
  vocab_pre: string | null;
  vocab_size: number;
  has_chat_template: boolean;
  hparams: Record<string, unknown> & { architecture: string; n_vocab: number; n_ctx_train: number; n_layer: number };
  chatTemplate: string;
  fileBytes: number;
  repackedBytes: number;
  loadMs: number;
  contextSize: number;
  /** Where the layers run and why, and what a sequence whose KV cache does not fit on the GPU does. */
  placement: {
    layers: (number | null)[];
    output: number | null;
    devices: Record<string, unknown>[];
    reason: string;
    on_device_oom: 'cpu' | 'error';
  };
}

/** Counters of the generations on one model (woolly-core's `MetricsSnapshot`, snake_case). */
export interface ModelMetrics {
  generations: number;
  failed: number;
  cancelled: number;
  prompt_tokens: number;
  cached_tokens: number;
  generated_tokens: number;
  prompt_ms: number;
  generation_ms: number;
  mean_ttft_ms: number;
  /** Mean time engine requests waited before they started (0 for Model's generations). */
  mean_queue_ms: number;
  prompt_tok_s: number;
  generation_tok_s: number;
}

export declare class Model implements OpenAICompletions {
  private constructor();
  /** Loads a GGUF model off the JS thread; no path = the default model. */
  static load(path?: string | URL | null, options?: LoadOptions): Promise<Model>;
  static load(options: LoadOptions): Promise<Model>;
  generate(prompt: string, options?: GenerateOptions): Promise<string>;
  complete(prompt: string, options?: GenerateOptions): Promise<GenerationResult>;
  stream(prompt: string, options?: GenerateOptions): TokenStream;
  chat(messages: ChatMessage[], options?: GenerateOptions): Promise<string>;
  chatStream(messages: ChatMessage[], options?: GenerateOptions): TokenStream;
  /** OpenAI's chat completion of `body` (see OpenAICompletions). */
  createChatCompletion(body: ChatCompletionCreateParamsNonStreaming, options?: RequestOptions): Promise<ChatCompletion>;
  createChatCompletion(
    body: ChatCompletionCreateParamsStreaming,
    options?: RequestOptions,
  ): CompletionStreamPromise<ChatCompletionChunk>;
  createChatCompletion(
    body: ChatCompletionCreateParams,
    options?: RequestOptions,
  ): Promise<ChatCompletion> | CompletionStreamPromise<ChatCompletionChunk>;
  /** OpenAI's completion of `body.prompt` (see OpenAICompletions). */
  createCompletion(body: CompletionCreateParamsNonStreaming, options?: RequestOptions): Promise<Completion>;
  createCompletion(body: CompletionCreateParamsStreaming, options?: RequestOptions): CompletionStreamPromise<Completion>;
  createCompletion(
    body: CompletionCreateParams,
    options?: RequestOptions,
  ): Promise<Completion> | CompletionStreamPromise<Completion>;
  tokenize(text: string, options?: { addSpecial?: boolean; parseSpecial?: boolean }): number[];
  /** Ids as an array or a typed array. */
  detokenize(ids: readonly number[] | (ArrayBufferView & ArrayLike<number>)): string;
  applyChatTemplate(messages: ChatMessage[]): string;
  info(): ModelInfo;
  /** The same JSON as the C API's metrics (snake_case keys). */
  metrics(): ModelMetrics;
  diagnostics(): Record<string, any>;
  memoryReport(): ModelMemoryReport;
  preloadProgress(): PreloadProgress;
  /** Resolves once a background preload ('full', 'sequential') has read the whole file. */
  waitPreloaded(): Promise<void>;
  /** Whether the model's memory is locked (mlock asked for and allowed). */
  readonly isLocked: boolean;
  /**
   * Releases the model once running generations end; later calls fail. A model from a
   * ModelCache becomes idle (evictable) once every Model object on it is closed.
   */
  close(): void;
  readonly closed: boolean;
}

export type Priority = 'low' | 'normal' | 'high' | 'critical';

export interface EngineOptions {
  /** Most requests in one step (default 16). */
  maxBatchSize?: number;
  /** Most requests running at once, each with a KV cache of contextSize (default 16). */
  maxConcurrent?: number;
  /** Most requests waiting to start; beyond it submissions reject with WOOLLY_ERR_BUSY (default 256). */
  queueCapacity?: number;
  /** Prompt tokens read per step, so that a long prompt does not stall the others (default 256). */
  prefillChunk?: number;
  /** When idle, how long a new request may wait for others to share its first step (default 0). */
  maxLatencyMs?: number;
  /** Context of each request in tokens (default 0: the model's default). */
  contextSize?: number;
  kvPrecision?: 'f16' | 'f32';
  /** Threads of the engine (default 0: Woolly's policy for batched work). */
  threads?: number;
}

export interface StreamRequestOptions extends GenerateOptions {
  /** Default 'normal'. */
  priority?: Priority;
  /** Someone waits for the first token: ahead of others of its priority, and urgent. */
  latencySensitive?: boolean;
  /** The request rejects with WOOLLY_ERR_DEADLINE_EXCEEDED unless it finishes within this. */
  timeoutMs?: number;
}

export interface SubmitOptions extends StreamRequestOptions {
  /** Each piece of text as it is generated (a throw cancels the request and rejects with it). */
  onToken?: (text: string, token: { id: number; index: number; logprob?: TokenLogprob }) => void;
}

/** An engine's counters and state (snake_case, as in every front end). */
export interface EngineStats {
  submitted: number;
  completed: number;
  failed: number;
  cancelled: number;
  deadline_exceeded: number;
  rejected_busy: number;
  steps: number;
  preempted_steps: number;
  mean_batch_size: number;
  queued: number;
  active: number;
  decode_step_ms: number;
  prefill_token_ms: number;
  mean_queue_ms: number;
  mean_ttft_ms: number;
}

/**
 * One model serving many requests at once (continuous batching on a worker thread of its own).
 * Requests start by priority, then latency sensitivity, then size, then arrival.
 */
export declare class Engine implements OpenAICompletions {
  constructor(model: Model, options?: EngineOptions);
  /** Tokenizes off the JS thread, then queues; rejects without queueing with WOOLLY_ERR_BUSY when the queue is full. */
  submit(input: string | ChatMessage[], options?: SubmitOptions): Promise<GenerationResult>;
  generate(input: string | ChatMessage[], options?: SubmitOptions): Promise<string>;
  stream(input: string | ChatMessage[], options?: StreamRequestOptions): TokenStream;
  /** OpenAI's chat completion of `body` as a request of this engine, batched; `priority`, `deadline_ms` and `latency_sensitive` place it. */
  createChatCompletion(body: ChatCompletionCreateParamsNonStreaming, options?: RequestOptions): Promise<ChatCompletion>;
  createChatCompletion(
    body: ChatCompletionCreateParamsStreaming,
    options?: RequestOptions,
  ): CompletionStreamPromise<ChatCompletionChunk>;
  createChatCompletion(
    body: ChatCompletionCreateParams,
    options?: RequestOptions,
  ): Promise<ChatCompletion> | CompletionStreamPromise<ChatCompletionChunk>;
  /** OpenAI's completion of `body.prompt` as a request of this engine, batched; `priority`, `deadline_ms` and `latency_sensitive` place it. */
  createCompletion(body: CompletionCreateParamsNonStreaming, options?: RequestOptions): Promise<Completion>;
  createCompletion(body: CompletionCreateParamsStreaming, options?: RequestOptions): CompletionStreamPromise<Completion>;
  createCompletion(
    body: CompletionCreateParams,
    options?: RequestOptions,
  ): Promise<Completion> | CompletionStreamPromise<Completion>;
  stats(): EngineStats;
  /** Milliseconds a request of this priority submitted now would wait to start (an estimate). */
  estimatedWait(priority?: Priority): number;
  readonly contextSize: number;
  /** Every request still waiting or running rejects with WOOLLY_ERR_CANCELLED; resolves once they have. */
  close(): Promise<void>;
  readonly closed: boolean;
}

/**
 * Models by id within one memory budget. A load that does not fit evicts the least recently used
 * idle model (no open Model object on it, not pinned); a model in use is never evicted.
 */
export declare class ModelCache {
  constructor(options?: MemoryOptions);
  /** Loads `id` off the JS thread unless it is loaded (the same id from another path swaps it). */
  load(id: string, path?: string | URL | null, options?: ModelLoadOptions): Promise<Model>;
  load(id: string, options: ModelLoadOptions): Promise<Model>;
  get(id: string): Model | null;
  unload(id: string): boolean;
  pin(id: string, pinned?: boolean): void;
  /** Most recently used first. */
  ids(): string[];
  report(): ModelCacheReport;
  relievePressure(): string[];
}

/** What loading a model would take (read off the JS thread from its header). */
export declare function estimate(path?: string | URL | null, options?: Omit<LoadOptions, 'progress' | 'signal'>): Promise<MemoryEstimate>;
export declare function estimate(options: Omit<LoadOptions, 'progress' | 'signal'>): Promise<MemoryEstimate>;
/** The machine's memory as Woolly sees it under `options`' policy. */
export declare function memoryReport(options?: MemoryOptions): MemoryReport;

/** What Woolly detected about this machine (snake_case keys, as in every front end). */
export declare function hardware(): {
  arch: string;
  cpu_name: string | null;
  logical_cores: number;
  physical_cores: number;
  [key: string]: any;
};
/** The CUDA devices as the driver reports them now, or why there are none. */
export declare function cudaDevices(): {
  available: boolean;
  reason: string | null;
  driver_version: string | null;
  devices: Array<{
    index: number;
    name: string;
    total_bytes: number;
    free_bytes: number;
    compute_capability: string;
    sm_count: number;
    max_threads_per_block: number;
    warp_size: number;
  }>;
};
/** The diagnostics report; with a model, its section too. */
export declare function diagnostics(model?: Model | null): Record<string, any>;
export declare function defaultModelPath(): string | null;
export declare const version: string;

// ---- power and heat (process-wide) -----------------------------------------------------------

export type PowerProfile = 'balanced' | 'high_performance' | 'power_saver' | 'adaptive';
export declare const POWER_PROFILES: readonly PowerProfile[];

/** The power state (snake_case, as in every front end). */
export interface PowerState {
  /** The profile set. */
  profile: PowerProfile;
  source: { kind: 'ac' } | { kind: 'battery'; percent: number | null } | { kind: 'unknown' };
  /** What is in effect now. */
  knobs: {
    /** `adaptive` resolved to `balanced` or `power_saver`. */
    profile: PowerProfile;
    /** Most worker threads per forward pass; 0: no limit beyond the thread policy. */
    max_threads: number;
    /** Most sequences an engine step batches. */
    max_batch_size: number;
    /** How long an idle engine waits to gather a batch, in milliseconds. */
    batch_latency_ms: number;
    /** Pause after each decode step, in milliseconds. */
    decode_pause_ms: number;
    kv_precision: 'f16' | 'f32';
  };
  throttled: boolean;
  /** The thermal monitor's last reading, or null. */
  temperature_c: number | null;
  throttle_events: number;
  thermal_monitor: boolean;
}

export interface ThermalMonitorOptions {
  /** Above this (°C) Woolly halves its worker threads; back 5 °C lower (default 80). */
  thresholdC?: number;
  /** How often the sensors are read, in milliseconds (default 2000). */
  intervalMs?: number;
  /** Read `sys/class/thermal` and `sys/class/hwmon` under this root (default '/'; tests). */
  sysfsRoot?: string;
}

/** Sets the process-wide power profile (Woolly's own threads and batching; never the system's). */
export declare function setPowerProfile(name: PowerProfile): void;
export declare function powerState(): PowerState;
/** Starts the thermal monitor on a thread of its own (replacing one already running). */
export declare function startThermalMonitor(options?: ThermalMonitorOptions): void;
export declare function stopThermalMonitor(): void;
/**
 * Changes the system for every program (an explicit opt-in): the CPU frequency governor of every
 * CPU; returns how many were set. Throws WOOLLY_ERR_PERMISSION_DENIED when the system refuses,
 * WOOLLY_ERR_UNSUPPORTED without cpufreq.
 */
export declare function setCpuGovernor(governor: string, sysfsRoot?: string | null): number;

// ---- metrics and the doctor ------------------------------------------------------------------

/** Every metric Woolly keeps, in the Prometheus text format 0.0.4 (Woolly opens no port). */
export declare function metricsPrometheus(): string;
/** The `Content-Type` to serve `metricsPrometheus()` with. */
export declare const PROMETHEUS_CONTENT_TYPE: string;
/** The same figures as JSON. */
export declare function metrics(): {
  time_unix_ms: number;
  metrics: Record<string, { type: 'counter' | 'gauge' | 'histogram'; help: string; series: Array<Record<string, any>> }>;
  models: Array<Record<string, any> & { model: string }>;
  gpu: Record<string, any> | null;
};

export interface DoctorOptions {
  /** The model to measure (default: WOOLLY_MODEL, then the default model). */
  model?: string | URL;
  /** Measure generation (default true, about 10 s on two cores); false: the machine only. */
  measure?: boolean;
  /** How far it got (0 to 1) and what runs now. */
  onProgress?: (fraction: number, message: string) => void;
}

/** The doctor's report (snake_case keys inside, as in every front end). */
export interface DoctorReport {
  cpu: Record<string, any>;
  memory: Record<string, any>;
  gpu: Record<string, any>;
  /** `threads` and `batches` (each with `tok_s`) when measured; `skipped` or `error` otherwise. */
  inference: Record<string, any>;
  /** `threads`, `batch_size`, `preload`, `profile` (each `{ value, reason }`) and `notes`. */
  recommendations: Record<string, any>;
}

/** Examines this machine and recommends settings, off the JS thread. */
export declare function doctor(options?: DoctorOptions): Promise<DoctorReport>;

/** @internal Test hook: reads the power source under `root` (default '/'). */
export declare function _setPowerRoot(root?: string | null): void;
/** @internal Test hook: panics inside Woolly on the JS thread (throws WOOLLY_ERR_INTERNAL). */
export declare function _panic(message: string): never;
