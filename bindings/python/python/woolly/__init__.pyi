import os
from typing import Any, AsyncIterator, Callable, Dict, Generator, Iterable, Iterator, List, Literal, Mapping, Optional, Sequence, TypedDict, Union, overload

from ._errors import (
    BusyError as BusyError,
    CancelledError as CancelledError,
    ContextOverflowError as ContextOverflowError,
    DeadlineExceededError as DeadlineExceededError,
    DeviceError as DeviceError,
    OutOfDeviceMemoryError as OutOfDeviceMemoryError,
    InsufficientMemoryError as InsufficientMemoryError,
    InternalError as InternalError,
    InvalidArgumentError as InvalidArgumentError,
    InvalidModelError as InvalidModelError,
    InvalidUtf8Error as InvalidUtf8Error,
    ModelNotFoundError as ModelNotFoundError,
    PermissionDeniedError as PermissionDeniedError,
    TokenizerError as TokenizerError,
    UnsupportedError as UnsupportedError,
    WoollyError as WoollyError,
    WoollyIOError as WoollyIOError,
)

__version__: str

Message = Mapping[str, str]
Stop = Union[None, str, Sequence[str]]
Path = Union[None, str, os.PathLike[str]]
#: Bytes, or a size such as "512MB" or "1.5GiB".
Size = Union[int, str]
#: Generation options left as None take woolly-core's defaults (max_tokens 256, temperature
#: 0.8, top_k 40, top_p 0.95, min_p 0.05, no penalties over the last 64 tokens, a random seed);
#: load and engine options left as None (threads also 0) take the core's own choice.
PreloadName = Literal["lazy", "none", "sequential", "critical", "full", "full_blocking"]
ThreadPolicy = Literal["auto", "interactive", "background"]
KvPrecisionName = Literal["f16", "f32"]
#: "auto" (as many layers as fit on the CUDA GPUs), 0 (CPU only) or a count of layers.
GpuLayers = Union[Literal["auto"], int]
SplitModeName = Literal["none", "layer"]
#: What a sequence whose KV cache does not fit in GPU memory does: run on the CPU, or raise.
DeviceOomName = Literal["cpu", "error"]
#: Why a generation ended, as woolly-core serializes it (and the Node binding returns it).
StopReason = Literal["max_tokens", "end_of_generation", "stop_string", "callback"]
PriorityName = Literal["low", "normal", "high", "critical"]
#: What the output must match, as every front end spells it: {"json_schema": {...}},
#: "json_object", {"gbnf": "..."}, {"lark": "..."}, {"regex": "..."} or {"choice": [...]}.
Constraint = Union[Literal["json_object"], Mapping[str, Any]]
PRIORITIES: tuple[str, ...]

# -- OpenAI-shaped requests (create_chat_completion, create_completion) ---------------------------

class FunctionCall(TypedDict):
    name: str
    #: The arguments as JSON text (valid against the tool's ``parameters`` schema).
    arguments: str

class ChatCompletionMessageToolCall(TypedDict):
    #: ``call_...``
    id: str
    type: Literal["function"]
    function: FunctionCall

class ChatCompletionChunkToolCall(ChatCompletionMessageToolCall):
    index: int

class CompletionUsageDetails(TypedDict):
    #: Prompt tokens a reused session already had in its KV cache.
    cached_tokens: int

class CompletionUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: CompletionUsageDetails

class ChatCompletionTopLogprob(TypedDict):
    token: str
    logprob: float
    bytes: Optional[List[int]]

class ChatCompletionTokenLogprob(ChatCompletionTopLogprob):
    top_logprobs: List[ChatCompletionTopLogprob]

class ChatCompletionLogprobs(TypedDict):
    content: Optional[List[ChatCompletionTokenLogprob]]
    refusal: None

FinishReason = Literal["stop", "length", "tool_calls"]

class _ChatCompletionResponseMessage(TypedDict):
    role: Literal["assistant"]
    #: None when the reply is only tool calls.
    content: Optional[str]
    refusal: None

class ChatCompletionResponseMessage(_ChatCompletionResponseMessage, total=False):
    tool_calls: List[ChatCompletionMessageToolCall]

