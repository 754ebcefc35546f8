"""An answer cut into sentences, whole or as it streams.

The streamed and the whole-text split are one algorithm: a boundary is decided only once the first
non-blank character after it has arrived, so feeding one character at a time changes nothing.
"""

from __future__ import annotations

import re

_TERMINATORS = ".!?…"
_CLOSERS = ".!?…\"')]*\u201d\u2019"
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "eg", "ie", "approx", "vs", "incl", "excl", "ca", "cf", "mr", "mrs", "ms", "dr", "st",
     "tel", "fig", "ref", "dept", "est", "cca"}
)  # fmt: skip
# A sentence ends after these only when a capital follows: "etc. The fee", but "4 p.m. tomorrow".
_CAPITAL_ABBREVIATIONS = frozenset({"etc", "a.m", "p.m", "am", "pm", "inc", "ltd", "co", "min", "max"})
# "No. 5": an abbreviation only before a digit, so "No. You can't" still ends at the full stop.
_NUMBER_ABBREVIATIONS = frozenset({"no", "nr", "nos"})
_LIST_MARKER_RE = re.compile(r"^(?:[-*•·\u2013]|\d{1,2}[.)])\s+")
_HEADING_RE = re.compile(r"^#{1,6}\s*")
_ALNUM_RE = re.compile(r"[A-Za-z0-9]")


class SentenceBuffer:
    """Collects a streamed answer and hands back each sentence once it is complete."""

    def __init__(self) -> None:
        self._buf = ""
        self._scan = 0

    def feed(self, piece: str) -> list[str]:
        self._buf += piece
        return self._drain(final=False)

    def flush(self) -> list[str]:
        out = self._drain(final=True)
        _emit(out, self._buf)
        self._buf, self._scan = "", 0
        return out

    def _drain(self, *, final: bool) -> list[str]:
        out: list[str] = []
        buf, n, start, i = self._buf, len(self._buf), 0, self._scan
        while i < n:
            c = buf[i]
            if c == "\n":  # a list item or a paragraph ends here, full stop or not
                _emit(out, buf[start:i])
                start = i = i + 1
                continue
            if c not in _TERMINATORS:
                i += 1
                continue
            j = i + 1
            while j < n and buf[j] in _CLOSERS:
                j += 1
            if j == n and not final:
                break
            if j < n and not buf[j].isspace():  # "€12.50", "e.g.,", "nimbus.example"
                i = j
                continue
            k = j
            while k < n and buf[k].isspace() and buf[k] != "\n":
                k += 1
            if k == n and not final:
                break
            nxt = buf[k] if k < n else ""
            if nxt in ("", "\n") or _ends_sentence(buf, start, i, nxt):
                _emit(out, buf[start:j])
                start = i = j
                continue
            i = j
        self._buf = buf[start:]
        self._scan = i - start
        return out


def _ends_sentence(buf: str, start: int, i: int, nxt: str) -> bool:
    if buf[i] != ".":
        return True
    w = i
    while w > start and (buf[w - 1].isalnum() or buf[w - 1] == "."):
        w -= 1
    word = buf[w:i].lower()
    if word in _ABBREVIATIONS:
        return False
    if word in _NUMBER_ABBREVIATIONS:
        return not nxt.isdigit()
    if word in _CAPITAL_ABBREVIATIONS:
        return nxt.isupper()
    # "1. Text PAC to 65075": a numbered list marker, not a sentence.
    return not (word.isdigit() and not buf[start:w].strip())


def _emit(out: list[str], raw: str) -> None:
    text = _LIST_MARKER_RE.sub("", _HEADING_RE.sub("", raw.strip()), count=1).strip()
    if _ALNUM_RE.search(text):
        out.append(text)


def sentences_split(text: str) -> list[str]:
    buffer = SentenceBuffer()
    return buffer.feed(text) + buffer.flush()
