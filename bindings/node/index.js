'use strict';
// Woolly for Node.js and Electron. The native addon (woolly.node, built by `npm install`) does the
// work on its own threads; this file is the public API: promises, AbortSignal, the async iterator
// of `stream()`, option checks and errors with a `code`. An Engine serves many requests on one
// model at once (continuous batching on its own worker thread).

const path = require('node:path');

function loadNative() {
  const file = path.join(__dirname, 'woolly.node');
  try {
    return require(file);
  } catch (e) {
    const err = new Error(
      `woolly: cannot load the native addon ${file} (${e.message}). It is built when the package is ` +
        'installed; run `npm install` (or `npm run build`) in the woolly package again and check its ' +
        'output. In a packaged Electron app, the .node file must be outside the asar archive ' +
        '(asarUnpack: ["**/*.node"]).',
    );
    err.code = 'WOOLLY_ERR_INTERNAL';
    err.cause = e;
    throw err;
  }
}

const native = loadNative();

/** The status names of the C ABI (`woolly_status_name`), which `error.code` mirrors. */
const codes = Object.freeze({
  INVALID_ARGUMENT: 'WOOLLY_ERR_INVALID_ARGUMENT',
  IO: 'WOOLLY_ERR_IO',
  INVALID_MODEL: 'WOOLLY_ERR_INVALID_MODEL',
  UNSUPPORTED: 'WOOLLY_ERR_UNSUPPORTED',
  MODEL_NOT_FOUND: 'WOOLLY_ERR_MODEL_NOT_FOUND',
  TOKENIZER: 'WOOLLY_ERR_TOKENIZER',
  CONTEXT_OVERFLOW: 'WOOLLY_ERR_CONTEXT_OVERFLOW',
  CANCELLED: 'WOOLLY_ERR_CANCELLED',
  PERMISSION_DENIED: 'WOOLLY_ERR_PERMISSION_DENIED',
  INSUFFICIENT_MEMORY: 'WOOLLY_ERR_INSUFFICIENT_MEMORY',
  BUSY: 'WOOLLY_ERR_BUSY',
  DEADLINE_EXCEEDED: 'WOOLLY_ERR_DEADLINE_EXCEEDED',
  OUT_OF_DEVICE_MEMORY: 'WOOLLY_ERR_OUT_OF_DEVICE_MEMORY',
  DEVICE: 'WOOLLY_ERR_DEVICE',
  INTERNAL: 'WOOLLY_ERR_INTERNAL',
});

/** Every error Woolly rejects or throws with: an `Error` whose `code` is a C status name. */
class WoollyError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.code = code;
    // Cancellation also answers to the platform's convention for aborted operations.
    this.name = code === codes.CANCELLED ? 'AbortError' : 'WoollyError';
  }
}

function invalid(message) {
  return new WoollyError(codes.INVALID_ARGUMENT, `invalid argument: ${message}`);
}

/** A native error (`[WOOLLY_ERR_X] message`) or error event as a WoollyError. */
function fromNative(e) {
  if (e instanceof WoollyError) return e;
  const m = /^\[(WOOLLY_[A-Z_]+)(?: (\{[^\]]*\}))?\] ([\s\S]*)$/.exec(e && e.message);
  if (m) return withDetails(new WoollyError(m[1], m[3]), m[2] && JSON.parse(m[2]));
  // napi-rs's own argument conversions ("Failed to convert JavaScript value ...").
  if (e && (e.code === 'InvalidArg' || /expected|convert/i.test(e.message))) {
    return new WoollyError(codes.INVALID_ARGUMENT, `invalid argument: ${e.message}`, { cause: e });
  }
  return new WoollyError(codes.INTERNAL, `internal error: ${e && e.message}`, { cause: e });
}

/** Structured figures of an error (`required`, `available`, `budgeted` bytes) as fields. */
function withDetails(err, details) {
  if (details && typeof details === 'object') Object.assign(err, details);
  return err;
}

function callNative(fn) {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e);
  }
}

function cancelledError(signal) {
  const reason = signal && signal.reason;
  return new WoollyError(
    codes.CANCELLED,
    'cancelled: the operation was aborted',
    reason !== undefined ? { cause: reason } : undefined,
  );
}

// ---- option checks ---------------------------------------------------------------------------

const U32_MAX = 0xffffffff;

function checkObject(what, value) {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`${what} must be an object, got ${describe(value)}`);
  }
  return value;
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return `a ${typeof v}`;
}

const checks = {
  int: (min, max) => (name, v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw invalid(`${name} must be an integer in [${min}, ${max}], got ${describe(v)}`);
    }
    return v;
  },
  num: (test, range) => (name, v) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !test(v)) {
      throw invalid(`${name} must be a number ${range}, got ${describe(v)}`);
    }
    return v;
  },
  bool: (name, v) => {
    if (typeof v !== 'boolean') throw invalid(`${name} must be a boolean, got ${describe(v)}`);
    return v;
  },
  fn: (name, v) => {
    if (typeof v !== 'function') throw invalid(`${name} must be a function, got ${describe(v)}`);
    return v;
  },
  signal: (name, v) => {
    if (
      typeof v !== 'object' ||
      v === null ||
      typeof v.aborted !== 'boolean' ||
      typeof v.addEventListener !== 'function'
    ) {
      throw invalid(`${name} must be an AbortSignal, got ${describe(v)}`);
    }
    return v;
  },
  seed: (name, v) => {
    if (typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw invalid(`${name} must be a non-negative safe integer, got ${describe(v)}`);
    }
    return v;
  },
  string: (name, v) => {
    if (typeof v !== 'string') throw invalid(`${name} must be a string, got ${describe(v)}`);
    return v;
  },
  stop: (name, v) => {
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
      throw invalid(`${name} must be a string or an array of strings, got ${describe(v)}`);
    }
    return list.filter((s) => s.length > 0);
  },
};

