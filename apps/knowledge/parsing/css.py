"""Just enough CSS to know when an element is invisible to a reader.

Hidden text is the classic carrier for instructions aimed at the assistant rather than the customer, so
anything a browser would not show is removed. We err towards removing: a false positive loses a sentence
of a web page; a false negative lets a hidden instruction into retrieval.

Supported: inline `style` attributes, and rules in <style> elements whose selector's last compound is
simple (`tag`, `.class`, `#id`, `tag.class#id`, `*`); rules with pseudo-classes or attribute selectors
are ignored. No cascade or specificity: if any matching rule hides, the element is hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_COMPOUND = re.compile(r"^(?P<tag>[a-zA-Z][a-zA-Z0-9-]*|\*)?(?P<rest>(?:[.#][\w-]+)*)$")
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))")
_PRINT_MEDIA = re.compile(r"@media\s+print\b[^{]*\{", re.IGNORECASE)
_FAR_AWAY = 999.0
_TINY_FONT_SIZES = {
    "px": 1.0,
    "pt": 1.0,
    "em": 0.1,
    "rem": 0.1,
    "%": 10.0,
}  # px (or any unit): "off-screen" positioning used to hide text visually


def _number(value: str) -> float | None:
    match = _NUMBER.match(value)
    return float(match.group(1)) if match else None


def declarations(style: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for declaration in _COMMENT.sub("", style).split(";"):
        name, sep, value = declaration.partition(":")
        if not sep:
            continue
        value = value.lower().replace("!important", "").strip()
        result[name.strip().lower()] = " ".join(value.split())
    return result


def hides(style: str) -> bool:
    """True when these declarations make an element's text invisible."""
    decl = declarations(style)
    if decl.get("display") == "none" or decl.get("visibility") in ("hidden", "collapse"):
        return True
    if decl.get("content-visibility") == "hidden":
        return True
    if _unreadably_small(decl.get("font-size", "")) or _number(decl.get("opacity", "x")) == 0:
        return True
    if "scale(0)" in decl.get("transform", "").replace(" ", ""):
        return True
    if decl.get("color") == "transparent":
        return True
    clipped = decl.get("overflow") == "hidden" or decl.get("overflow-x") == "hidden"
    if clipped and any(
        _number(decl.get(name, "x")) == 0 for name in ("height", "max-height", "width", "max-width")
    ):
        return True
    if decl.get("position") in ("absolute", "fixed"):
        for name in ("left", "top", "right"):
            number = _number(decl.get(name, "x"))
            if number is not None and number <= -_FAR_AWAY:
                return True
    indent = _number(decl.get("text-indent", "x"))
    if indent is not None and indent <= -_FAR_AWAY:
        return True
    return decl.get("clip") in ("rect(0 0 0 0)", "rect(0,0,0,0)", "rect(0px 0px 0px 0px)")


def _unreadably_small(size: str) -> bool:
    """0 in any unit, or at most 1px/1pt, 0.1em/rem, 10%: sizes used to hide text, never to show it."""
    match = _NUMBER.match(size)
    if match is None:
        return False
    ceiling = _TINY_FONT_SIZES.get(size[match.end() :].strip(), 0.0)
    return float(match.group(1)) <= ceiling


@dataclass(frozen=True)
class Selector:
    tag: str | None
    classes: frozenset[str]
    element_id: str | None

    def matches(self, tag: str, classes: set[str], element_id: str | None) -> bool:
        if self.tag is not None and self.tag != tag:
            return False
        if self.element_id is not None and self.element_id != element_id:
            return False
        return self.classes <= classes


def hiding_selectors(stylesheet: str) -> list[Selector]:
    """Selectors of the rules in `stylesheet` that hide what they match."""
    selectors: list[Selector] = []
    for match in _RULE.finditer(_without_print_rules(_COMMENT.sub("", stylesheet))):
        if not hides(match.group(2)):
            continue
        for selector_text in match.group(1).split(","):
            selector = _parse_compound(selector_text)
            if selector is not None:
                selectors.append(selector)
    return selectors


def _without_print_rules(stylesheet: str) -> str:
    """Print-only rules (hiding navigation from paper) do not hide anything on screen."""
    parts: list[str] = []
    position = 0
    while (match := _PRINT_MEDIA.search(stylesheet, position)) is not None:
        parts.append(stylesheet[position : match.start()])
        depth, index = 1, match.end()
        while index < len(stylesheet) and depth:
            depth += {"{": 1, "}": -1}.get(stylesheet[index], 0)
            index += 1
        position = index
    parts.append(stylesheet[position:])
    return "".join(parts)


def _parse_compound(selector_text: str) -> Selector | None:
    # Descendant/child combinators: judge by the element the rule lands on, which over-matches (safe here).
    last = re.split(r"[\s>+~]+", selector_text.strip())[-1]
    match = _COMPOUND.match(last)
    if not last or match is None:
        return None
    tag = match.group("tag")
    rest = match.group("rest")
    classes = frozenset(re.findall(r"\.([\w-]+)", rest))
    ids = re.findall(r"#([\w-]+)", rest)
    if len(ids) > 1:
        return None
    return Selector(
        tag=None if tag in (None, "*") else tag.lower(),
        classes=classes,
        element_id=ids[0] if ids else None,
    )
