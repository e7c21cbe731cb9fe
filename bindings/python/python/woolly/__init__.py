"""Woolly: run GGUF language models fast on the user's own machine.

>>> import woolly
>>> model = woolly.Model()                      # the default model (Gemma 3 270M)
>>> model.generate("The capital of France is", max_tokens=16, temperature=0)
>>> for piece in model.stream("Once upon a time"):
...     print(piece, end="", flush=True)

Memory: ``memory_budget="2GB"`` (a load option) makes a load that would not fit fail early with
:class:`InsufficientMemoryError`; :func:`estimate` says what a model needs before loading it,
:func:`memory_report` what the machine has, and :class:`ModelCache` keeps several models by id
within one budget, evicting the least recently used idle one to make room.

Work runs on Woolly's own threads with the GIL released: other Python threads keep running,
several threads may generate on one model at once, ``Ctrl-C`` stops a generation promptly
(``KeyboardInterrupt``) and leaves the model usable, and the ``a``-prefixed methods never block
an asyncio event loop.

Power and heat: :func:`set_power_profile` (``"balanced"``, ``"high_performance"``,
``"power_saver"``, ``"adaptive"``) and :func:`start_thermal_monitor` adapt Woolly's own threads
and batching, process-wide; :func:`power_state` says what is in effect. Monitoring:
:func:`metrics_prometheus` (serve it from your own ``/metrics``; Woolly opens no port) and
:func:`metrics`. :func:`doctor` measures this machine and recommends settings.

Serving many requests at once: :class:`Engine` batches the requests of every thread (and
asyncio task) into shared forward passes, admitting them by priority:

>>> with woolly.Engine(model, max_concurrent=8) as engine:
...     req = engine.submit("Hello", priority="high", deadline_s=5, max_tokens=16)
...     print(req.result()["text"])

OpenAI-shaped requests, returning the dicts llama-cpp-python returns (on a Model or an Engine):

>>> r = model.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=16)
>>> r["choices"][0]["message"]["content"], r["usage"]["completion_tokens"]
>>> for chunk in model.create_chat_completion(messages, stream=True):
...     print(chunk["choices"][0]["delta"].get("content", ""), end="")
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from . import _woolly
from ._errors import (
    BusyError,
    CancelledError,
    ContextOverflowError,
    DeadlineExceededError,
    DeviceError,
    OutOfDeviceMemoryError,
    InsufficientMemoryError,
    InternalError,
    InvalidArgumentError,
    InvalidModelError,
    InvalidUtf8Error,
    ModelNotFoundError,
    PermissionDeniedError,
    TokenizerError,
    UnsupportedError,
    WoollyError,
    WoollyIOError,
)

__version__: str = _woolly.__version__

__all__ = [
    "Model",
    "ModelCache",
    "Engine",
    "Request",
    "load",
    "estimate",
    "memory_report",
    "hardware",
    "cuda_devices",
    "diagnostics",
    "POWER_PROFILES",
    "set_power_profile",
    "power_state",
    "start_thermal_monitor",
    "stop_thermal_monitor",
    "set_cpu_governor",
    "metrics_prometheus",
    "metrics",
    "PROMETHEUS_CONTENT_TYPE",
    "doctor",
    "WoollyError",
    "InvalidArgumentError",
    "WoollyIOError",
    "InvalidModelError",
    "UnsupportedError",
    "ModelNotFoundError",
    "TokenizerError",
    "ContextOverflowError",
    "CancelledError",
    "InvalidUtf8Error",
    "PermissionDeniedError",
    "InsufficientMemoryError",
    "BusyError",
    "DeadlineExceededError",
    "DeviceError",
    "OutOfDeviceMemoryError",
    "InternalError",
    "__version__",
]

Message = Mapping[str, str]

# How often a waiting call wakes up to let Python run (signal handlers: Ctrl-C).
_POLL_S = 0.05


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a str, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidUtf8Error(f"{name} is not valid UTF-8: {e}") from None
    return value


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise InvalidArgumentError(f"{name} = {value} is out of range ({lo} to {hi})")
    return value


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{name} must be a number, not {type(value).__name__}")
    return float(value)


Size = Union[int, str]


def _size(value: Any, name: str) -> Optional[int]:
    """A byte count: None, an int, or a size string such as ``"512MB"`` or ``"1.5GiB"``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return _woolly.parse_size(value)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"{name}: {e}") from None
    return _int(value, name, 0, (1 << 64) - 1)


def _threshold(value: Any) -> Optional[float]:
    return None if value is None else _float(value, "pressure_threshold")


def _maybe(check: Callable[..., Any], value: Any, *args: Any) -> Any:
    """``check(value, *args)``, or None for None: Woolly's default (woolly-core's own)."""
    return None if value is None else check(value, *args)


def _gpu_layers(value: Any) -> Optional[int]:
    """``"auto"`` (-1 natively), a count >= 0 (0: CPU only), or None (the default: auto)."""
    if value is None:
        return None
    if value == "auto" and isinstance(value, str):
        return -1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f'gpu_layers must be "auto" or an int >= 0, not {value!r}')
    return value


def _load_options(
    preload: Optional[str] = None,
    mlock: Optional[bool] = None,
    repack: Optional[bool] = None,
    threads: Optional[int] = None,
    thread_policy: Optional[str] = None,
    context_size: Optional[int] = None,
    kv_precision: Optional[str] = None,
    memory_budget: Optional[Size] = None,
    memory_reserve: Optional[Size] = None,
    pressure_threshold: Optional[float] = None,
    gpu_layers: Union[None, str, int] = None,
    main_gpu: Optional[int] = None,
    split_mode: Optional[str] = None,
    gpu_margin_bytes: Optional[Size] = None,
    on_device_oom: Optional[str] = None,
):
    """The native load options, checked (names and ranges in woolly-core; None: its
    default, and threads None or 0: its thread policy)."""
    return _woolly.LoadOptions(
        _maybe(_text, preload, "preload"),
        _maybe(bool, mlock),
        _maybe(bool, repack),
        _maybe(_int, threads, "threads", 0, 1024),
        _maybe(_text, thread_policy, "thread_policy"),
        _maybe(_int, context_size, "context_size", 0, 1 << 22),
        _maybe(_text, kv_precision, "kv_precision"),
        _size(memory_budget, "memory_budget"),
        _size(memory_reserve, "memory_reserve"),
        _threshold(pressure_threshold),
        _gpu_layers(gpu_layers),
        _maybe(_int, main_gpu, "main_gpu", 0, 1 << 16),
        _maybe(_text, split_mode, "split_mode"),
        _size(gpu_margin_bytes, "gpu_margin_bytes"),
        _maybe(_text, on_device_oom, "on_device_oom"),
    )


def _path(path: Any) -> Optional[str]:
    return None if path is None else _text(os.fspath(path), "path")