class ChatCompletionChoice(TypedDict):
    index: int
    message: ChatCompletionResponseMessage
    logprobs: Optional[ChatCompletionLogprobs]
    finish_reason: FinishReason

class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: Optional[str]
    choices: List[ChatCompletionChoice]
    usage: CompletionUsage

class ChatCompletionDelta(TypedDict, total=False):
    role: Literal["assistant"]
    content: Optional[str]
    tool_calls: List[ChatCompletionChunkToolCall]

class ChatCompletionChunkChoice(TypedDict):
    index: int
    delta: ChatCompletionDelta
    logprobs: Optional[ChatCompletionLogprobs]
    finish_reason: Optional[FinishReason]

class _ChatCompletionChunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: Optional[str]
    #: Empty in the last chunk of ``stream_options={"include_usage": True}``, which has the usage.
    choices: List[ChatCompletionChunkChoice]

class ChatCompletionChunk(_ChatCompletionChunk, total=False):
    usage: CompletionUsage

class CompletionLogprobs(TypedDict):
    tokens: List[str]
    token_logprobs: List[float]
    top_logprobs: List[Dict[str, float]]
    text_offset: List[int]

class CompletionChoice(TypedDict):
    index: int
    text: str
    logprobs: Optional[CompletionLogprobs]
    finish_reason: Optional[Literal["stop", "length"]]

class _Completion(TypedDict):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: Optional[str]
    choices: List[CompletionChoice]

class Completion(_Completion, total=False):
    #: In the response (and the last chunk with ``include_usage``).
    usage: CompletionUsage

#: OpenAI's messages: ``{"role": "system" | "user" | "assistant" | "tool", "content": ...}``, with
#: ``tool_calls`` (assistant) and ``tool_call_id`` (tool).
ChatCompletionMessage = Mapping[str, Any]

class _Completions:
    @overload
    def create_chat_completion(
        self, messages: Sequence[ChatCompletionMessage], *, stream: Literal[False] = False, **fields: Any
    ) -> ChatCompletion: ...
    @overload
    def create_chat_completion(
        self, messages: Sequence[ChatCompletionMessage], *, stream: Literal[True], **fields: Any
    ) -> Iterator[ChatCompletionChunk]: ...
    @overload
    def create_completion(
        self, prompt: Union[str, Sequence[str]], *, stream: Literal[False] = False, **fields: Any
    ) -> Completion: ...
    @overload
    def create_completion(
        self, prompt: Union[str, Sequence[str]], *, stream: Literal[True], **fields: Any
    ) -> Iterator[Completion]: ...
    @overload
    async def acreate_chat_completion(
        self, messages: Sequence[ChatCompletionMessage], *, stream: Literal[False] = False, **fields: Any
    ) -> ChatCompletion: ...
    @overload
    async def acreate_chat_completion(
        self, messages: Sequence[ChatCompletionMessage], *, stream: Literal[True], **fields: Any
    ) -> AsyncIterator[ChatCompletionChunk]: ...
    @overload
    async def acreate_completion(
        self, prompt: Union[str, Sequence[str]], *, stream: Literal[False] = False, **fields: Any
    ) -> Completion: ...
    @overload
    async def acreate_completion(
        self, prompt: Union[str, Sequence[str]], *, stream: Literal[True], **fields: Any
    ) -> AsyncIterator[Completion]: ...

