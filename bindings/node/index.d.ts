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
  | 'WOOLLY_ERR_INTERNAL';

/** Every error Woolly throws or rejects with. Cancellation has name 'AbortError'. */
export declare class WoollyError extends Error {
  readonly code: WoollyErrorCode;
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
  INTERNAL: 'WOOLLY_ERR_INTERNAL';
}>;

export interface LoadOptions {
  /** Load progress, 0 to 1; returning false cancels the load. */
  progress?: (fraction: number) => boolean | void;
  signal?: AbortSignal;
  /** Read the whole file during the load (default false: lazily). */
  preload?: boolean;
  /** Lock the model in memory; fails with WOOLLY_ERR_PERMISSION_DENIED when refused. */
  mlock?: boolean;
  /** Copy weights into this CPU's faster layout (default true). */
  repack?: boolean;
  /** Context of each generation in tokens (0 = min(4096, trained context)). */
  contextSize?: number;
  /** Threads per generation (0 = Woolly's policy). */
  threads?: number;
  /** Leave a core to the UI/JS thread (default true). */
  interactive?: boolean;
  /** Lower-priority worker threads. */
  background?: boolean;
  /** Prompt tokens per forward pass (default 512). */
  batchSize?: number;
  /** Sessions (KV caches) kept for reuse between generations (default 2). */
  maxIdleSessions?: number;
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
  repetitionPenalty?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  penaltyLastN?: number;
  /** A non-negative integer; absent = random. */
  seed?: number | bigint;
  /** Generation stops before the first of these strings. */
  stop?: string | string[];
  ignoreEos?: boolean;
  addSpecial?: boolean;
  parseSpecial?: boolean;
  /** Cancels the generation: it rejects with a WoollyError, code WOOLLY_ERR_CANCELLED, name 'AbortError'. */
  signal?: AbortSignal;
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
  ttftMs: number;
}

export interface GenerationResult {
  text: string;
  promptIds: number[];
  generatedIds: number[];
  stopReason: 'max_tokens' | 'end_of_generation' | 'stop_string' | 'callback';
  timings: Timings;
}

/** `for await (const piece of stream)`; leaving the loop early cancels the generation. */
export interface TokenStream extends AsyncIterableIterator<string> {
  /** The finished generation (rejects like the iterator). */
  readonly result: Promise<GenerationResult>;
  cancel(): void;
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
}

export declare class Model {
  private constructor();
  /** Loads a GGUF model off the JS thread; no path = the default model. */
  static load(path?: string | URL | null, options?: LoadOptions): Promise<Model>;
  static load(options: LoadOptions): Promise<Model>;
  generate(prompt: string, options?: GenerateOptions): Promise<string>;
  complete(prompt: string, options?: GenerateOptions): Promise<GenerationResult>;
  stream(prompt: string, options?: GenerateOptions): TokenStream;
  chat(messages: ChatMessage[], options?: GenerateOptions): Promise<string>;
  chatStream(messages: ChatMessage[], options?: GenerateOptions): TokenStream;
  tokenize(text: string, options?: { addSpecial?: boolean; parseSpecial?: boolean }): number[];
  detokenize(ids: ArrayLike<number>): string;
  applyChatTemplate(messages: ChatMessage[]): string;
  info(): ModelInfo;
  /** The same JSON as the C API's metrics (snake_case keys). */
  metrics(): {
    generations: number;
    failed: number;
    cancelled: number;
    prompt_tokens: number;
    cached_tokens: number;
    generated_tokens: number;
    prompt_ms: number;
    generation_ms: number;
    mean_ttft_ms: number;
    prompt_tok_s: number;
    generation_tok_s: number;
    [key: string]: unknown;
  };
  diagnostics(): Record<string, any>;
  /** Releases the model once running generations end; later calls fail. */
  close(): void;
  readonly closed: boolean;
}

/** What Woolly detected about this machine (snake_case keys, as in every front end). */
export declare function hardware(): {
  arch: string;
  cpu_name: string | null;
  logical_cores: number;
  physical_cores: number;
  [key: string]: any;
};
/** The diagnostics report; with a model, its section too. */
export declare function diagnostics(model?: Model): Record<string, any>;
export declare function defaultModelPath(): string | null;
export declare const version: string;