def _progress(progress: Any) -> Optional[Callable[[float], bool]]:
    if progress is not None and not callable(progress):
        raise InvalidArgumentError("progress must be callable")
    return progress


def _messages(messages: Any) -> List[tuple]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Iterable):
        raise InvalidArgumentError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise InvalidArgumentError(f"messages[{i}] must be a dict with 'role' and 'content'")
        out.append((_text(m["role"], f"messages[{i}]['role']"), _text(m["content"], f"messages[{i}]['content']")))
    if not out:
        raise InvalidArgumentError("messages is empty")
    return out


def _constraint(
    constraint: Any, json_schema: Any, grammar: Any, regex: Any, choices: Any
) -> Optional[str]:
    """The JSON text of the constraint the keyword arguments give (at most one of them), in the
    spelling every front end uses: ``{"json_schema": {...}}``, ``"json_object"``,
    ``{"gbnf": "..."}``, ``{"lark": "..."}``, ``{"regex": "..."}`` or ``{"choice": [...]}``.
    woolly-core checks the rest (an unknown key, a malformed grammar, an unsupported schema)."""
    given = {
        k: v
        for k, v in (
            ("constraint", constraint),
            ("json_schema", json_schema),
            ("grammar", grammar),
            ("regex", regex),
            ("choices", choices),
        )
        if v is not None
    }
    if len(given) > 1:
        raise InvalidArgumentError(
            f"give at most one of constraint, json_schema, grammar, regex and choices, not {', '.join(given)}"
        )
    if not given:
        return None
    if constraint is not None:
        if not isinstance(constraint, (str, Mapping)):
            raise InvalidArgumentError(
                'constraint must be a dict such as {"regex": "[0-9]+"} or the str "json_object", '
                f"not {type(constraint).__name__}"
            )
        value: Any = constraint if isinstance(constraint, str) else dict(constraint)
    elif json_schema is not None:
        if isinstance(json_schema, str):
            try:
                json_schema = json.loads(json_schema)
            except ValueError as e:
                raise InvalidArgumentError(f"json_schema is not valid JSON: {e}") from None
        elif not isinstance(json_schema, (bool, Mapping)):
            raise InvalidArgumentError(
                f"json_schema must be a dict (or its JSON text), not {type(json_schema).__name__}"
            )
        value = {"json_schema": json_schema}
    elif grammar is not None:
        value = {"gbnf": _text(grammar, "grammar")}
    elif regex is not None:
        value = {"regex": _text(regex, "regex")}
    else:
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
            raise InvalidArgumentError(f"choices must be a list of str, not {type(choices).__name__}")
        value = {"choice": [_text(c, "choices[]") for c in choices]}
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"the constraint is not JSON: {e}") from None


def _options(
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
    stop: Union[None, str, Sequence[str]] = None,
    ignore_eos: Optional[bool] = None,
    parse_special_in_messages: Optional[bool] = None,
    constraint: Union[None, str, Mapping[str, Any]] = None,
    json_schema: Union[None, bool, str, Mapping[str, Any]] = None,
    grammar: Optional[str] = None,
    regex: Optional[str] = None,
    choices: Optional[Sequence[str]] = None,
    logprobs: Optional[int] = None,
):
    """The native generation options, checked; each None is woolly-core's default (its
    ``GenerateParams`` and ``SamplingParams``), so that no default is spelled twice."""
    if isinstance(stop, str):
        stop = [stop]
    stops = [_text(s, "stop") for s in (stop or [])]
    return _woolly.GenerateOptions(
        constraint=_constraint(constraint, json_schema, grammar, regex, choices),
        logprobs=_maybe(_int, logprobs, "logprobs", 0, 1 << 16),
        max_tokens=_maybe(_int, max_tokens, "max_tokens", 0, 1 << 24),
        temperature=_maybe(_float, temperature, "temperature"),
        top_k=_maybe(_int, top_k, "top_k", 0, 1 << 31),
        top_p=_maybe(_float, top_p, "top_p"),
        min_p=_maybe(_float, min_p, "min_p"),
        repeat_penalty=_maybe(_float, repeat_penalty, "repeat_penalty"),
        frequency_penalty=_maybe(_float, frequency_penalty, "frequency_penalty"),
        presence_penalty=_maybe(_float, presence_penalty, "presence_penalty"),
        penalty_last_n=_maybe(_int, penalty_last_n, "penalty_last_n", 0, 1 << 24),
        seed=_maybe(_int, seed, "seed", 0, (1 << 64) - 1),
        stop=stops,
        ignore_eos=_maybe(bool, ignore_eos),
        parse_special_in_messages=_maybe(bool, parse_special_in_messages),
    )


# -- OpenAI-shaped requests -----------------------------------------------------------------


def _openai_body(key: str, value: Any, fields: Mapping[str, Any]) -> str:
    """The JSON body of a request: ``value`` under ``key`` (``messages`` or ``prompt``) and the
    keyword arguments, those given as None left out (woolly-core's defaults, OpenAI's)."""
    body = {k: v for k, v in fields.items() if v is not None}
    if not isinstance(value, (str, bytes, Mapping, list, tuple)) and isinstance(value, Iterable):
        value = list(value)  # messages from a generator, say
    body[key] = value
    try:
        return json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"the request is not JSON: {e}") from None


def _openai_stop(job) -> None:
    """Cancels a request and waits until it has let go of its session (or engine slot)."""
    job.cancel()
    try:
        while job.poll(_POLL_S)[0] < 3:
            pass
    except WoollyError:
        pass


def _openai_chunks(job, first: List[Dict[str, Any]], owner: Any) -> Iterator[Dict[str, Any]]:
    # `owner` (the Model or Engine) lives as long as the stream.
    try:
        yield from first
        while True:
            kind, value = job.poll(_POLL_S)
            if kind == 2:
                yield value
            elif kind >= 3:
                return
    except BaseException:
        # Ctrl-C, an abandoned iterator (GeneratorExit, a ``break``) or an error.
        _openai_stop(job)
        raise


def _openai_result(job, stream: bool, owner: Any) -> Any:
    """Waits (with the GIL released) until the request is planned, then returns the iterator of
    its chunks (``stream``), or waits for its end and returns the response object. A bad request
    raises here, before anything is generated."""
    try:
        while True:
            kind, value = job.poll(_POLL_S)
            if stream and kind != 0:
                # Planned, or (from an engine) its first chunk came first.
                return _openai_chunks(job, [value] if kind == 2 else [], owner)
            if kind == 3:
                return value
            if kind == 4:
                raise InternalError("the request ended without a response")
    except KeyboardInterrupt:
        _openai_stop(job)
        raise


async def _openai_achunks(job, first: List[Dict[str, Any]], owner: Any) -> AsyncIterator[Dict[str, Any]]:
    loop = asyncio.get_running_loop()
    try:
        for chunk in first:
            yield chunk
        while True:
            kind, value = await loop.run_in_executor(None, job.poll, 0.25)
            if kind == 2:
                yield value
            elif kind >= 3:
                return
    except BaseException:
        job.cancel()
        raise