class Model(_Completions):
    def __init__(
        self,
        path: Path = None,
        *,
        preload: Optional[PreloadName] = None,
        mlock: bool = False,
        repack: bool = True,
        threads: Optional[int] = None,
        thread_policy: ThreadPolicy = "auto",
        context_size: int = 0,
        kv_precision: Optional[KvPrecisionName] = None,
        memory_budget: Optional[Size] = None,
        memory_reserve: Optional[Size] = None,
        pressure_threshold: Optional[float] = None,
        gpu_layers: GpuLayers = "auto",
        main_gpu: Optional[int] = None,
        split_mode: Optional[SplitModeName] = None,
        gpu_margin_bytes: Optional[Size] = None,
        on_device_oom: Optional[DeviceOomName] = None,
        progress: Optional[Callable[[float], bool]] = None,
    ) -> None: ...
    @classmethod
    def load(
        cls,
        path: Path = None,
        *,
        preload: Optional[PreloadName] = None,
        mlock: bool = False,
        repack: bool = True,
        threads: Optional[int] = None,
        thread_policy: ThreadPolicy = "auto",
        context_size: int = 0,
        kv_precision: Optional[KvPrecisionName] = None,
        memory_budget: Optional[Size] = None,
        memory_reserve: Optional[Size] = None,
        pressure_threshold: Optional[float] = None,
        gpu_layers: GpuLayers = "auto",
        main_gpu: Optional[int] = None,
        split_mode: Optional[SplitModeName] = None,
        gpu_margin_bytes: Optional[Size] = None,
        on_device_oom: Optional[DeviceOomName] = None,
        progress: Optional[Callable[[float], bool]] = None,
    ) -> Model: ...
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> List[int]: ...
    def detokenize(self, ids: Iterable[int]) -> str: ...
    def apply_chat_template(self, messages: Iterable[Message]) -> str: ...
    def generate(
        self,
        prompt: str,
        *,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        min_p: Optional[float] = None,
        repeat_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
        presence_penalty: Optional[float] = None,
        penalty_last_n: Optional[int] = None,
        seed: Optional[int] = None,
        stop: Stop = None,
        ignore_eos: Optional[bool] = None,
        parse_special_in_messages: Optional[bool] = None,
        constraint: Optional[Constraint] = None,
        json_schema: Union[None, bool, str, Mapping[str, Any]] = None,
        grammar: Optional[str] = None,
        regex: Optional[str] = None,
        choices: Optional[Sequence[str]] = None,
        logprobs: Optional[int] = None,
    ) -> str: ...
    def stream(
        self,
        prompt: str,
        *,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        min_p: Optional[float] = None,
        repeat_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
        presence_penalty: Optional[float] = None,
        penalty_last_n: Optional[int] = None,
        seed: Optional[int] = None,
        stop: Stop = None,
        ignore_eos: Optional[bool] = None,
        parse_special_in_messages: Optional[bool] = None,
        constraint: Optional[Constraint] = None,
        json_schema: Union[None, bool, str, Mapping[str, Any]] = None,
        grammar: Optional[str] = None,
        regex: Optional[str] = None,
        choices: Optional[Sequence[str]] = None,
        logprobs: Optional[int] = None,
    ) -> Iterator[str]: ...
    def generate_details(self, prompt: str, **options: Any) -> GenerationResult: ...
    @overload
    def chat(self, messages: Iterable[Message], *, stream: Literal[False] = False, **options: Any) -> str: ...
    @overload
    def chat(self, messages: Iterable[Message], *, stream: Literal[True], **options: Any) -> Iterator[str]: ...
    async def agenerate(self, prompt: str, **options: Any) -> str: ...
    def astream(self, prompt: str, **options: Any) -> AsyncIterator[str]: ...
    async def achat(self, messages: Iterable[Message], **options: Any) -> str: ...
    @property
    def info(self) -> Dict[str, Any]: ...
    def metrics(self) -> Dict[str, Any]: ...
    def diagnostics(self) -> Dict[str, Any]: ...
    def memory_report(self) -> Dict[str, Any]: ...
    @property
    def preload_progress(self) -> Dict[str, Any]: ...
    def wait_preloaded(self) -> None: ...
    @property
    def is_locked(self) -> bool: ...

def load(
    path: Path = None,
    *,
    preload: Optional[PreloadName] = None,
    mlock: bool = False,
    repack: bool = True,
    threads: Optional[int] = None,
    thread_policy: ThreadPolicy = "auto",
    context_size: int = 0,
    kv_precision: Optional[KvPrecisionName] = None,
    memory_budget: Optional[Size] = None,
    memory_reserve: Optional[Size] = None,
    pressure_threshold: Optional[float] = None,
    gpu_layers: GpuLayers = "auto",
    main_gpu: Optional[int] = None,
    split_mode: Optional[SplitModeName] = None,
    gpu_margin_bytes: Optional[Size] = None,
    on_device_oom: Optional[DeviceOomName] = None,
    progress: Optional[Callable[[float], bool]] = None,
) -> Model: ...

