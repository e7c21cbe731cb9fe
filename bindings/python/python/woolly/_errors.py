"""Woolly's exceptions. Each mirrors a status of the C API: ``code`` is its name
(``"WOOLLY_ERR_IO"``) and ``status`` its number."""

from __future__ import annotations


class WoollyError(Exception):
    """Base class of every error Woolly raises."""

    code: str = "WOOLLY_ERR_INTERNAL"
    status: int = 100

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:  # OSError subclasses would otherwise format their own way
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(WoollyError, ValueError):
    """An argument is out of range or malformed."""

    code, status = "WOOLLY_ERR_INVALID_ARGUMENT", 1


class WoollyIOError(WoollyError, OSError):
    """A file could not be opened or read."""

    code, status = "WOOLLY_ERR_IO", 3


class InvalidModelError(WoollyError):
    """The file is not a valid GGUF model (corrupt, truncated, hostile)."""

    code, status = "WOOLLY_ERR_INVALID_MODEL", 4


class UnsupportedError(WoollyError):
    """The model uses an architecture or type Woolly does not support."""

    code, status = "WOOLLY_ERR_UNSUPPORTED", 5


class ModelNotFoundError(WoollyError, FileNotFoundError):
    """No path was given and the default model is not installed (run ``make model``)."""

    code, status = "WOOLLY_ERR_MODEL_NOT_FOUND", 6


class TokenizerError(WoollyError):
    """Text could not be tokenized or tokens decoded."""

    code, status = "WOOLLY_ERR_TOKENIZER", 7


class ContextOverflowError(WoollyError, ValueError):
    """The prompt plus ``max_tokens`` does not fit in the context."""

    code, status = "WOOLLY_ERR_CONTEXT_OVERFLOW", 8


class CancelledError(WoollyError):
    """The generation or load was cancelled."""

    code, status = "WOOLLY_ERR_CANCELLED", 9


class InvalidUtf8Error(WoollyError, UnicodeError):
    """A string cannot be encoded as UTF-8 (it holds lone surrogates)."""

    code, status = "WOOLLY_ERR_INVALID_UTF8", 11


class PermissionDeniedError(WoollyError, PermissionError):
    """The system refused an operation the caller opted into (such as a priority change)."""

    code, status = "WOOLLY_ERR_PERMISSION_DENIED", 12


class InsufficientMemoryError(WoollyError, MemoryError):
    """What was asked for does not fit in the memory Woolly may use.

    ``required`` and ``available`` are the figures in bytes; ``budgeted`` says whether the
    host's memory budget (rather than the system's free memory) was the limit.
    """

    code, status = "WOOLLY_ERR_INSUFFICIENT_MEMORY", 13
    required: int | None = None
    available: int | None = None
    budgeted: bool = False


class BusyError(WoollyError):
    """The request queue is full; try again later."""

    code, status = "WOOLLY_ERR_BUSY", 14


class DeadlineExceededError(WoollyError, TimeoutError):
    """The request's deadline passed before it finished."""

    code, status = "WOOLLY_ERR_DEADLINE_EXCEEDED", 15


class OutOfDeviceMemoryError(WoollyError, MemoryError):
    """A GPU ran out of memory for what was asked (``required`` and ``free`` give the
    figures; a load offloads fewer layers instead of failing)."""

    code, status = "WOOLLY_ERR_OUT_OF_DEVICE_MEMORY", 16
    device: int | None = None
    required: int | None = None
    free: int | None = None


class DeviceError(WoollyError):
    """The GPU driver reported an error."""

    code, status = "WOOLLY_ERR_DEVICE", 17


class InternalError(WoollyError):
    """A bug inside Woolly."""

    code, status = "WOOLLY_ERR_INTERNAL", 100