async def _openai_aresult(job, stream: bool, owner: Any) -> Any:
    loop = asyncio.get_running_loop()
    try:
        while True:
            kind, value = await loop.run_in_executor(None, job.poll, 0.25)
            if stream and kind != 0:
                return _openai_achunks(job, [value] if kind == 2 else [], owner)
            if kind == 3:
                return value
            if kind == 4:
                raise InternalError("the request ended without a response")
    except BaseException:
        job.cancel()
        raise


class _Completions:
    """OpenAI's chat completions and completions, shaped as llama-cpp-python returns them
    (``Model`` runs them on its sessions, ``Engine`` batches them)."""

    _native: Any

    def _openai(self, chat: bool, key: str, value: Any, fields: Dict[str, Any]):
        return self._native.create_completion(chat, _openai_body(key, value, fields)), bool(fields.get("stream"))

    def create_chat_completion(self, messages: Iterable[Mapping[str, Any]], **fields: Any) -> Any:
        """A chat completion, as OpenAI's ``POST /v1/chat/completions`` answers it: a dict with
        ``id``, ``object`` (``"chat.completion"``), ``created``, ``model``, ``choices`` (one, with
        ``message`` (``role``, ``content``, ``tool_calls``), ``logprobs`` and
        ``finish_reason``: ``"stop"``, ``"length"`` or ``"tool_calls"``) and ``usage``.

        ``messages`` are OpenAI's (roles ``system``, ``user``, ``assistant`` with
        ``tool_calls``, ``tool`` with ``tool_call_id``; content a str or text parts). The keyword
        arguments are the body's other fields, as OpenAI spells them: ``tools``,
        ``tool_choice`` (``"none"``, ``"auto"``, ``"required"`` or a named function; the
        arguments are constrained by the tool's schema), ``response_format``
        (``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {"schema":
        ...}}``), ``logprobs`` and ``top_logprobs``, ``stop``, ``seed``, ``max_tokens`` (or
        ``max_completion_tokens``; default: what the context leaves), ``temperature``,
        ``top_p``, ``frequency_penalty``, ``presence_penalty``, ``stream`` and
        ``stream_options`` (``{"include_usage": True}``), and Woolly's ``top_k``, ``min_p``,
        ``repeat_penalty``, ``grammar`` (GBNF), ``regex``, ``choices``, ``priority``,
        ``deadline_ms`` and ``latency_sensitive``. A field given as None is left out; fields
        Woolly does not know are ignored, as by ``woolly serve``.

        With ``stream=True`` it returns an iterator of ``"chat.completion.chunk"`` dicts
        (leaving it early, or dropping it, stops the generation). A bad request raises
        :class:`InvalidArgumentError` (or :class:`ContextOverflowError`, ...) here, before
        anything is generated. The template, tokenizing and generation run off this thread with
        the GIL released.
        """
        job, stream = self._openai(True, "messages", messages, fields)
        return _openai_result(job, stream, self)

    def create_completion(self, prompt: Union[str, Sequence[str]], **fields: Any) -> Any:
        """A completion of ``prompt`` (no chat template), as OpenAI's ``POST /v1/completions``
        answers it: ``object`` ``"text_completion"``, ``choices`` (one, with ``text``,
        ``logprobs`` and ``finish_reason``) and ``usage``. Fields as for
        :meth:`create_chat_completion`, with ``logprobs`` the number of alternatives per token
        (0 to 20) and ``echo``; ``stream=True`` returns an iterator of chunks."""
        job, stream = self._openai(False, "prompt", prompt, fields)
        return _openai_result(job, stream, self)

    async def acreate_chat_completion(self, messages: Iterable[Mapping[str, Any]], **fields: Any) -> Any:
        """:meth:`create_chat_completion` for asyncio: ``await`` it for the response; with
        ``stream=True`` it gives an async iterator of chunks (``async for chunk in await
        model.acreate_chat_completion(..., stream=True)``). The event loop keeps running;
        cancelling the task, or leaving the loop, cancels the generation."""
        job, stream = self._openai(True, "messages", messages, fields)
        return await _openai_aresult(job, stream, self)

    async def acreate_completion(self, prompt: Union[str, Sequence[str]], **fields: Any) -> Any:
        """:meth:`create_completion` for asyncio (as :meth:`acreate_chat_completion`)."""
        job, stream = self._openai(False, "prompt", prompt, fields)
        return await _openai_aresult(job, stream, self)