/**
 * The preload strategies: woolly-core's names (`Preload::name`), and `none`, which its
 * `Preload::from_name` takes for `lazy`.
 */
const PRELOAD = Object.freeze([...native.preloadStrategies(), 'none']);
const THREAD_POLICIES = Object.freeze(native.threadPolicies());

checks.preload = (name, v) => {
  // Booleans as before the strategies (the native side maps them: true reads the whole file
  // during the load, false is lazy).
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string' || !PRELOAD.includes(v)) {
    throw invalid(`${name} must be one of ${PRELOAD.join(', ')} (or a boolean), got ${describe(v)}`);
  }
  return v;
};
checks.oneOf = (choices) => (name, v) => {
  if (!choices.includes(v)) throw invalid(`${name} must be one of ${choices.join(', ')}, got ${describe(v)}`);
  return v;
};
/** Bytes (a non-negative safe integer or bigint) or a size string such as "512MB" (parsed natively). */
checks.size = (name, v) => {
  if (typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v === 'string' && v.trim() !== '') return v;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalid(`${name} must be a non-negative integer of bytes or a size such as "512MB", got ${describe(v)}`);
  }
  return v;
};

const memorySchema = {
  memoryBudget: checks.size,
  memoryReserve: checks.size,
  pressureThreshold: checks.num((x) => x > 0 && x <= 1, 'in (0, 1]'),
};

const loadSchema = {
  progress: checks.fn,
  signal: checks.signal,
  preload: checks.preload,
  kvPrecision: checks.oneOf(['f16', 'f32']),
  ...memorySchema,
  mlock: checks.bool,
  repack: checks.bool,
  contextSize: checks.int(0, 1 << 22),
  threads: checks.int(0, 1024),
  threadPolicy: checks.oneOf(THREAD_POLICIES),
  interactive: checks.bool,
  background: checks.bool,
  batchSize: checks.int(1, 1 << 16),
  maxIdleSessions: checks.int(0, 64),
  gpuLayers: (name, v) => (v === 'auto' ? v : checks.int(0, 2 ** 31 - 1)(name, v)),
  mainGpu: checks.int(0, 1 << 16),
  splitMode: checks.oneOf(['none', 'layer']),
  gpuMarginBytes: checks.size,
  onDeviceOom: checks.oneOf(['cpu', 'error']),
};

const generateSchema = {
  maxTokens: checks.int(0, U32_MAX),
  temperature: checks.num((x) => x >= 0, '>= 0'),
  topK: checks.int(0, U32_MAX),
  topP: checks.num((x) => x > 0 && x <= 1, 'in (0, 1]'),
  minP: checks.num((x) => x >= 0 && x <= 1, 'in [0, 1]'),
  repetitionPenalty: checks.num((x) => x > 0, '> 0'),
  frequencyPenalty: checks.num(() => true, '(finite)'),
  presencePenalty: checks.num(() => true, '(finite)'),
  penaltyLastN: checks.int(0, U32_MAX),
  seed: checks.seed,
  stop: checks.stop,
  ignoreEos: checks.bool,
  addSpecial: checks.bool,
  parseSpecial: checks.bool,
  parseSpecialInMessages: checks.bool,
  constraint: (name, v) => {
    if (typeof v === 'string' || (typeof v === 'object' && v !== null && !Array.isArray(v))) return v;
    throw invalid(`${name} must be an object such as { regex: '[0-9]+' } or the string 'json_object', got ${describe(v)}`);
  },
  jsonSchema: (name, v) => {
    if (typeof v === 'string') {
      try {
        return JSON.parse(v);
      } catch (e) {
        throw invalid(`${name} is not valid JSON: ${e.message}`);
      }
    }
    if (typeof v === 'boolean' || (typeof v === 'object' && v !== null && !Array.isArray(v))) return v;
    throw invalid(`${name} must be a JSON Schema object (or its JSON text), got ${describe(v)}`);
  },
  grammar: checks.string,
  regex: checks.string,
  choices: (name, v) => {
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
      throw invalid(`${name} must be an array of strings, got ${describe(v)}`);
    }
    return v;
  },
  logprobs: checks.int(0, U32_MAX),
  signal: checks.signal,
};

/** The spelling of each shorthand in the `constraint` every front end uses (woolly-core's JSON). */
const CONSTRAINT_SHORTHANDS = { jsonSchema: 'json_schema', grammar: 'gbnf', regex: 'regex', choices: 'choice' };

/**
 * Checked generation options for the native side: `jsonSchema`, `grammar`, `regex` or `choices`
 * (at most one of them, or `constraint`) become `constraint`; woolly-core checks the rest.
 */
function withConstraint(options) {
  const given = ['constraint', ...Object.keys(CONSTRAINT_SHORTHANDS)].filter((k) => options[k] !== undefined);
  if (given.length > 1) {
    throw invalid(`give at most one of constraint, jsonSchema, grammar, regex and choices, not ${given.join(', ')}`);
  }
  const out = { ...options };
  for (const [key, spelled] of Object.entries(CONSTRAINT_SHORTHANDS)) {
    if (out[key] !== undefined) out.constraint = { [spelled]: out[key] };
    delete out[key];
  }
  return out;
}

