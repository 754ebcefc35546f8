"""Words: stopwords, negation cues, stems, synonyms, antonyms, and the words that narrow or widen a claim."""

from __future__ import annotations

from functools import lru_cache

from .quantities import (
    _CURRENCY_WORDS,
    _MONTHS,
    _ONES,
    _ORDINALS,
    _SUBUNITS,
    _TENS,
    _WEEKDAYS,
)

_STOPWORDS = frozenset(
    """a an the and or but nor if then than so as of to in on at by for from with into onto upon about over
    under is are was were be been being am do does did done doing have has had having will would shall
    should can could may might must i me my mine myself you your yours yourself we us our ours they them
    their theirs it its itself he him his she her this that these those there here what which who whom
    whose when where why how whether all any both each every either few many much more most less least
    other others another some such only own same just also still yet already again ever even too very quite
    rather really simply please yes yeah sure okay ok certainly absolutely indeed thanks thank get gets got
    getting let lets need needs needed make makes made go goes going know see able like well once up out
    via per within until till after before during while since because though although unless whereas
    however therefore it's that's there's you're we're they're i'm i'll you'll we'll they'll it'll i've
    you've we've they've i'd you'd we'd etc eg ie e g note way""".split()  # noqa: SIM905
)
_NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "cannot", "without", "non",
     "nowhere", "unable"}
)  # fmt: skip
# Words that deny without a "not": "if the engineer misses the slot" is "does not arrive".
_IMPLICIT_NEGATIONS = frozenset(
    {"miss", "misses", "missed", "missing", "fail", "fails", "failed", "failing", "refuse", "refuses",
     "refused", "lack", "lacks", "lacking"}
)  # fmt: skip


_NON_CONTENT = (
    _STOPWORDS
    | _NEGATIONS
    | set(_ONES)
    | set(_TENS)
    | set(_ORDINALS)
    | set(_CURRENCY_WORDS)
    | set(_SUBUNITS)
    | _WEEKDAYS
    | {d + "s" for d in _WEEKDAYS}
    | _MONTHS
    | {"hundred", "thousand", "dozen", "am", "pm"}
)
_IRREGULAR = {
    "bought": "buy", "paid": "pay", "sent": "send", "kept": "keep", "took": "take", "taken": "take",
    "gave": "give", "given": "give", "chose": "choose", "chosen": "choose", "brought": "bring",
    "used": "use", "uses": "use", "using": "use", "daily": "day", "annual": "year", "held": "hold",
    "delivery": "deliver", "cancellation": "cancel", "replacement": "replace", "expiry": "expire",
    "renewal": "renew", "activation": "activate", "arrival": "arrive", "payment": "pay",
}  # fmt: skip
_SYNONYM_GROUPS = (
    ("cost", "charge", "fee", "price", "pay"),
    ("credit", "compensation", "compensate"),
    ("transfer", "move"),
    ("phone", "handset", "device"),
    ("delete", "erase", "remove"),
    ("buy", "purchase"),
    ("fix", "repair"),
    ("cancel", "terminate"),
    ("allow", "permit"),
    ("abroad", "overseas"),
    ("engineer", "technician"),
    ("appointment", "visit"),
    ("free", "complimentary"),
    ("text", "sms"),
    ("broadband", "internet"),
    ("fault", "faulty"),
    ("valid", "validity"),
    ("receive", "obtain"),
    ("start", "begin"),
    ("keep", "retain"),
)
_ANTONYM_WORDS = (
    ("before", "after"), ("more", "less"), ("more", "fewer"), ("above", "below"), ("minimum", "maximum"),
    ("earliest", "latest"), ("earlier", "later"), ("sooner", "later"), ("increase", "decrease"),
    ("include", "exclude"), ("inside", "outside"), ("incoming", "outgoing"), ("higher", "lower"),
    ("longer", "shorter"), ("automatically", "manually"), ("automatic", "manual"), ("first", "last"),
    ("next", "same"), ("next", "previous"), ("weekday", "weekend"), ("morning", "afternoon"),
    ("morning", "evening"), ("open", "closed"), ("receive", "send"), ("add", "remove"),
    ("activate", "deactivate"), ("refundable", "nonrefundable"), ("early", "late"), ("full", "partial"),
)  # fmt: skip
# Words that narrow a claim: when the evidence clause has one, the sentence needs one of the same group
# ("each further transfer costs €5" is not "each transfer costs €5").
_SCOPE_GROUPS = (  # (words in the evidence clause, words in the sentence that keep the scope)
    (frozenset({"further", "additional", "subsequent"}), frozenset({"further", "additional", "subsequent"})),
    (frozenset({"unless", "except"}), frozenset({"unless", "except", "only"})),
    (frozenset({"first"}), frozenset({"first"})),  # "the first three transfers are free"
)
# Words that widen a claim: the evidence clause must say them too ("transfers are always free").
_UNIVERSALS = frozenset(
    {
        "all",
        "always",
        "forever",
        "unlimited",
        "permanently",
        "anytime",
        "everywhere",
        "everything",
        "everyone",
    }
)
_SCOPE_WORDS = _UNIVERSALS.union(*(kept for _needed, kept in _SCOPE_GROUPS))


_NEGATING_PREFIXES = ("un", "in", "dis", "non")
# Words a paraphrase brings in without adding a fact.
_GENERIC_WORDS = (
    "period", "stay", "remain", "include", "apply", "last", "mean", "respectively", "contain", "available",
    "happen", "possible", "usually", "normally", "typically", "directly",
)  # fmt: skip


def _base_stem(word: str) -> str:
    w = word.lower()
    if w.endswith("'s"):
        w = w[:-2]
    w = _IRREGULAR.get(w.strip("'"), w.strip("'"))
    if len(w) > 6 and w.endswith("ically"):
        w = w[:-4]
    elif len(w) > 5 and w.endswith("ly"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ied"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 2 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 2 and w[-1] == w[-2]:
        w = w[:-1]
    return w


_SYNONYMS = {_base_stem(w): _base_stem(group[0]) for group in _SYNONYM_GROUPS for w in group[1:]}
_ANTONYMS = tuple((_base_stem(a), _base_stem(b)) for a, b in _ANTONYM_WORDS)
_GENERIC = frozenset(_SYNONYMS.get(_base_stem(w), _base_stem(w)) for w in _GENERIC_WORDS)
_FREE_STEM = _base_stem("free")
_COST_STEM = _base_stem("cost")


@lru_cache(maxsize=16384)
def _stem(word: str) -> str:
    base = _base_stem(word)
    return _SYNONYMS.get(base, base)


def _plural(word: str) -> str:
    """The singular of a name's word, so "Travel Passes" and "Nimbus's" find "Travel Pass" and "Nimbus"."""
    if word.endswith("'s"):
        return word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word