class Model(_Completions):
    """A GGUF model loaded into memory (mapped, weights kept quantized).

    ``path`` None uses ``$WOOLLY_MODEL``, then the default model that ``make model`` installs.

    Options:
        preload: when the file is read: ``"lazy"`` (default; ``"none"`` too: pages are read on
            first use), ``"sequential"`` (the kernel reads ahead in the background),
            ``"critical"`` (the first layers during the load, the rest on use), ``"full"``
            (every page, by a background thread after the load returns; see
            :attr:`preload_progress`) or ``"full_blocking"`` (every page, during the load).
        mlock: lock the model in memory; when the system refuses, a warning is logged and
            :attr:`is_locked` is False (no error).
        repack: copy weights into faster layouts for this CPU (default True).
        threads: threads per generation (0: Woolly's policy for this machine; more than the
            CPUs this process may use are capped there, with a warning to the log).
        thread_policy: ``"auto"``, ``"interactive"`` (leave a core to the UI) or
            ``"background"`` (lower priority).
        context_size: tokens of context per generation (0: the smaller of 4096 and the model's,
            less when the memory budget has no room for it). The load checks that the model and
            one session of this context fit.
        kv_precision: ``"f16"`` (default, as llama.cpp) or ``"f32"`` (twice the KV memory).
        memory_budget: the most memory this model and its sessions may take: bytes, or a size
            such as ``"512MB"`` or ``"2GiB"`` (None or 0: no budget, what the system has beyond
            the reserve, as in the C API).
            A load or session that would not fit raises :class:`InsufficientMemoryError`.
        memory_reserve: memory left to the system and other programs (bytes or a size; None:
            25% of RAM up to 8 GiB, less on larger machines).
        pressure_threshold: used fraction of RAM, in (0, 1], from which the machine counts as
            under memory pressure (None: 0.85).
        gpu_layers: layers to run on CUDA GPUs, counted from the last, with the output
            projection: ``"auto"`` (default: as many as fit in free device memory after the
            margin), ``0`` (CPU only) or a count (fewer when they do not fit; the load never
            fails for lack of device memory). Without a CUDA device everything runs on the CPU.
        main_gpu: the device holding the output and the last layers (None: the one with the
            most free memory).
        split_mode: ``"layer"`` (default: the offloaded layers split across every GPU in
            proportion to its free memory) or ``"none"`` (one GPU).
        gpu_margin_bytes: device memory left free on each GPU, bytes or a size such as
            ``"2GiB"`` (None or 0: the larger of 1 GiB and 10% of the device).
        on_device_oom: when a sequence's KV cache does not fit in GPU memory during generation:
            ``"cpu"`` (default: it runs all its layers on the CPU, with a warning in the log, and
            gives the CPU's tokens) or ``"error"`` (that generation raises
            :class:`OutOfDeviceMemoryError`). The choice is echoed in
            ``info["placement"]["on_device_oom"]``.
        progress: ``progress(fraction) -> bool`` during the load; returning False cancels it
            (:class:`CancelledError`).
    """

    def __init__(
        self,
        path: Union[None, str, "os.PathLike[str]"] = None,
        *,
        preload: Optional[str] = None,
        mlock: bool = False,
        repack: bool = True,
        threads: Optional[int] = None,
        thread_policy: str = "auto",
        context_size: int = 0,
        kv_precision: Optional[str] = None,
        memory_budget: Optional[Size] = None,
        memory_reserve: Optional[Size] = None,
        pressure_threshold: Optional[float] = None,
        gpu_layers: Union[str, int] = "auto",
        main_gpu: Optional[int] = None,
        split_mode: Optional[str] = None,
        gpu_margin_bytes: Optional[Size] = None,
        on_device_oom: Optional[str] = None,
        progress: Optional[Callable[[float], bool]] = None,
    ):
        path = _path(path)
        progress = _progress(progress)
        options = _load_options(
            preload=preload,
            mlock=mlock,
            repack=repack,
            threads=threads,
            thread_policy=thread_policy,
            context_size=context_size,
            kv_precision=kv_precision,
            memory_budget=memory_budget,
            memory_reserve=memory_reserve,
            pressure_threshold=pressure_threshold,
            gpu_layers=gpu_layers,
            main_gpu=main_gpu,
            split_mode=split_mode,
            gpu_margin_bytes=gpu_margin_bytes,
            on_device_oom=on_device_oom,
        )
        self._native = _woolly.NativeModel(path, options, progress)
        self._info: Optional[Dict[str, Any]] = None

    @classmethod
    def load(cls, path: Union[None, str, "os.PathLike[str]"] = None, **options: Any) -> "Model":
        """``Model(path, **options)``."""
        return cls(path, **options)

    @classmethod
    def _wrap(cls, native) -> "Model":
        m = cls.__new__(cls)
        m._native = native
        m._info = None
        return m

    def __repr__(self) -> str:
        i = self.info
        return f"<woolly.Model {i.get('architecture')} {os.path.basename(i.get('path', ''))}>"

    # -- text <-> tokens -------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> List[int]:
        """Token ids of ``text`` (BOS as the model asks; special-token text such as
        ``<start_of_turn>`` parsed into single tokens)."""
        return self._native.tokenize(_text(text, "text"), bool(add_special), bool(parse_special))

    def detokenize(self, ids: Iterable[int]) -> str:
        """The text of token ``ids`` (control tokens such as BOS render as nothing)."""
        ids = list(ids)
        for i, t in enumerate(ids):
            if isinstance(t, bool) or not isinstance(t, int):
                raise InvalidArgumentError(f"ids[{i}] must be an int, not {type(t).__name__}")
        return self._native.detokenize(ids)

    def apply_chat_template(self, messages: Iterable[Message]) -> str:
        """The prompt that ``messages`` become under the model's chat template."""
        return self._native.apply_chat_template(_messages(messages))

    # -- generation ------------------------------------------------------------------------

    def _start(self, prompt: Optional[str], messages: Optional[list], options: Dict[str, Any]):
        return self._native.start(prompt, messages, _options(**options))

    def _iterate(self, job, result: Optional[Dict[str, Any]] = None) -> Iterator[str]:
        try:
            while True:
                kind, value = job.poll(_POLL_S)
                if kind == 1:
                    yield value
                elif kind >= 2:
                    if result is not None and value:
                        result.update(json.loads(value))
                    return
        except BaseException:
            # Ctrl-C, an abandoned iterator (GeneratorExit) or an error: stop the generation
            # and wait until its thread has let go of its session.
            job.cancel()
            try:
                while job.poll(_POLL_S)[0] < 2:
                    pass
            except WoollyError:
                pass
            raise

    def stream(self, prompt: str, **options: Any) -> Iterator[str]:
        """Generates a continuation of ``prompt`` and yields its text as it is produced.

        Options (all keyword): ``max_tokens`` (256), ``temperature`` (0.8; 0 is greedy),
        ``top_k`` (40), ``top_p`` (0.95), ``min_p`` (0.05), ``repeat_penalty`` (1.0),
        ``frequency_penalty`` (0), ``presence_penalty`` (0), ``penalty_last_n`` (64), ``seed``
        (None: random), ``stop`` (a string or list of strings; generation ends before it),
        ``ignore_eos`` (False), ``parse_special_in_messages`` (False; in a chat, text inside the
        messages that spells special tokens such as ``<end_of_turn>`` is tokenized as text, so
        untrusted content cannot forge a turn; True turns it into control tokens, as the
        template's own markup always is).

        What the output must match (at most one; generation ends when the output is complete):
        ``constraint`` (the form every front end spells: ``{"json_schema": {...}}``,
        ``"json_object"``, ``{"gbnf": "..."}``, ``{"lark": "..."}``, ``{"regex": "..."}`` or
        ``{"choice": [...]}``), or one of its shorthands ``json_schema`` (a JSON Schema dict, or
        its JSON text), ``grammar`` (llama.cpp's GBNF, from ``root``), ``regex`` (the whole
        output matches it), ``choices`` (exactly one of these strings). An unsupported schema
        keyword or a malformed grammar raises :class:`InvalidArgumentError` before generating.

        ``logprobs`` (None: off; 0 to 20): :meth:`generate_details` and :meth:`Request.result`
        then carry ``logprobs``, one dict per generated token: ``id``, ``token``, ``bytes`` (a
        list of ints: a token's bytes need not be UTF-8 alone), ``logprob`` (the natural log of
        its probability in the model's distribution, before sampling filters and the
        constraint) and ``top_logprobs`` (that many alternatives, best first, with the same
        keys).
        """
        return self._iterate(self._start(_text(prompt, "prompt"), None, options))

    def generate(self, prompt: str, **options: Any) -> str:
        """Generates a continuation of ``prompt`` and returns it (options as for :meth:`stream`)."""
        return "".join(self.stream(prompt, **options))

    def chat(self, messages: Iterable[Message], *, stream: bool = False, **options: Any) -> Any:
        """The assistant's reply to ``messages`` (``[{"role": "user", "content": "..."}]``),
        rendered with the model's chat template; an iterator of pieces with ``stream=True``."""
        it = self._iterate(self._start(None, _messages(messages), options))
        return it if stream else "".join(it)

    def generate_details(self, prompt: str, **options: Any) -> Dict[str, Any]:
        """Like :meth:`generate`, returning a dict with ``text``, ``prompt_ids``,
        ``generated_ids``, ``stop_reason`` (``"max_tokens"``, ``"end_of_generation"``,
        ``"stop_string"`` or ``"callback"``, as woolly-core and the other front ends spell it)
        and ``timings``; ``logprobs`` when the options ask for them (see :meth:`stream`)."""
        result: Dict[str, Any] = {}
        for _ in self._iterate(self._start(_text(prompt, "prompt"), None, options), result):
            pass
        return result

    # -- asyncio ---------------------------------------------------------------------------

    async def _aiterate(self, job) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        try:
            while True:
                kind, value = await loop.run_in_executor(None, job.poll, 0.25)
                if kind == 1:
                    yield value
                elif kind >= 2:
                    return
        except BaseException:
            job.cancel()
            raise

    def astream(self, prompt: str, **options: Any) -> AsyncIterator[str]:
        """:meth:`stream` for asyncio: ``async for piece in model.astream(...)``. The event loop
        keeps running; cancelling the task cancels the generation."""
        return self._aiterate(self._start(_text(prompt, "prompt"), None, options))

    async def agenerate(self, prompt: str, **options: Any) -> str:
        """:meth:`generate` for asyncio: ``await model.agenerate(...)``."""
        return "".join([p async for p in self.astream(prompt, **options)])

    async def achat(self, messages: Iterable[Message], **options: Any) -> str:
        """:meth:`chat` for asyncio."""
        job = self._start(None, _messages(messages), options)
        return "".join([p async for p in self._aiterate(job)])

    # -- facts -----------------------------------------------------------------------------

    @property
    def info(self) -> Dict[str, Any]:
        """Architecture, hyperparameters, tensor types, sizes and vocabulary of the model."""
        if self._info is None:
            self._info = json.loads(self._native.info_json())
        return dict(self._info)

    def metrics(self) -> Dict[str, Any]:
        """Counters of this model's generations: counts, tokens, times, rates."""
        return json.loads(self._native.metrics_json())

    def diagnostics(self) -> Dict[str, Any]:
        """:func:`diagnostics` with this model's facts and counters."""
        return json.loads(self._native.diagnostics_json())

    # -- memory ----------------------------------------------------------------------------

    def memory_report(self) -> Dict[str, Any]:
        """This model's memory: ``estimate`` (as :func:`estimate`), ``charged_bytes``,
        ``account_held_bytes`` (with its sessions), ``headroom_bytes``, ``budget_bytes``,
        ``reserve_bytes``, ``available_bytes``, ``under_pressure``, ``file_bytes``,
        ``file_resident_bytes``, ``repacked_bytes``, ``locked``, ``preload`` and
        ``process_rss_bytes``."""
        return json.loads(self._native.memory_report_json())

    @property
    def preload_progress(self) -> Dict[str, Any]:
        """How far a background preload (``"full"``, ``"sequential"``) got: ``done_bytes``,
        ``total_bytes``, ``finished``."""
        return json.loads(self._native.preload_progress_json())

    def wait_preloaded(self) -> None:
        """Waits until a background preload has read the whole file (at once without one)."""
        self._native.wait_preloaded()

    @property
    def is_locked(self) -> bool:
        """Whether the model's memory is locked (``mlock=True`` and the system allowed it)."""
        return self._native.is_locked()