/** Checks `options` against `schema`: unknown keys and wrong types throw WOOLLY_ERR_INVALID_ARGUMENT. */
function checkOptions(what, options, schema) {
  const o = checkObject(what, options);
  const out = {};
  for (const key of Object.keys(o)) {
    const check = schema[key];
    if (!check) {
      const camel = key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
      const hint = camel !== key && schema[camel] ? ` (did you mean ${camel}?)` : '';
      throw invalid(`unknown option ${what}.${key}${hint}; known: ${Object.keys(schema).join(', ')}`);
    }
    if (o[key] === undefined) continue;
    out[key] = check(`${what}.${key}`, o[key]);
  }
  return out;
}

function splitGenerateOptions(options) {
  const { signal, ...rest } = checkOptions('options', options, generateSchema);
  return { signal, nativeOptions: withConstraint(rest) };
}

/** `(path?, options?)` or `(options)`: the path (a string, or undefined for the default model). */
function splitPathArgs(modelPath, options) {
  if (options === undefined && typeof modelPath === 'object' && modelPath !== null && !(modelPath instanceof URL)) {
    options = modelPath;
    modelPath = undefined;
  }
  if (modelPath instanceof URL) {
    modelPath = require('node:url').fileURLToPath(modelPath);
  }
  if (modelPath !== undefined && modelPath !== null && (typeof modelPath !== 'string' || modelPath === '')) {
    throw invalid(`path must be a non-empty string (or undefined for the default model), got ${describe(modelPath)}`);
  }
  return { modelPath: modelPath ?? undefined, options };
}

/** Runs a native load into `m` (a fresh NativeModel) and resolves with the Model. */
async function runLoad(m, options, schema, start) {
  const { progress, signal, ...nativeOptions } = checkOptions('options', options, schema);
  const { promise } = runTask((cb) => start(nativeOptions, !!progress, cb), {
    signal,
    onEvent: (ev, task) => {
      if (ev.kind === 'progress' && progress && progress(ev.progress) === false) task.cancel();
    },
  });
  await promise;
  return new Model(m);
}

function checkPrompt(prompt) {
  if (typeof prompt !== 'string') throw invalid(`prompt must be a string, got ${describe(prompt)}`);
  return prompt;
}

function checkMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw invalid(`messages must be a non-empty array of { role, content }, got ${describe(messages)}`);
  }
  return messages.map((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw invalid(`messages[${i}] must be { role: string, content: string }, got ${describe(m)}`);
    }
    return { role: m.role, content: m.content };
  });
}

// ---- running native tasks --------------------------------------------------------------------

/**
 * Starts a native task and settles when its last event comes. `onEvent` sees the other events;
 * `signal` cancels it. Returns { promise, task }.
 */
