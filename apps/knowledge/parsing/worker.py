"""The child process of `extract_bounded`: `python -m apps.knowledge.parsing.worker`.

Protocol: stdin is one JSON header line {"filename", "limits"} followed by the file's bytes; stdout is
one JSON object, {"ok": true, "extracted": {...}} or {"ok": false, "code", "message"}. Exit status 0
whenever a reply was written. Imports nothing from Django or other apps: it runs in a bare interpreter.

Limits are applied by the child to itself, before it reads the file, rather than with `preexec_fn`,
which is unsafe in a parent that has threads (a Celery worker may).
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
import traceback
import warnings
from typing import Any

from .dispatch import extract_file
from .document import Limits, extracted_to_json
from .errors import IngestionError, corrupt_error, memory_error, nested_too_deeply_error

_MAX_HEADER_BYTES = 64 * 1024


def _lower_limit(kind: int, value: int, hard_extra: int = 0) -> None:
    _, hard = resource.getrlimit(kind)
    soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
    new_hard = soft + hard_extra if hard == resource.RLIM_INFINITY else min(soft + hard_extra, hard)
    resource.setrlimit(kind, (soft, new_hard))


def apply_limits(limits: Limits) -> None:
    _lower_limit(resource.RLIMIT_AS, limits.max_memory_bytes)
    # The parent's wall-clock timeout is the real bound; this one still holds if the parent dies.
    _lower_limit(resource.RLIMIT_CPU, math.ceil(limits.max_seconds) + 1, hard_extra=1)
    # SIGXCPU would otherwise dump core: a file the size of the address space, per runaway parse.
    _lower_limit(resource.RLIMIT_CORE, 0)


def _error_reply(error: IngestionError) -> dict[str, Any]:
    return {"ok": False, "code": error.code, "message": error.message}


def _crash_report(exc: BaseException) -> str:
    # Frames and the exception type only: exception messages can quote the document, and stderr is logged.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"{frames}{type(exc).__module__}.{type(exc).__qualname__}\n"


def handle(header: dict[str, Any], data: bytes) -> dict[str, Any]:
    limits = Limits.from_json(header["limits"])
    try:
        extracted = extract_file(data, str(header["filename"]), limits)
        return {"ok": True, "extracted": extracted_to_json(extracted)}
    except IngestionError as exc:
        return _error_reply(exc)
    except MemoryError:
        return _error_reply(memory_error())
    except RecursionError:
        return _error_reply(nested_too_deeply_error())
    except Exception as exc:
        sys.stderr.write(_crash_report(exc))
        return _error_reply(corrupt_error())


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def main() -> int:
    reply_fd = os.dup(1)
    # Anything a library prints lands on stderr instead of corrupting the reply.
    os.dup2(2, 1)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    try:
        header = json.loads(sys.stdin.buffer.readline(_MAX_HEADER_BYTES))
        limits = Limits.from_json(header["limits"])
    except (ValueError, KeyError, TypeError) as exc:
        sys.stderr.write(f"bad request header: {type(exc).__name__}\n")
        return 2
    apply_limits(limits)
    try:
        data = sys.stdin.buffer.read(limits.max_bytes + 1)
        reply = handle(header, data)
        del data
        payload = json.dumps(reply, ensure_ascii=False).encode("utf-8")
    except MemoryError:
        payload = json.dumps(_error_reply(memory_error())).encode("utf-8")
    _write_all(reply_fd, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