def load(path: Union[None, str, "os.PathLike[str]"] = None, **options: Any) -> Model:
    """Loads a model: ``Model(path, **options)``."""
    return Model(path, **options)


class ModelCache:
    """Models by id, loaded on demand, within one memory budget for all of them.

    When a load does not fit, the least recently used model that is idle (no :class:`Model`
    object from this cache alive, no generation running, not pinned) is evicted, then the next,
    until it does; a model in use is never evicted, and a load that cannot fit even then raises
    :class:`InsufficientMemoryError`. Each live :class:`Model` keeps an idle session (its KV
    cache), which counts against the budget too.

    ``memory_budget`` and ``memory_reserve`` are bytes or sizes such as ``"4GB"``;
    ``pressure_threshold`` is as for :class:`Model`. Thread-safe.
    """

    def __init__(
        self,
        memory_budget: Optional[Size] = None,
        memory_reserve: Optional[Size] = None,
        pressure_threshold: Optional[float] = None,
    ):
        self._native = _woolly.NativeModelCache(
            _size(memory_budget, "memory_budget"),
            _size(memory_reserve, "memory_reserve"),
            _threshold(pressure_threshold),
        )

    def __repr__(self) -> str:
        return f"<woolly.ModelCache {self.ids()}>"

    def load(
        self,
        id: str,
        path: Union[None, str, "os.PathLike[str]"] = None,
        *,
        preload: Optional[str] = None,
        mlock: bool = False,
        repack: bool = True,
        threads: Optional[int] = None,
        thread_policy: str = "auto",
        context_size: int = 0,
        kv_precision: Optional[str] = None,
        gpu_layers: Union[str, int] = "auto",
        main_gpu: Optional[int] = None,
        split_mode: Optional[str] = None,
        gpu_margin_bytes: Optional[Size] = None,
        on_device_oom: Optional[str] = None,
        progress: Optional[Callable[[float], bool]] = None,
    ) -> Model:
        """The model ``id``, loaded from ``path`` (None: the default model) unless it already
        is; the same id from another path swaps the model. Options as for :class:`Model`,
        except the memory ones, which are the cache's."""
        id = _text(id, "id")
        path = _path(path)
        progress = _progress(progress)
        options = _load_options(
            preload=preload,
            mlock=mlock,
            repack=repack,
            threads=threads,
            thread_policy=thread_policy,
            context_size=context_size,
            kv_precision=kv_precision,
            gpu_layers=gpu_layers,
            main_gpu=main_gpu,
            split_mode=split_mode,
            gpu_margin_bytes=gpu_margin_bytes,
            on_device_oom=on_device_oom,
        )
        return Model._wrap(self._native.load(id, path, options, progress))

    def get(self, id: str) -> Optional[Model]:
        """The model ``id`` when it is loaded (marking it as used), else None."""
        native = self._native.get(_text(id, "id"))
        return None if native is None else Model._wrap(native)

    def unload(self, id: str) -> bool:
        """Removes ``id`` from the cache (its memory returns once no Model object holds it);
        whether it was loaded."""
        return self._native.unload(_text(id, "id"))

    def pin(self, id: str, pinned: bool = True) -> None:
        """Keeps ``id`` from being evicted (or, with ``pinned=False``, lets it be again)."""
        self._native.pin(_text(id, "id"), bool(pinned))

    def ids(self) -> List[str]:
        """The loaded models' ids, most recently used first."""
        return self._native.ids()

    def __contains__(self, id: object) -> bool:
        return id in self.ids()

    def __len__(self) -> int:
        return len(self.ids())

    def report(self) -> Dict[str, Any]:
        """The cache's memory (``held_bytes``, ``headroom_bytes``, ``budget_bytes``,
        ``reserve_bytes``, ``available_bytes``, ``total_bytes``, ``under_pressure``,
        ``evictions``) and ``models`` (``id``, ``path``, ``model_bytes``, ``in_use``,
        ``pinned``, ``last_used``), most recently used first."""
        return json.loads(self._native.report_json())

    def relieve_pressure(self) -> List[str]:
        """Evicts idle, unpinned models while the machine is under memory pressure; the ids
        evicted."""
        return self._native.relieve_pressure()