function runTask(start, { signal, onEvent } = {}) {
  let task = null;
  let onAbort = null;
  const promise = new Promise((resolve, reject) => {
    if (signal && signal.aborted) {
      reject(cancelledError(signal));
      return;
    }
    let settled = false;
    const settle = () => {
      settled = true;
      if (signal && onAbort) signal.removeEventListener('abort', onAbort);
    };
    const handler = (ev) => {
      if (settled) return;
      try {
        switch (ev.kind) {
          case 'error': {
            settle();
            const aborted = ev.code === codes.CANCELLED && signal && signal.aborted;
            reject(aborted ? cancelledError(signal) : withDetails(new WoollyError(ev.code, ev.message), ev.details));
            break;
          }
          case 'done':
          case 'loaded':
            settle();
            resolve(ev);
            break;
          default:
            if (onEvent) onEvent(ev, task);
        }
      } catch (e) {
        // A throwing user callback (progress) fails the operation instead of escaping into the
        // native module.
        if (task) task.cancel();
        settle();
        reject(e);
      }
    };
    try {
      task = start(handler);
    } catch (e) {
      settle();
      reject(fromNative(e));
      return;
    }
    if (signal) {
      onAbort = () => task.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  return { promise, task };
}

/** The async iterator `stream()` returns; `result` settles with the whole generation. */
class TokenStream {
  #queue = [];
  #waiters = [];
  #error = null;
  #finished = false;
  #task = null;

  /**
   * `pick(ev)` is the value an event adds to the stream (undefined: none; default: a token's
   * text), `finish(ev)` what `result` resolves with, and `onEvent` sees every other event too.
   */
  constructor(start, signal, { pick = tokenText, finish = toResult, onEvent } = {}) {
    let run;
    try {
      run = runTask((cb) => start(cb), {
        signal,
        onEvent: (ev) => {
          const value = pick(ev);
          if (value !== undefined) this.#push(value);
          if (onEvent) onEvent(ev);
        },
      });
    } catch (e) {
      run = { promise: Promise.reject(e), task: null };
    }
    this.#task = run.task;
    /** The finished generation ({ text, generatedIds, stopReason, timings, ... }). */
    this.result = run.promise.then(finish);
    this.result.catch(() => {}); // rejections are reported through next(); this one is optional
    run.promise.then(
      () => this.#finish(null),
      (e) => this.#finish(e),
    );
  }

  #push(text) {
    const w = this.#waiters.shift();
    if (w) w.resolve({ value: text, done: false });
    else this.#queue.push(text);
  }

  #finish(error) {
    if (this.#finished) return;
    this.#finished = true;
    this.#error = error;
    for (const w of this.#waiters.splice(0)) {
      if (error) {
        w.reject(error);
        this.#error = null; // reported once
      } else {
        w.resolve({ value: undefined, done: true });
      }
    }
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  next() {
    if (this.#queue.length) return Promise.resolve({ value: this.#queue.shift(), done: false });
    if (this.#finished) {
      if (this.#error) {
        const e = this.#error;
        this.#error = null;
        return Promise.reject(e);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Leaving a `for await` loop early cancels the generation. */
  return() {
    if (!this.#finished && this.#task) this.#task.cancel();
    this.#queue.length = 0;
    this.#error = null;
    this.#finished = true;
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Cancels the generation; the iterator then ends with the cancellation error. */
  cancel() {
    if (this.#task) this.#task.cancel();
  }
}

function tokenText(ev) {
  return ev.kind === 'token' ? ev.text : undefined;
}

function toResult(ev) {
  const result = {
    text: ev.text,
    promptIds: ev.promptIds,
    generatedIds: ev.generatedIds,
    stopReason: ev.stopReason,
    timings: ev.timings,
  };
  if (ev.logprobs !== undefined) result.logprobs = ev.logprobs;
  return result;
}

// ---- OpenAI-shaped requests --------------------------------------------------------------------

const requestSchema = { signal: checks.signal };

/** Numbers JSON can hold (NaN and Infinity would silently become null) and safe bigints. */
function jsonValue(key, v) {
  if (typeof v === 'number' && !Number.isFinite(v)) {
    throw invalid(`the request body's ${key || 'value'} is ${v}, which JSON cannot hold`);
  }
  if (typeof v === 'bigint') {
    if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    throw invalid(`the request body's ${key || 'value'} (${v}n) is beyond what JSON numbers hold exactly`);
  }
  return v;
}

/**
 * The JSON text of an OpenAI-shaped body (snake_case, as OpenAI's SDK sends it; woolly-core
 * reads it) and the request's AbortSignal: `options.signal`, or a `signal` in the body.
 */
function openaiArgs(body, options) {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid(`the request body must be an object, got ${describe(body)}`);
  }
  let { signal } = checkOptions('options', options, requestSchema);
  let fields = body;
  if (body.signal !== undefined) {
    const { signal: inBody, ...rest } = body;
    if (signal === undefined) signal = checks.signal('body.signal', inBody);
    fields = rest;
  }
  let json;
  try {
    json = JSON.stringify(fields, jsonValue);
  } catch (e) {
    throw e instanceof WoollyError ? e : invalid(`the request body is not JSON: ${e.message}`);
  }
  return { json, signal, stream: fields.stream === true };
}

/**
 * Runs an OpenAI-shaped request through `start(json, cb)` (a native createCompletion): a
 * promise of the response object, or with `stream: true` of the stream of chunks (once the
 * request is planned, so that a bad request rejects it), which is also iterable directly.
 */
function openaiCall(start, body, options) {
  let promise;
  try {
    const { json, signal, stream } = openaiArgs(body, options);
    promise = stream
      ? openaiStream((cb) => start(json, cb), signal)
      : runTask((cb) => start(json, cb), { signal }).promise.then((ev) => ev.response);
  } catch (e) {
    promise = Promise.reject(e);
  }
  if (typeof body === 'object' && body !== null && body.stream === true) {
    promise[Symbol.asyncIterator] = async function* iterate() {
      yield* await promise;
    };
  }
  return promise;
}

function openaiStream(start, signal) {
  return new Promise((resolve, reject) => {
    const chunks = new TokenStream(start, signal, {
      pick: (ev) => (ev.kind === 'chunk' ? ev.chunk : undefined),
      finish: () => undefined,
      // Planned, or (from an engine) its first chunk came first.
      onEvent: () => resolve(chunks),
    });
    chunks.result.then(() => resolve(chunks), reject);
  });
}

// ---- the API -----------------------------------------------------------------------------------

/** Each Model's native model, for the Engine built on it. */
const nativeModels = new WeakMap();

class Model {
  #native;

  /** Use `await Model.load(...)`. */
  constructor(nativeModel) {
    if (!(nativeModel instanceof native.NativeModel)) {
      throw invalid('use `await Model.load(path, options)` to create a Model');
    }
    this.#native = nativeModel;
    nativeModels.set(this, nativeModel);
  }

  /**
   * Loads a GGUF model off the JS thread. `path` undefined/null: the default model (WOOLLY_MODEL or
   * ~/.cache/woolly/models/gemma-3-270m-q4_k_m.gguf).
   */
  static async load(modelPath, options) {
    ({ modelPath, options } = splitPathArgs(modelPath, options));
    const m = new native.NativeModel();
    return runLoad(m, options, loadSchema, (opts, progress, cb) => m.load(modelPath, opts, progress, cb));
  }

  #start(input, options, stream) {
    const { signal, nativeOptions } = splitGenerateOptions(options);
    const start = Array.isArray(input)
      ? (cb) => this.#native.chat(input, nativeOptions, stream, cb)
      : (cb) => this.#native.generate(input, nativeOptions, stream, cb);
    return { start, signal };
  }

  /**
   * The whole generation: { text, promptIds, generatedIds, stopReason, timings }, and
   * `logprobs` (one per generated token) when the options ask for them.
   */
  async complete(prompt, options) {
    const { start, signal } = this.#start(checkPrompt(prompt), options, false);
    return toResult(await runTask(start, { signal }).promise);
  }

  /** The generated text. `temperature: 0` is greedy; the default sampling is Woolly's. */
  async generate(prompt, options) {
    return (await this.complete(prompt, options)).text;
  }

  /** The generated text piece by piece: `for await (const piece of model.stream(prompt))`. */
  stream(prompt, options) {
    try {
      const { start, signal } = this.#start(checkPrompt(prompt), options, true);
      return new TokenStream(start, signal);
    } catch (e) {
      return new TokenStream(() => {
        throw e;
      });
    }
  }

  /** The assistant's reply to `messages` ([{ role, content }]), with the model's chat template. */
  async chat(messages, options) {
    const { start, signal } = this.#start(checkMessages(messages), options, false);
    return toResult(await runTask(start, { signal }).promise).text;
  }

  /** The assistant's reply, streamed. */
  chatStream(messages, options) {
    try {
      const { start, signal } = this.#start(checkMessages(messages), options, true);
      return new TokenStream(start, signal);
    } catch (e) {
      return new TokenStream(() => {
        throw e;
      });
    }
  }

  /**
   * An OpenAI chat completion (`POST /v1/chat/completions`) of `body`, the object OpenAI's JS SDK
   * sends (snake_case: `messages`, `tools`, `tool_choice`, `response_format`, `logprobs`,
   * `top_logprobs`, `stop`, `seed`, `max_tokens`, `temperature`, `top_p`, `stream`,
   * `stream_options`, and Woolly's `top_k`, `min_p`, `repeat_penalty`, `grammar`, `regex`,
   * `choices`, `priority`, `deadline_ms`, `latency_sensitive`). Resolves with the response
   * object; with `stream: true`, with an async iterator of chunks (leaving the loop cancels).
   * `options.signal` (an AbortSignal) cancels it. Planning and generation run off the JS
   * thread; a bad request rejects before anything is generated.
   */
  createChatCompletion(body, options) {
    return openaiCall((json, cb) => this.#native.createCompletion(true, json, cb), body, options);
  }

  /** An OpenAI completion (`POST /v1/completions`) of `body.prompt`; as createChatCompletion. */
  createCompletion(body, options) {
    return openaiCall((json, cb) => this.#native.createCompletion(false, json, cb), body, options);
  }

  /** Token ids of `text` (BOS as the model asks, special-token text parsed, by default). */
  tokenize(text, options) {
    if (typeof text !== 'string') throw invalid(`text must be a string, got ${describe(text)}`);
    const o = checkOptions('options', options, { addSpecial: checks.bool, parseSpecial: checks.bool });
    return callNative(() => this.#native.tokenize(text, o.addSpecial, o.parseSpecial));
  }

  /** The text of token ids (special tokens render as nothing). */
  detokenize(ids) {
    if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) {
      throw invalid(`ids must be an array of token ids, got ${describe(ids)}`);
    }
    const list = Array.from(ids);
    list.forEach((id, i) => checks.int(0, U32_MAX)(`ids[${i}]`, id));
    return callNative(() => this.#native.detokenize(list));
  }

  /** The prompt text the chat template makes of `messages`. */
  applyChatTemplate(messages) {
    return callNative(() => this.#native.applyChatTemplate(checkMessages(messages)));
  }

  /** Path, hyperparameters, chat format, load time, context size. */
  info() {
    return callNative(() => this.#native.info());
  }

  /** Counters of the generations on this model (same keys as the C API's metrics JSON). */
  metrics() {
    return callNative(() => this.#native.metrics());
  }

  /** The diagnostics report, with this model's section. */
  diagnostics() {
    return callNative(() => this.#native.diagnostics());
  }

  /**
   * This model's memory: `estimate`, `charged_bytes`, `account_held_bytes` (with its sessions),
   * `headroom_bytes`, `budget_bytes`, `reserve_bytes`, `available_bytes`, `under_pressure`,
   * `file_bytes`, `file_resident_bytes`, `repacked_bytes`, `locked`, `preload`, `process_rss_bytes`.
   */
  memoryReport() {
    return callNative(() => this.#native.memoryReport());
  }

  /** How far a background preload (`full`, `sequential`) got: `{ done_bytes, total_bytes, finished }`. */
  preloadProgress() {
    return callNative(() => this.#native.preloadProgress());
  }

  /** Resolves once a background preload has read the whole file (at once without one). */
  async waitPreloaded() {
    await runTask((cb) => this.#native.waitPreloaded(cb)).promise;
  }

  /** Whether the model's memory is locked (`mlock: true` and the system allowed it). */
  get isLocked() {
    return callNative(() => this.#native.isLocked);
  }

  /**
   * Releases the model (after the running generations end); later calls fail. A model from a
   * ModelCache is idle again (evictable) once every Model object on it is closed.
   */
  close() {
    this.#native.close();
  }

  get closed() {
    return !this.#native.loadedState;
  }
}

const PRIORITIES = ['low', 'normal', 'high', 'critical'];

const engineSchema = {
  maxBatchSize: checks.int(1, 1024),
  maxConcurrent: checks.int(1, 4096),
  queueCapacity: checks.int(1, 1 << 20),
  prefillChunk: checks.int(1, 1 << 16),
  maxLatencyMs: checks.num((x) => x >= 0 && x <= 10000, 'in [0, 10000]'),
  contextSize: checks.int(0, 1 << 22),
  kvPrecision: checks.oneOf(['f16', 'f32']),
  threads: checks.int(0, 1024),
};

const streamSchema = {
  ...generateSchema,
  priority: checks.oneOf(PRIORITIES),
  latencySensitive: checks.bool,
  timeoutMs: checks.num((x) => x >= 0, '>= 0'),
};

const submitSchema = { ...streamSchema, onToken: checks.fn };

function checkInput(input) {
  return Array.isArray(input) ? checkMessages(input) : checkPrompt(input);
}

/**
 * One model serving many requests at once: continuous batching on a worker thread of its own
 * (each step is one forward pass over every running request; requests join and leave between
 * steps). Waiting requests start by priority, then latency sensitivity, then size, then
 * arrival; an urgent one (`high`, `critical` or `latencySensitive`) gets its first token about
 * as fast as on an idle engine. Nothing runs on the JS thread: events come back through
 * thread-safe callbacks.
 */
class Engine {
  #native;

  /**
   * An engine on `model`'s weights. Options: `maxBatchSize` (16), `maxConcurrent` (16),
   * `queueCapacity` (256), `prefillChunk` (256), `maxLatencyMs` (0), `contextSize` (0 = the
   * model's default), `kvPrecision` ('f16'), `threads` (0 = Woolly's policy).
   */
  constructor(model, options) {
    if (!(model instanceof Model)) throw invalid(`model must be a Model, got ${describe(model)}`);
    const o = checkOptions('options', options, engineSchema);
    this.#native = callNative(() => new native.NativeEngine(nativeModels.get(model), o));
  }

  #start(input, options, schema, stream) {
    const { signal, onToken, priority, latencySensitive, timeoutMs, ...checked } = checkOptions('options', options, schema);
    const gen = withConstraint(checked);
    const request = {};
    if (priority !== undefined) request.priority = priority;
    if (latencySensitive !== undefined) request.latencySensitive = latencySensitive;
    if (timeoutMs !== undefined) request.timeoutMs = timeoutMs;
    const chat = Array.isArray(input);
    // The callback holds the engine: it lives as long as its requests.
    const start = (cb) =>
      this.#native.submit(chat ? undefined : input, chat ? input : undefined, gen, request, stream || !!onToken, (ev) =>
        cb.call(this, ev),
      );
    return { start, signal, onToken };
  }

  /**
   * Submits a request for a prompt (a string) or messages ([{ role, content }], with the
   * model's chat template) and resolves with the whole generation ({ text, promptIds,
   * generatedIds, stopReason, timings }; `timings.queueMs` is how long it waited to start).
   * Options: the generation options, `priority` ('low' | 'normal' | 'high' | 'critical'),
   * `latencySensitive`, `timeoutMs` (rejects with WOOLLY_ERR_DEADLINE_EXCEEDED unless finished
   * by then), `signal` (AbortSignal) and `onToken(text, { id, index, logprob })` (`logprob` when
   * the options ask for `logprobs`). The prompt is tokenized
   * off the JS thread, then queued (requests in submission order); rejects without queueing with
   * WOOLLY_ERR_BUSY when the queue is full (or for a context overflow, a tokenizer error).
   */
  async submit(input, options) {
    const { start, signal, onToken } = this.#start(checkInput(input), options, submitSchema, false);
    const onEvent = onToken
      ? (ev) => {
          if (ev.kind === 'token') {
            const token = { id: ev.id, index: ev.index };
            if (ev.logprob !== undefined) token.logprob = ev.logprob;
            onToken(ev.text, token);
          }
        }
      : undefined;
    return toResult(await runTask(start, { signal, onEvent }).promise);
  }

  /** The generated text of a request (options as for submit). */
  async generate(input, options) {
    return (await this.submit(input, options)).text;
  }

  /** A request's text piece by piece: `for await (const piece of engine.stream(prompt))`. */
  stream(input, options) {
    try {
      const { start, signal } = this.#start(checkInput(input), options, streamSchema, true);
      return new TokenStream(start, signal);
    } catch (e) {
      return new TokenStream(() => {
        throw e;
      });
    }
  }

  /**
   * Model.createChatCompletion as a request of this engine (batched with the others; the body's
   * `priority`, `deadline_ms` and `latency_sensitive` place it). Planned off the JS thread, then
   * queued; a full queue rejects with WOOLLY_ERR_BUSY.
   */
  createChatCompletion(body, options) {
    return openaiCall(this.#openai(true), body, options);
  }

  /** Model.createCompletion as a request of this engine. */
  createCompletion(body, options) {
    return openaiCall(this.#openai(false), body, options);
  }

  #openai(chat) {
    // The callback holds the engine: it lives as long as its requests.
    return (json, cb) => this.#native.createCompletion(chat, json, (ev) => cb.call(this, ev));
  }

  /**
   * Counters (`submitted`, `completed`, `failed`, `cancelled`, `deadline_exceeded`,
   * `rejected_busy`, `steps`, `preempted_steps`, `mean_batch_size`), the state now (`queued`,
   * `active`) and smoothed figures (`decode_step_ms`, `prefill_token_ms`, `mean_queue_ms`,
   * `mean_ttft_ms`); snake_case, as in every front end.
   */
  stats() {
    return callNative(() => this.#native.stats());
  }

  /** Milliseconds a request of `priority` submitted now would wait to start (an estimate). */
  estimatedWait(priority) {
    // Absent: woolly-core's default priority (normal).
    if (priority !== undefined) checks.oneOf(PRIORITIES)('priority', priority);
    return callNative(() => this.#native.estimatedWait(priority));
  }

  /** Tokens of context of each request. */
  get contextSize() {
    return callNative(() => this.#native.contextSize);
  }

  /**
   * Stops the engine off the JS thread: every request still waiting or running rejects with
   * WOOLLY_ERR_CANCELLED. Resolves once they all have; later calls resolve at once, other
   * methods throw.
   */
  async close() {
    await runTask((cb) => {
      this.#native.close(cb);
      return null;
    }).promise;
  }

  get closed() {
    return this.#native.closed;
  }
}

/** Load options without the memory policy (a ModelCache has its own). */
const cacheLoadSchema = Object.fromEntries(Object.entries(loadSchema).filter(([k]) => !(k in memorySchema)));

/**
 * Models by id within one memory budget: a load that does not fit evicts the least recently used
 * idle model (one that no open Model object holds, not pinned) until it does; a model in use is
 * never evicted, and a load that cannot fit rejects with WOOLLY_ERR_INSUFFICIENT_MEMORY.
 */
class ModelCache {
  #native;

  constructor(options) {
    const o = checkOptions('options', options, memorySchema);
    this.#native = callNative(() => new native.NativeModelCache(o));
  }

  /**
   * The model `id`, loaded off the JS thread from `path` (or the default model) unless it already
   * is; the same id from another path swaps the model. Options as for Model.load, except the
   * memory ones (the cache's apply).
   */
  async load(id, modelPath, options) {
    checkId(id);
    ({ modelPath, options } = splitPathArgs(modelPath, options));
    const m = new native.NativeModel();
    return runLoad(m, options, cacheLoadSchema, (opts, progress, cb) =>
      this.#native.load(m, id, modelPath, opts, progress, cb),
    );
  }

  /** The model `id` when it is loaded (marked as used), else null. */
  get(id) {
    const m = callNative(() => this.#native.get(checkId(id)));
    return m ? new Model(m) : null;
  }

  /** Removes `id`; its memory returns once its Model objects are closed. Whether it was loaded. */
  unload(id) {
    return this.#native.unload(checkId(id));
  }

  /** Keeps `id` from being evicted (`pinned` true, the default) or lets it be again. */
  pin(id, pinned = true) {
    checkId(id);
    checks.bool('pinned', pinned);
    callNative(() => this.#native.pin(id, pinned));
  }

  /** Ids of the loaded models, most recently used first. */
  ids() {
    return this.#native.ids();
  }

  /**
   * The cache's memory (`held_bytes`, `headroom_bytes`, `budget_bytes`, `reserve_bytes`,
   * `available_bytes`, `total_bytes`, `under_pressure`, `evictions`) and its `models` (`id`,
   * `path`, `model_bytes`, `in_use`, `pinned`, `last_used`), most recently used first.
   */
  report() {
    return this.#native.report();
  }

  /** Evicts idle, unpinned models while the machine is under memory pressure; the ids evicted. */
  relievePressure() {
    return this.#native.relievePressure();
  }
}

function checkId(id) {
  if (typeof id !== 'string' || id === '') throw invalid(`id must be a non-empty string, got ${describe(id)}`);
  return id;
}

const estimateSchema = Object.fromEntries(
  Object.entries(loadSchema).filter(([k]) => k !== 'progress' && k !== 'signal'),
);

/**
 * What loading the model at `path` (or the default model) with these load options would take,
 * from its header alone (read off the JS thread): `weights_bytes`, `overhead_bytes` (the model),
 * `kv_cache_bytes`, `scratch_bytes` (one session of `context_size`), `context_size`,
 * `batch_size`, `total_bytes`.
 */
async function estimate(modelPath, options) {
  ({ modelPath, options } = splitPathArgs(modelPath, options));
  const o = checkOptions('options', options, estimateSchema);
  const ev = await runTask((cb) => native.estimate(modelPath, o, cb)).promise;
  return ev.estimate;
}

/**
 * The machine's memory as Woolly sees it under a policy (`memoryBudget`, `memoryReserve`,
 * `pressureThreshold`): `total_bytes`, `available_bytes`, `reserve_bytes`, `pressure_threshold`,
 * `under_pressure`, `budget_bytes`, `headroom_bytes`, `page_size`, `huge_page_size`,
 * `process_rss_bytes`, `process_peak_rss_bytes`.
 */
function memoryReport(options) {
  const o = checkOptions('options', options, memorySchema);
  return callNative(() => native.memoryReport(o));
}

/** What Woolly detected about this machine (cores, caches, SIMD, memory). */
function hardware() {
  return native.hardware();
}

/** The CUDA devices as the driver reports them now, or why there are none (`reason`). */
function cudaDevices() {
  return native.cudaDevices();
}

/** The diagnostics report of this process; with `model`, its section too. */
function diagnostics(model) {
  if (model !== undefined && model !== null) {
    if (!(model instanceof Model)) throw invalid(`model must be a Model, got ${describe(model)}`);
    return model.diagnostics();
  }
  return native.diagnostics();
}

// ---- power and heat (process-wide) -----------------------------------------------------------

/** The power profiles (woolly-core's `PowerProfile::from_name`). */
const POWER_PROFILES = Object.freeze(['balanced', 'high_performance', 'power_saver', 'adaptive']);

/**
 * Sets the process-wide power profile, which every model, session and engine follows from their
 * next forward pass: `balanced` (the default: Woolly's thread policy per phase),
 * `high_performance` (every physical core, the largest batches), `power_saver` (half the cores,
 * small batches, a pause between decode steps) or `adaptive` (balanced on mains power,
 * power_saver on battery). Changes only Woolly's own behaviour, never the system's.
 */
function setPowerProfile(name) {
  checks.oneOf(POWER_PROFILES)('name', name);
  callNative(() => native.setPowerProfile(name));
}

/**
 * The power state: `profile`, `source` ({ kind: 'ac' | 'battery' | 'unknown', percent? }),
 * `knobs` (in effect: `profile` with adaptive resolved, `max_threads`, `max_batch_size`,
 * `batch_latency_ms`, `decode_pause_ms`, `kv_precision`), `throttled`,
 * `temperature_c`, `throttle_events`, `thermal_monitor`; snake_case, as in every front end.
 */
function powerState() {
  return callNative(() => native.powerState());
}

const thermalSchema = {
  thresholdC: checks.num((x) => x > 0 && x <= 150, 'in (0, 150]'),
  intervalMs: checks.num((x) => x > 0, '> 0'),
  sysfsRoot: (name, v) => {
    if (typeof v !== 'string' || v === '') throw invalid(`${name} must be a non-empty string, got ${describe(v)}`);
    return v;
  },
};

/**
 * Starts watching the CPU temperature on a thread of its own (replacing a monitor already
 * running): every `intervalMs` (2000) it reads the hottest thermal zone or hwmon sensor; above
 * `thresholdC` (80) Woolly halves its worker threads, and restores them once the temperature is
 * 5 °C lower. `sysfsRoot` reads the sensors under another root (a fake tree, for tests).
 */
function startThermalMonitor(options) {
  const o = checkOptions('options', options, thermalSchema);
  callNative(() => native.startThermalMonitor(o));
}

/** Stops the thermal monitor (nothing when none runs); the thread cap it set is lifted. */
function stopThermalMonitor() {
  native.stopThermalMonitor();
}

/**
 * Changes the system for every program: sets the CPU frequency governor (e.g. 'powersave') of
 * every CPU. An explicit opt-in (Woolly never calls it by itself); returns the number of CPUs set.
 * Throws WOOLLY_ERR_PERMISSION_DENIED when the system refuses (it needs root),
 * WOOLLY_ERR_UNSUPPORTED without cpufreq. `sysfsRoot` writes under another root (tests).
 */
function setCpuGovernor(governor, sysfsRoot) {
  if (typeof governor !== 'string') throw invalid(`governor must be a string, got ${describe(governor)}`);
  if (sysfsRoot !== undefined && sysfsRoot !== null && (typeof sysfsRoot !== 'string' || sysfsRoot === '')) {
    throw invalid(`sysfsRoot must be a non-empty string, got ${describe(sysfsRoot)}`);
  }
  return callNative(() => native.setCpuGovernor(governor, sysfsRoot ?? undefined));
}

/** Test hook (not part of the API): reads the power source under `root` (default `/`). */
function setPowerRoot(root) {
  if (root !== undefined && root !== null && typeof root !== 'string') throw invalid('root must be a string');
  native.setPowerRoot(root ?? undefined);
}

// ---- metrics and the doctor ------------------------------------------------------------------

/**
 * Every metric Woolly keeps in the Prometheus text format 0.0.4 (serve it with
 * `PROMETHEUS_CONTENT_TYPE`; Woolly opens no port): per model, requests, tokens, rates and
 * latency histograms; engine figures; process memory; thermal throttling; the GPU when an NVIDIA
 * driver is present.
 */
function metricsPrometheus() {
  return native.metricsPrometheus();
}

/** The same figures as JSON: `time_unix_ms`, `metrics` (by family), `models`, `gpu`. */
function metrics() {
  return native.metrics();
}

const doctorSchema = {
  model: (name, v) => {
    if (v instanceof URL) return require('node:url').fileURLToPath(v);
    if (typeof v !== 'string' || v === '') throw invalid(`${name} must be a non-empty string or a file URL, got ${describe(v)}`);
    return v;
  },
  measure: checks.bool,
  onProgress: checks.fn,
};

/**
 * Examines this machine and recommends settings, off the JS thread: resolves with exactly
 * `cpu`, `memory`, `gpu`, `inference` and `recommendations`. With `measure` (default true) it
 * loads `model` (default: the default model) and measures generation at several thread counts
 * and at batch sizes 1 to 16 (about 10 s on two cores); `measure: false` reads the machine only.
 * `onProgress(fraction, message)` hears how far it got. A throwing `onProgress` rejects the
 * promise; the measurement under way still finishes in the background (it cannot be stopped).
 */
async function doctor(options) {
  // `measure` absent: woolly-core's default (true).
  const { model, measure, onProgress } = checkOptions('options', options, doctorSchema);
  const ev = await runTask((cb) => native.doctor(model, measure, !!onProgress, cb), {
    onEvent: (e) => {
      if (e.kind === 'progress' && onProgress) onProgress(e.progress, e.message);
    },
  }).promise;
  return ev.report;
}

module.exports = {
  Model,
  ModelCache,
  Engine,
  estimate,
  memoryReport,
  WoollyError,
  codes,
  hardware,
  cudaDevices,
  diagnostics,
  version: native.version(),
  defaultModelPath: native.defaultModelPath,
  POWER_PROFILES,
  setPowerProfile,
  powerState,
  startThermalMonitor,
  stopThermalMonitor,
  setCpuGovernor,
  metricsPrometheus,
  metrics,
  PROMETHEUS_CONTENT_TYPE: native.prometheusContentType(),
  doctor,
  _setPowerRoot: setPowerRoot,
  // For the tests only: a panic inside Woolly on the JavaScript thread.
  _panic: (message) => callNative(() => native.panicForTests(message)),
};
