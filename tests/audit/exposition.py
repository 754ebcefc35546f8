"""A small, strict reader of the Prometheus text format 0.0.4, so tests check what a scraper would parse."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_HELP = re.compile(rf"^# HELP ({_NAME}) (.*)$")
_TYPE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class ExpositionError(AssertionError):
    pass


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, name: str, **labels: str) -> float:
        found = [v for n, ls, v in self.samples if n == name and ls == labels]
        if len(found) != 1:
            raise KeyError(f"{len(found)} samples named {name} with labels {labels}")
        return found[0]

    def series(self, name: str) -> list[dict[str, str]]:
        return [ls for n, ls, _ in self.samples if n == name]


def parse(text: str) -> Exposition:
    if not text.endswith("\n"):
        raise ExpositionError("the exposition must end with a newline")
    result = Exposition()
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        if m := _HELP.match(line):
            if m[1] in result.helps:
                raise ExpositionError(f"line {number}: second HELP for {m[1]}")
            result.helps[m[1]] = _unescape_help(m[2])
        elif m := _TYPE.match(line):
            if m[1] in result.types:
                raise ExpositionError(f"line {number}: second TYPE for {m[1]}")
            if any(_family_of(n, result.types) == m[1] for n, _, _ in result.samples):
                raise ExpositionError(f"line {number}: TYPE for {m[1]} after its samples")
            result.types[m[1]] = m[2]
        elif m := _SAMPLE.match(line):
            if _family_of(m[1], result.types) is None:
                raise ExpositionError(f"line {number}: sample {m[1]} of no declared family")
            result.samples.append((m[1], _labels(m[2] or "", number), _float(m[3], number)))
        else:
            raise ExpositionError(f"line {number}: not HELP, TYPE or a sample: {line!r}")
    return result


def _family_of(sample_name: str, types: dict[str, str]) -> str | None:
    if types.get(sample_name) in {"counter", "gauge", "untyped"}:
        return sample_name
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample_name.removesuffix(suffix)
        if base != sample_name and types.get(base) == "histogram":
            return base
    return None


def _labels(text: str, number: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    i = 0
    while i < len(text):
        m = _LABEL_NAME.match(text, i)
        if not m or text[m.end() : m.end() + 2] != '="':
            raise ExpositionError(f"line {number}: bad label at {text[i:]!r}")
        name, i = m[0], m.end() + 2
        value = []
        while True:
            if i >= len(text):
                raise ExpositionError(f"line {number}: unterminated label value")
            char = text[i]
            if char == "\\":
                if i + 1 >= len(text) or text[i + 1] not in _ESCAPES:
                    raise ExpositionError(f"line {number}: bad escape in a label value")
                value.append(_ESCAPES[text[i + 1]])
                i += 2
            elif char == '"':
                i += 1
                break
            else:
                value.append(char)
                i += 1
        if name in labels:
            raise ExpositionError(f"line {number}: label {name} twice")
        labels[name] = "".join(value)
        if i < len(text):
            if text[i] != ",":
                raise ExpositionError(f"line {number}: expected a comma at {text[i:]!r}")
            i += 1
    return labels


def _unescape_help(text: str) -> str:
    # HELP text escapes only backslash and newline.
    return re.sub(r"\\([\\n])", lambda m: "\n" if m[1] == "n" else "\\", text)


def _float(text: str, number: int) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(f"line {number}: value {text!r} is not a number") from None


def check_histograms(exposition: Exposition) -> None:
    """Every histogram series: ascending `le`, non-decreasing counts, a `+Inf` bucket equal to `_count`."""
    for name, kind in exposition.types.items():
        if kind != "histogram":
            continue
        for labels in exposition.series(f"{name}_count"):
            buckets = [
                (float(ls["le"]), v)
                for n, ls, v in exposition.samples
                if n == f"{name}_bucket" and {k: x for k, x in ls.items() if k != "le"} == labels
            ]
            bounds = [b for b, _ in buckets]
            counts = [c for _, c in buckets]
            assert bounds == sorted(bounds), (name, labels, bounds)
            assert len(set(bounds)) == len(bounds), (name, labels, bounds)
            assert counts == sorted(counts), (name, labels, counts)
            assert bounds[-1] == math.inf, (name, labels)
            assert counts[-1] == exposition.value(f"{name}_count", **labels), (name, labels)
            exposition.value(f"{name}_sum", **labels)