class ModelCache:
    def __init__(
        self,
        memory_budget: Optional[Size] = None,
        memory_reserve: Optional[Size] = None,
        pressure_threshold: Optional[float] = None,
    ) -> None: ...
    def load(
        self,
        id: str,
        path: Path = None,
        *,
        preload: Optional[PreloadName] = None,
        mlock: bool = False,
        repack: bool = True,
        threads: Optional[int] = None,
        thread_policy: ThreadPolicy = "auto",
        context_size: int = 0,
        kv_precision: Optional[KvPrecisionName] = None,
        gpu_layers: GpuLayers = "auto",
        main_gpu: Optional[int] = None,
        split_mode: Optional[SplitModeName] = None,
        gpu_margin_bytes: Optional[Size] = None,
        on_device_oom: Optional[DeviceOomName] = None,
        progress: Optional[Callable[[float], bool]] = None,
    ) -> Model: ...
    def get(self, id: str) -> Optional[Model]: ...
    def unload(self, id: str) -> bool: ...
    def pin(self, id: str, pinned: bool = True) -> None: ...
    def ids(self) -> List[str]: ...
    def __contains__(self, id: object) -> bool: ...
    def __len__(self) -> int: ...
    def report(self) -> Dict[str, Any]: ...
    def relieve_pressure(self) -> List[str]: ...

class Timings(TypedDict):
    prompt_tokens: int
    cached_tokens: int
    prompt_ms: float
    prompt_tok_s: float
    generated_tokens: int
    gen_ms: float
    gen_tok_s: float
    #: From the call (or the submission to an engine) to the first generated token.
    ttft_ms: float
    #: How long an engine's request waited before it started (0 for Model's generations).
    queue_ms: float

class TopLogprob(TypedDict):
    id: int
    #: The token's text (bytes that are not UTF-8 on their own as U+FFFD).
    token: str
    #: The token's bytes exactly.
    bytes: List[int]
    #: Natural log of its probability in the model's distribution.
    logprob: float

class TokenLogprob(TopLogprob):
    #: The most likely tokens of that step, best first (``logprobs`` of them).
    top_logprobs: List[TopLogprob]

class _GenerationResult(TypedDict):
    text: str
    prompt_ids: List[int]
    generated_ids: List[int]
    stop_reason: StopReason
    timings: Timings

class GenerationResult(_GenerationResult, total=False):
    #: One per generated token, when the options asked for ``logprobs``.
    logprobs: List[TokenLogprob]

class EngineStats(TypedDict):
    submitted: int
    completed: int
    failed: int
    cancelled: int
    deadline_exceeded: int
    rejected_busy: int
    steps: int
    preempted_steps: int
    mean_batch_size: float
    queued: int
    active: int
    decode_step_ms: float
    prefill_token_ms: float
    mean_queue_ms: float
    mean_ttft_ms: float

class Engine(_Completions):
    model: Model
    def __init__(
        self,
        model: Model,
        *,
        max_batch_size: Optional[int] = None,
        max_concurrent: Optional[int] = None,
        queue_capacity: Optional[int] = None,
        prefill_chunk: Optional[int] = None,
        max_latency_ms: Optional[float] = None,
        context_size: Optional[int] = None,
        kv_precision: Optional[KvPrecisionName] = None,
        threads: Optional[int] = None,
    ) -> None: ...
    def submit(
        self,
        prompt_or_messages: Union[str, Iterable[Message]],
        *,
        priority: PriorityName = "normal",
        latency_sensitive: bool = False,
        deadline_s: Optional[float] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        min_p: Optional[float] = None,
        repeat_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
        presence_penalty: Optional[float] = None,
        penalty_last_n: Optional[int] = None,
        seed: Optional[int] = None,
        stop: Stop = None,
        ignore_eos: Optional[bool] = None,
        parse_special_in_messages: Optional[bool] = None,
        constraint: Optional[Constraint] = None,
        json_schema: Union[None, bool, str, Mapping[str, Any]] = None,
        grammar: Optional[str] = None,
        regex: Optional[str] = None,
        choices: Optional[Sequence[str]] = None,
        logprobs: Optional[int] = None,
    ) -> Request: ...
    def generate(self, prompt_or_messages: Union[str, Iterable[Message]], **kwargs: Any) -> str: ...
    def generate_details(self, prompt_or_messages: Union[str, Iterable[Message]], **kwargs: Any) -> GenerationResult: ...
    async def agenerate(self, prompt_or_messages: Union[str, Iterable[Message]], **kwargs: Any) -> str: ...
    def stats(self) -> EngineStats: ...
    def estimated_wait(self, priority: PriorityName = "normal") -> float: ...
    @property
    def context_size(self) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Engine: ...
    def __exit__(self, *exc: Any) -> None: ...

