"""Extraction of untrusted uploads in a child process with a wall-clock timeout and an address-space cap.

A child process rather than `multiprocessing`: Celery's prefork workers are daemonic and may not start
multiprocessing children, while `subprocess` works anywhere. The child gets a minimal environment (no
database URL or API keys to read if a parser is ever subverted) and answers in JSON, never pickle.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from .document import Extracted, Limits, check_size, extracted_from_json
from .errors import INGESTION_ERROR_CODES, IngestionError, corrupt_error, memory_error, timeout_error

logger = logging.getLogger(__name__)

WORKER_MODULE = "apps.knowledge.parsing.worker"
# The directory holding the `apps` package this file belongs to, so the child imports the same code.
_PROJECT_ROOT = Path(__file__).resolve().parents[3]
# How the kernel ends a process that hit RLIMIT_AS inside C code (failed malloc unchecked, or abort()),
# or the OOM killer's SIGKILL.
_MEMORY_SIGNALS = frozenset({signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS})
_STDERR_TAIL = 2000


def _child_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(_PROJECT_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def extract_bounded(data: bytes, filename: str, limits: Limits | None = None) -> Extracted:
    """Size check, sniff and extract in a child process; raises IngestionError, including `timeout`
    (the child is killed and reaped before this returns) and `too_much_memory`."""
    limits = limits or Limits()
    check_size(data, limits)
    header = json.dumps({"filename": filename, "limits": limits.as_json()}).encode("utf-8") + b"\n"
    try:
        completed = subprocess.run(
            [sys.executable, "-m", WORKER_MODULE],
            input=header + data,
            capture_output=True,
            timeout=limits.max_seconds,
            cwd=_PROJECT_ROOT,
            env=_child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has already killed the child with SIGKILL and waited for it.
        raise timeout_error(limits.max_seconds) from None
    return _read_reply(completed, limits)


def _read_reply(completed: subprocess.CompletedProcess[bytes], limits: Limits) -> Extracted:
    stderr_tail = completed.stderr[-_STDERR_TAIL:].decode("utf-8", "replace")
    if completed.returncode < 0:
        killed_by = -completed.returncode
        if killed_by == signal.SIGXCPU:
            raise timeout_error(limits.max_seconds)
        logger.warning("document parser killed by signal %s: %s", killed_by, stderr_tail)
        if killed_by in _MEMORY_SIGNALS:
            raise memory_error()
        raise corrupt_error()
    try:
        reply = json.loads(completed.stdout)
    except ValueError:
        if "MemoryError" in stderr_tail:
            raise memory_error() from None
        logger.warning("document parser exited %s without a reply: %s", completed.returncode, stderr_tail)
        raise corrupt_error() from None
    if stderr_tail:
        logger.warning("document parser reported: %s", stderr_tail)
    if not isinstance(reply, dict):
        raise corrupt_error()
    if reply.get("ok") is True:
        return extracted_from_json(reply.get("extracted"))
    code, message = reply.get("code"), reply.get("message")
    if code not in INGESTION_ERROR_CODES or not isinstance(message, str):
        raise corrupt_error()
    raise IngestionError(code, message)