PRIORITIES = ("low", "normal", "high", "critical")


def _priority(value: Any) -> str:
    if value not in PRIORITIES:
        raise InvalidArgumentError(f"priority must be one of {', '.join(PRIORITIES)}, not {value!r}")
    return value


class Engine(_Completions):
    """One model serving many requests at once (continuous batching).

    A worker thread runs decode steps, each one forward pass over every running request; new
    requests join between steps and finished ones leave at once. Waiting requests start by
    ``priority`` (``"low"``, ``"normal"``, ``"high"``, ``"critical"``), then
    ``latency_sensitive``, then size, then arrival; an urgent one (high, critical or
    latency-sensitive) gets its first token about as fast as on an idle engine. Thread-safe:
    submit from any thread or asyncio task.

    Options:
        max_batch_size: most requests in one step (16).
        max_concurrent: most requests running at once, each with a KV cache of
            ``context_size`` (16).
        queue_capacity: most requests waiting to start; beyond it :meth:`submit` raises
            :class:`BusyError` (256).
        prefill_chunk: prompt tokens read per step, so that a long prompt does not stall the
            others (256).
        max_latency_ms: when idle, how long a new request may wait for others to share its
            first step (0: start at once).
        context_size: tokens of context per request (0: the model's default).
        kv_precision: ``"f16"`` or ``"f32"``.
        threads: threads of the engine (0: Woolly's policy for batched work).

    :meth:`close` (or leaving a ``with`` block) ends every request still waiting or running
    with :class:`CancelledError`.

    :meth:`create_chat_completion` and :meth:`create_completion` (and their ``a`` forms) take
    OpenAI's request fields as :class:`Model`'s do and run as the engine's requests, batched
    with the others (``priority``, ``deadline_ms`` and ``latency_sensitive`` are body fields).
    """

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
        kv_precision: Optional[str] = None,
        threads: Optional[int] = None,
    ):
        if not isinstance(model, Model):
            raise InvalidArgumentError(f"model must be a woolly.Model, not {type(model).__name__}")
        self._native = _woolly.NativeEngine(
            model._native,
            _maybe(_int, max_batch_size, "max_batch_size", 1, 1024),
            _maybe(_int, max_concurrent, "max_concurrent", 1, 4096),
            _maybe(_int, queue_capacity, "queue_capacity", 1, 1 << 20),
            _maybe(_int, prefill_chunk, "prefill_chunk", 1, 1 << 16),
            _maybe(_float, max_latency_ms, "max_latency_ms"),
            _maybe(_int, context_size, "context_size", 0, 1 << 22),
            _maybe(_text, kv_precision, "kv_precision"),
            _maybe(_int, threads, "threads", 0, 1024),
        )
        self.model = model

    def __repr__(self) -> str:
        if self.closed:
            return "<woolly.Engine closed>"
        s = self.stats()
        return f"<woolly.Engine active={s['active']} queued={s['queued']}>"

    def submit(
        self,
        prompt_or_messages: Union[str, Iterable[Message]],
        *,
        priority: str = "normal",
        latency_sensitive: bool = False,
        deadline_s: Optional[float] = None,
        **options: Any,
    ) -> "Request":
        """Queues a request for a prompt (a str) or a conversation (``[{"role": ...,
        "content": ...}]``, rendered with the model's chat template) and returns its
        :class:`Request` at once.

        ``deadline_s``: seconds from now by which the request must have finished, else it
        ends with :class:`DeadlineExceededError`. The generation options are those of
        :meth:`Model.stream`.

        Raises at once, queueing nothing: :class:`BusyError` when the queue is full,
        :class:`DeadlineExceededError` when the deadline is already past (0),
        :class:`ContextOverflowError`, :class:`InvalidArgumentError`, tokenizer errors.
        """
        if isinstance(prompt_or_messages, str):
            prompt, messages = _text(prompt_or_messages, "prompt"), None
        else:
            prompt, messages = None, _messages(prompt_or_messages)
        deadline = None if deadline_s is None else _float(deadline_s, "deadline_s")
        id, job = self._native.submit(
            prompt,
            messages,
            _priority(priority),
            bool(latency_sensitive),
            deadline,
            _options(**options),
        )
        return Request(self, job, id)

    def generate(self, prompt_or_messages: Union[str, Iterable[Message]], **kwargs: Any) -> str:
        """Submits a request and returns its text (arguments as for :meth:`submit`)."""
        return self.submit(prompt_or_messages, **kwargs).result()["text"]

    def generate_details(self, prompt_or_messages: Union[str, Iterable[Message]], **kwargs: Any) -> Dict[str, Any]:
        """Submits a request and returns its result (see :meth:`Request.result`)."""
        return self.submit(prompt_or_messages, **kwargs).result()

    async def agenerate(self, prompt_or_messages: Union[str, Iterable[Message]], **kwargs: Any) -> str:
        """:meth:`generate` for asyncio."""
        return (await self.submit(prompt_or_messages, **kwargs))["text"]

    def stats(self) -> Dict[str, Any]:
        """Counters (``submitted``, ``completed``, ``failed``, ``cancelled``,
        ``deadline_exceeded``, ``rejected_busy``, ``steps``, ``preempted_steps``,
        ``mean_batch_size``), the state now (``queued``, ``active``) and smoothed figures
        (``decode_step_ms``, ``prefill_token_ms``, ``mean_queue_ms``, ``mean_ttft_ms``)."""
        return json.loads(self._native.stats_json())

    def estimated_wait(self, priority: str = "normal") -> float:
        """Seconds a request of ``priority`` submitted now would wait to start (an estimate
        from the measured step times and the work ahead of it)."""
        return self._native.estimated_wait(_priority(priority))

    @property
    def context_size(self) -> int:
        """Tokens of context of each request."""
        return self._native.context_size()

    def close(self) -> None:
        """Stops the engine: every request still waiting or running ends with
        :class:`CancelledError`. Later calls do nothing; other methods raise
        :class:`InvalidArgumentError`."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.is_closed()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Request:
    """A request submitted to an :class:`Engine` (made by :meth:`Engine.submit`).

    Its text comes as it is generated: iterate it (``for piece in req``, or ``async for`` in
    asyncio); :meth:`result` (or ``await req``) waits for the end and returns the generation.
    Each piece goes to one reader: what one loop took, another does not see; the result is
    there for every caller. Leaving a loop over it early, Ctrl-C in a wait, cancelling the
    asyncio task that awaits it, or dropping the object cancels the request.
    """

    def __init__(self, engine: Engine, job: Any, id: int):
        self._engine = engine  # the engine lives as long as its requests
        self._job = job
        self._lock = threading.Lock()
        self._result: Optional[Dict[str, Any]] = None
        self._error: Optional[BaseException] = None
        self._done = False
        self.id: int = id
        """The request's id (unique within its engine)."""

    def __repr__(self) -> str:
        state = "done" if self._done else "pending"
        return f"<woolly.Request {self.id} {state}>"

    def _next(self, timeout: float):
        """The next event: ``(0, None)`` nothing within ``timeout``, ``(1, piece)``, or
        ``(2, None)`` at the end (the outcome is then in ``_result`` or ``_error``)."""
        with self._lock:
            if not self._done:
                try:
                    kind, value = self._job.poll(timeout)
                except WoollyError as e:
                    self._error, self._done = e, True
                else:
                    if kind == 1:
                        return 1, value
                    if kind == 0:
                        return 0, None
                    if kind == 2:
                        self._result = json.loads(value)
                    self._done = True
            return 2, None

    def _outcome(self) -> Dict[str, Any]:
        if self._error is not None:
            raise self._error
        if self._result is None:
            # Its end was read by a wait that Ctrl-C interrupted at that very moment.
            self._error = CancelledError("cancelled: the request was interrupted", "WOOLLY_ERR_CANCELLED", 9)
            raise self._error
        return dict(self._result)

    def _stop(self) -> None:
        """Cancels the request and waits (briefly: within a step) for its end."""
        self._job.cancel()
        while self._next(_POLL_S)[0] != 2:
            pass

    def cancel(self) -> None:
        """Cancels the request (from any thread): it ends with :class:`CancelledError` within a
        step, and its slot goes to the next request. Harmless once it has finished."""
        self._job.cancel()

    def done(self) -> bool:
        """Whether the request's end has been read (by :meth:`result`, a loop, or an await)."""
        return self._done

    def result(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits for the end (with the GIL released) and returns the generation: ``text``,
        ``prompt_ids``, ``generated_ids``, ``stop_reason`` and ``timings`` (with ``queue_ms``,
        the wait before it started, and ``ttft_ms``, from submission to the first token);
        ``logprobs`` when the request asked for them (see :meth:`Model.stream`).
        Raises the request's error (:class:`CancelledError`, :class:`DeadlineExceededError`,
        ...); :class:`TimeoutError` when ``timeout`` seconds pass first (the request goes on).
        Ctrl-C cancels the request."""
        until = None if timeout is None else time.monotonic() + _float(timeout, "timeout")
        try:
            while True:
                wait = _POLL_S if until is None else min(_POLL_S, max(0.0, until - time.monotonic()))
                if self._next(wait)[0] == 2:
                    return self._outcome()
                if until is not None and time.monotonic() >= until:
                    raise TimeoutError(f"request {self.id} did not finish within {timeout} s")
        except KeyboardInterrupt:
            self._stop()
            raise

    def __iter__(self) -> Iterator[str]:
        try:
            while True:
                kind, value = self._next(_POLL_S)
                if kind == 1:
                    yield value
                elif kind == 2:
                    self._outcome()  # raises the request's error
                    return
        except (KeyboardInterrupt, GeneratorExit):
            self._stop()
            raise

    # -- asyncio ---------------------------------------------------------------------------

    async def _aresult(self) -> Dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            while (await loop.run_in_executor(None, self._next, 0.25))[0] != 2:
                pass
        except BaseException:
            self._job.cancel()
            raise
        return self._outcome()

    def __await__(self):
        """``await req``: :meth:`result` for asyncio; cancelling the task cancels the request."""
        return self._aresult().__await__()

    async def __aiter__(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        try:
            while True:
                kind, value = await loop.run_in_executor(None, self._next, 0.25)
                if kind == 1:
                    yield value
                elif kind == 2:
                    self._outcome()
                    return
        except BaseException:
            self._job.cancel()
            raise


def estimate(path: Union[None, str, "os.PathLike[str]"] = None, **options: Any) -> Dict[str, Any]:
    """What loading the model at ``path`` (None: the default model) with these load options
    would take, from the file's header alone: ``weights_bytes``, ``overhead_bytes`` (the model
    part), ``kv_cache_bytes``, ``scratch_bytes`` (one session at ``context_size``),
    ``context_size``, ``batch_size`` and ``total_bytes``."""
    return json.loads(_woolly.estimate_json(_path(path), _load_options(**options)))


def memory_report(
    memory_budget: Optional[Size] = None,
    memory_reserve: Optional[Size] = None,
    pressure_threshold: Optional[float] = None,
) -> Dict[str, Any]:
    """The machine's memory as Woolly sees it under this policy: ``total_bytes``,
    ``available_bytes``, ``reserve_bytes``, ``pressure_threshold``, ``under_pressure``,
    ``budget_bytes``, ``headroom_bytes``, ``page_size``, ``huge_page_size``,
    ``process_rss_bytes`` and ``process_peak_rss_bytes``."""
    return json.loads(
        _woolly.memory_report_json(
            _size(memory_budget, "memory_budget"),
            _size(memory_reserve, "memory_reserve"),
            _threshold(pressure_threshold),
        )
    )


def hardware() -> Dict[str, Any]:
    """This machine as Woolly sees it: cores, caches, SIMD features, memory."""
    return json.loads(_woolly.hardware_json())


def cuda_devices() -> Dict[str, Any]:
    """The CUDA devices as the driver reports them now: ``available``, ``reason`` (why there is
    none: a build without CUDA, no driver, no device, a driver error), ``driver_version`` and
    ``devices``, each with ``index``, ``name``, ``total_bytes``, ``free_bytes``,
    ``compute_capability`` (such as ``"9.0"``), ``sm_count``, ``max_threads_per_block`` and
    ``warp_size``."""
    return json.loads(_woolly.cuda_devices_json())


def diagnostics() -> Dict[str, Any]:
    """A diagnostics report: version, build, hardware, the kernels and threads Woolly chose,
    this process's memory, the default model's location."""
    return json.loads(_woolly.diagnostics_json())


# -- power and heat ------------------------------------------------------------------------

POWER_PROFILES = ("balanced", "high_performance", "power_saver", "adaptive")


def _root(value: Any, name: str) -> Optional[str]:
    return None if value is None else _text(os.fspath(value), name)


def set_power_profile(name: str) -> None:
    """Sets the process-wide power profile, which every model, session and engine follows from
    their next forward pass:

    - ``"balanced"`` (the default): Woolly's thread policy per phase.
    - ``"high_performance"``: every physical core, the largest batches, no pauses.
    - ``"power_saver"``: half the cores, small batches gathered a little longer, a pause
      between decode steps (less heat and power, slower generation).
    - ``"adaptive"``: balanced on mains power, power_saver on battery (Linux
      ``/sys/class/power_supply``; elsewhere the source is unknown and it acts as balanced).

    This changes only Woolly's own behaviour, never the system's. Raises
    :class:`InvalidArgumentError` for another name.
    """
    _woolly.set_power_profile(_text(name, "name"))


def power_state() -> Dict[str, Any]:
    """The power state now: ``profile`` (the one set), ``source`` (``{"kind": "ac"}``,
    ``{"kind": "battery", "percent": ...}`` or ``{"kind": "unknown"}``), ``knobs`` (what is in
    effect: ``profile`` with adaptive resolved, ``max_threads`` (0: no limit beyond the thread
    policy), ``max_batch_size``, ``batch_latency_ms`` and ``decode_pause_ms`` (milliseconds),
    ``kv_precision``), ``throttled``, ``temperature_c`` (the last reading of the thermal
    monitor, or None), ``throttle_events`` and ``thermal_monitor`` (whether it runs)."""
    return json.loads(_woolly.power_state_json())


def start_thermal_monitor(
    threshold_c: Optional[float] = None,
    interval_s: Optional[float] = None,
    sysfs_root: Union[None, str, "os.PathLike[str]"] = None,
) -> None:
    """Starts watching the CPU temperature on a background thread (replacing a monitor already
    running): every ``interval_s`` seconds (None: 2) it reads the hottest of
    ``/sys/class/thermal/thermal_zone*/temp`` and ``/sys/class/hwmon/hwmon*/temp*_input``;
    above ``threshold_c`` (None: 80 °C) Woolly halves its worker threads, and restores them once the
    temperature is 5 °C below the threshold. ``sysfs_root`` reads those files under another
    root (a fake tree, for tests). Without sensors it runs and never throttles. Raises
    :class:`InvalidArgumentError` for a threshold outside (0, 150] or an interval that is not
    positive."""
    _woolly.start_thermal_monitor(
        _maybe(_float, threshold_c, "threshold_c"),
        _maybe(_float, interval_s, "interval_s"),
        _root(sysfs_root, "sysfs_root"),
    )


def stop_thermal_monitor() -> None:
    """Stops the thermal monitor (nothing when none runs); the thread cap it set is lifted."""
    _woolly.stop_thermal_monitor()


def set_cpu_governor(governor: str, sysfs_root: Union[None, str, "os.PathLike[str]"] = None) -> int:
    """**Changes the system for every program**: sets the CPU frequency governor (such as
    ``"powersave"`` or ``"performance"``) of every CPU, through
    ``/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor``. Woolly never calls this by
    itself; it is an explicit opt-in for host applications that want it. Returns the number of
    CPUs set. ``sysfs_root`` writes under another root (a fake tree, for tests).

    Raises :class:`PermissionDeniedError` when the system refuses (it needs root, or sysfs is
    read-only), :class:`UnsupportedError` when there is no cpufreq (virtual machines, other
    platforms), :class:`InvalidArgumentError` for a governor name other than lowercase
    letters and ``_``."""
    return _woolly.set_cpu_governor(_text(governor, "governor"), _root(sysfs_root, "sysfs_root"))


def _set_power_root(root: Union[None, str, "os.PathLike[str]"] = None) -> None:
    """Test hook: reads the power source from ``root/sys/class/power_supply`` (None: the real
    one)."""
    _woolly.set_power_root(_root(root, "root"))


# -- metrics and the doctor ----------------------------------------------------------------

PROMETHEUS_CONTENT_TYPE: str = _woolly.PROMETHEUS_CONTENT_TYPE
"""The ``Content-Type`` to serve :func:`metrics_prometheus` with."""


def metrics_prometheus() -> str:
    """Every metric Woolly keeps, in the Prometheus text exposition format 0.0.4 (serve it with
    :data:`PROMETHEUS_CONTENT_TYPE`; Woolly opens no port): per live model (label ``model``)
    requests by outcome, prompt, cached and generated tokens, rates, and histograms of the
    time to first token, prompt and generation durations, queue waits and tokens per second;
    engine queue depth, requests and batch sizes (for engines reported to the registry);
    process memory; thermal throttling and worker threads; the GPU when an NVIDIA driver is
    present."""
    return _woolly.metrics_prometheus()


def metrics() -> Dict[str, Any]:
    """The same figures as :func:`metrics_prometheus`, as a dict: ``time_unix_ms``,
    ``metrics`` (each family by name: ``type``, ``help``, ``series`` with ``labels`` and
    ``value``, or ``count``, ``sum`` and ``buckets`` for histograms), ``models`` (each live
    model's counters with its ``model`` label) and ``gpu`` (the GPU report, or None)."""
    return json.loads(_woolly.metrics_json())


def doctor(
    model: Union[None, str, "os.PathLike[str]"] = None,
    measure: bool = True,
    progress: Optional[Callable[[float, str], Any]] = None,
) -> Dict[str, Any]:
    """Examines this machine and recommends settings: a dict with exactly the keys ``cpu``
    (model, cores, frequency, caches, SIMD, thread policy), ``memory`` (total, available,
    reserve, huge pages, swap), ``gpu`` (``available``, ``devices``, or the reason none is
    seen), ``inference`` and ``recommendations`` (``threads``, ``batch_size``, ``preload``,
    ``profile``, each a ``value`` with its ``reason``, and ``notes``).

    With ``measure`` (the default) it loads ``model`` (None: ``$WOOLLY_MODEL``, then the
    default model) and measures generation: one request at several thread counts
    (``inference["threads"]``), then engines at batch sizes 1 to 16
    (``inference["batches"]``, each with its aggregate ``tok_s``); about 10 s on two cores. A
    model that cannot be loaded leaves ``inference["error"]``. ``measure=False`` reads the
    machine only (milliseconds).

    It runs on a thread of its own with the GIL released; ``progress(fraction, message)`` is
    called on the caller's thread as it goes. ``Ctrl-C`` (or an exception from ``progress``)
    returns control at once; the measurement already under way then finishes in the
    background, as it cannot be stopped early.
    """
    path = _path(model)
    if progress is not None and not callable(progress):
        raise InvalidArgumentError("progress must be callable")
    job = _woolly.doctor_start(path, bool(measure), progress is not None)
    while True:
        kind, fraction, value = job.poll(_POLL_S)
        if kind == 1:
            if progress is not None:
                progress(fraction, value)
        elif kind == 2:
            return json.loads(value)