class Request:
    id: int
    def cancel(self) -> None: ...
    def done(self) -> bool: ...
    def result(self, timeout: Optional[float] = None) -> GenerationResult: ...
    def __iter__(self) -> Iterator[str]: ...
    def __await__(self) -> Generator[Any, None, GenerationResult]: ...
    def __aiter__(self) -> AsyncIterator[str]: ...

def estimate(
    path: Path = None,
    *,
    preload: Optional[PreloadName] = None,
    mlock: bool = False,
    repack: bool = True,
    threads: Optional[int] = None,
    thread_policy: ThreadPolicy = "auto",
    context_size: int = 0,
    kv_precision: Optional[KvPrecisionName] = None,
    memory_budget: Optional[Size] = None,
    memory_reserve: Optional[Size] = None,
    pressure_threshold: Optional[float] = None,
    gpu_layers: GpuLayers = "auto",
    main_gpu: Optional[int] = None,
    split_mode: Optional[SplitModeName] = None,
    gpu_margin_bytes: Optional[Size] = None,
    on_device_oom: Optional[DeviceOomName] = None,
) -> Dict[str, Any]: ...
def memory_report(
    memory_budget: Optional[Size] = None,
    memory_reserve: Optional[Size] = None,
    pressure_threshold: Optional[float] = None,
) -> Dict[str, Any]: ...
def hardware() -> Dict[str, Any]: ...
def cuda_devices() -> Dict[str, Any]: ...
def diagnostics() -> Dict[str, Any]: ...

# -- power and heat (process-wide) -----------------------------------------------------------

PowerProfileName = Literal["balanced", "high_performance", "power_saver", "adaptive"]
POWER_PROFILES: tuple[str, ...]

class PowerKnobs(TypedDict):
    #: The profile in effect ("adaptive" resolved to "balanced" or "power_saver").
    profile: PowerProfileName
    #: Most worker threads per forward pass; 0: no limit beyond the thread policy.
    max_threads: int
    max_batch_size: int
    #: How long an idle engine waits to gather a batch, in milliseconds.
    batch_latency_ms: float
    #: Pause after each decode step, in milliseconds.
    decode_pause_ms: float
    kv_precision: KvPrecisionName

class PowerState(TypedDict):
    profile: PowerProfileName
    #: {"kind": "ac"}, {"kind": "battery", "percent": int | None} or {"kind": "unknown"}.
    source: Dict[str, Any]
    knobs: PowerKnobs
    throttled: bool
    temperature_c: Optional[float]
    throttle_events: int
    thermal_monitor: bool

def set_power_profile(name: PowerProfileName) -> None: ...
def power_state() -> PowerState: ...
def start_thermal_monitor(
    threshold_c: Optional[float] = None,
    interval_s: Optional[float] = None,
    sysfs_root: Path = None,
) -> None: ...
def stop_thermal_monitor() -> None: ...
def set_cpu_governor(governor: str, sysfs_root: Path = None) -> int:
    """Changes the system for every program (explicit opt-in); raises PermissionDeniedError
    when the system refuses, UnsupportedError without cpufreq."""
    ...

# -- metrics and the doctor --------------------------------------------------------------------

PROMETHEUS_CONTENT_TYPE: str

def metrics_prometheus() -> str: ...
def metrics() -> Dict[str, Any]: ...

class DoctorReport(TypedDict):
    cpu: Dict[str, Any]
    memory: Dict[str, Any]
    gpu: Dict[str, Any]
    inference: Dict[str, Any]
    recommendations: Dict[str, Any]

def doctor(
    model: Path = None,
    measure: bool = True,
    progress: Optional[Callable[[float, str], Any]] = None,
) -> DoctorReport: ...
