"""The answer cache: a question asked again reuses the stored evidence and the composed (or quoted) text
instead of retrieving and generating it again.

    question ── normalised ──→ exact match on (tenant, style, knowledge epoch, normalised text)
             └─ embedded ───→ else the nearest stored question of the same tenant, style and epoch whose
                              signature is equal and whose cosine similarity is >= ANSWER_CACHE_SIMILARITY

Both in one statement, which also counts the hit (`cache_lookup`). A neighbour needs an equal signature
because embeddings barely tell "Travel Pass in Zone 2" from "Travel Pass in Zone 3": the signature keeps
the question's numbers (digits and number words, with their unit or currency), codes and named things
(capitalised terms, zone and plan names), and any difference among them means a different question.

What may be stored is the caller's rule, and it is strict: only answers made from the company's
published knowledge alone. An answer that used the customer's account facts (a tool result, their
plan, their bill) or the conversation's memory is never stored, because another customer asking the same
words must not get it. Callers pass the redacted question (never the customer's original words), and the
tenant as read before retrieval: the epoch stored is then the one the evidence was read under, and an
answer whose evidence changed while it was being written is stored under an epoch nobody looks up again.

Invalidation is the tenant's knowledge epoch (Tenant.knowledge_epoch): the knowledge services bump it in
the transaction that publishes, rolls back, unpublishes, deletes or redacts published knowledge, and
lookups only match rows of the current epoch. Knowledge sits below conversations and never imports this
module, so older rows are deleted lazily, by the next store for that tenant; each store also keeps the
tenant to MAX_ROWS_PER_TENANT rows, dropping the least recently used.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Tenant
from apps.audit import metrics
from apps.conversations.models import CachedAnswer
from apps.knowledge.models import EMBEDDING_DIMENSIONS

DEFAULT_SIMILARITY = 0.95
MAX_ROWS_PER_TENANT = 5000
# Longer questions are neither stored nor looked up: they are rarely asked twice word for word, and the
# normalised text is part of a unique btree index.
MAX_QUESTION_CHARS = 500

Kind = Literal["exact", "neighbour"]


@dataclass(frozen=True)
class CacheHit:
    payload: dict[str, Any]
    kind: Kind
    similarity: float


# --- normalising -------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


# Unit words after a number, and what each is written as in a signature.
_UNIT_GROUPS = {
    "gb": "gb gig gigs gigabyte gigabytes",
    "mb": "mb megabyte megabytes",
    "tb": "tb",
    "mbps": "mbps",
    "gbps": "gbps",
    "minute": "minute minutes min mins",
    "hour": "hour hours hr hrs",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "year years yr yrs",
    "text": "text texts sms",
    "percent": "percent %",
    "pence": "pence p",
    "cent": "cent cents",
    "gbp": "gbp pound pounds quid",
    "eur": "eur euro euros",
    "usd": "usd dollar dollars",
    "sim": "sim sims",
    "line": "line lines",
    "device": "device devices",
    "phone": "phone phones",
}
_UNITS = {word: unit for unit, words in _UNIT_GROUPS.items() for word in _words(words)}
_CURRENCY_SIGNS = {"£": " gbp ", "€": " eur ", "$": " usd "}
_CURRENCIES = frozenset({"gbp", "eur", "usd"})
_SMALL = {
    word: value
    for value, word in enumerate(
        _words(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen"
        )
    )
}
_SMALL.update(
    {
        word: 10 * tens
        for tens, word in enumerate(_words("twenty thirty forty fifty sixty seventy eighty ninety"), 2)
    }
)
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORD = "|".join(sorted([*_SMALL, *_SCALES], key=len, reverse=True))
_NUMBER_WORDS_RE = re.compile(rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:and[\s-]+)?(?:{_NUMBER_WORD}))*\b")
_CONTRACTIONS = {
    "what's": "what is",
    "whats": "what is",
    "where's": "where is",
    "how's": "how is",
    "it's": "it is",
    "that's": "that is",
    "there's": "there is",
    "can't": "cannot",
    "won't": "will not",
    "don't": "do not",
    "doesn't": "does not",
    "didn't": "did not",
    "isn't": "is not",
    "aren't": "are not",
    "i'm": "i am",
    "i've": "i have",
    "i'd": "i would",
    "i'll": "i will",
}
_CONTRACTION_RE = re.compile(r"\b(?:" + "|".join(re.escape(c) for c in _CONTRACTIONS) + r")\b")
_NOT = re.compile(r"(?<=\w)n't\b")  # "wouldn't" is "would not"
_GREETING = re.compile(r"^(?:(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|dear \w+)\b[\s,]*)+")
_COURTESY = re.compile(
    r"(?:[\s,]*\b(?:please|pls|plz|thanks|thx|ty|cheers|thank you|many thanks|thanks a lot|"
    r"thank you very much|in advance|thanks in advance)\b)+$"
)
_LEADING_PLEASE = re.compile(r"^(?:please|pls|plz|can you please|could you please)\b\s*")
# Word characters, apostrophes inside words, and a decimal point or thousands comma between digits.
_JUNK = re.compile(r"(?<!\d)[.,](?!\d)|(?<=\d)[.,](?!\d)|(?<!\d)[.,](?=\d)|[^\w\s.,%]")
_SPACES = re.compile(r"\s+")


def _words_to_number(words: str) -> str:
    total = current = 0
    for word in re.split(r"[\s-]+", words):
        if word == "and":
            continue
        if word in _SMALL:
            current += _SMALL[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:  # thousand
            total += max(current, 1) * 1000
            current = 0
    return str(total + current)


def _fold(text: str) -> str:
    """Casefolded, accents stripped, curly quotes straightened, currency signs spelled, number words as
    digits: the form both the normalised text and the signature start from."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.casefold().replace("\u2019", "'").replace("\u2018", "'")
    for sign, word in _CURRENCY_SIGNS.items():
        text = text.replace(sign, word)
    text = _CONTRACTION_RE.sub(lambda m: _CONTRACTIONS[m.group(0)], text)
    text = _NOT.sub(" not", text)
    text = _NUMBER_WORDS_RE.sub(lambda m: _words_to_number(m.group(0)), text)
    # "1,000" is 1000; "10.50" stays a decimal.
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)


def question_normalize(text: str) -> str:
    """The question as compared for an exact match: case, accents, whitespace, punctuation, greetings and
    trailing courtesies ("please", "thanks") ignored; number words as digits; currency signs as codes."""
    folded = _fold(text)
    folded = _JUNK.sub(" ", folded.replace("'", ""))
    folded = _SPACES.sub(" ", folded).strip()
    previous = None
    while previous != folded:
        previous = folded
        folded = _GREETING.sub("", folded).strip()
        folded = _LEADING_PLEASE.sub("", folded).strip()
        folded = _COURTESY.sub("", folded).strip()
    return folded


# --- the signature -----------------------------------------------------------------------------------------

_UNIT_WORD = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_AMOUNT = re.compile(
    rf"(?:\b(gbp|eur|usd)\s*)?(?<![\w.])(\d+(?:\.\d+)?)(?:\s*({_UNIT_WORD})(?![\w]))?", re.IGNORECASE
)
_ZONE = re.compile(r"\bzones?\s+(\d+|[a-z])\b(?:\s*(?:and|&|or|,)\s*(\d+|[a-z])\b)?")
# The word before "plan", "pass"...: "travel pass", "unlimited plan"; not "my plan" or "the pass".
_NAMED_KIND = re.compile(
    r"\b([a-z][a-z0-9+-]*)\s+(plan|pass|bundle|tariff|add-on|addon|package|boost|booster)s?\b"
)
_NOT_A_NAME = frozenset(
    _words(
        "a an the my your our their his her its this that these those which what any each every new old "
        "current same other another one whole no some cheaper cheapest best better bigger smaller different "
        "existing previous next to of for on in with and or is get have has change switch add buy cancel "
        "upgrade downgrade use using"
    )
)
# Words that turn a question into its opposite while barely moving its embedding: "with" and "without a
# Travel Pass" are 0.99 similar, so are porting a number "to" and "away from" us, turning roaming "on" and
# "off". Their presence is part of the signature; "on", "to" and "with" are too common to count.
_POLARITY = re.compile(
    r"\b(not|no|never|cannot|without|except|before|after|from|away|off|out|more|less|fewer|over|under)\b"
)
# Codes: "EU5", "PAC", "STAC", "5G", "SIM2": letters with digits, or capitals only (two or more).
_CODE = re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{2,}\b|\b[A-Z]{2,}\b")
# Capitalised runs ("Roam Like Home", "World Traveller", "Zone 2"); numbers inside a run join it.
_CAPITALISED = re.compile(r"\b[A-Z][a-zA-Z'+-]*(?:\s+(?:[A-Z][a-zA-Z'+-]*|\d+))*")
# Words that are capitalised for grammar (a sentence's first word, "I"), not because they name something.
_GRAMMAR_CAPITALS = frozenset(
    _words(
        "i a an the can could would should will shall may might must do does did is are was were am be have "
        "has had how what when where why which who whom whose if and or but so my our your we you he she it "
        "they this that there here please hi hello hey thanks thank yes no ok okay also then now just tell "
        "explain help need want any all after before in on at for from to with without about not it's i'm "
        "i've i'd what's"
    )
)


def question_signature(text: str) -> str:
    """What must be equal for two questions to share an answer, sorted and joined with "|": amounts and
    numbers with their currency or unit ("eur 10", "30 day", "2"), zones ("zone 2"), named plans and
    passes ("travel pass"), codes ("eu5", "5g"), capitalised names ("roam like home") and the few words
    that reverse a question ("~without", "~off", "~not")."""
    parts: set[str] = set()
    folded = _fold(text)
    for currency, number, unit in _AMOUNT.findall(folded):
        number = number.rstrip("0").rstrip(".") if "." in number else number
        unit_code = _UNITS.get(unit.lower(), unit.lower()) if unit else ""
        if unit_code in _CURRENCIES:  # "10 euros" is "eur 10", as "€10" is
            currency, unit_code = currency or unit_code, ""
        parts.add(" ".join(p for p in (currency, number, unit_code) if p))
    parts.update("~not" if word == "cannot" else f"~{word}" for word in _POLARITY.findall(folded))
    for first, second in _ZONE.findall(folded):
        parts.update(f"zone {z}" for z in (first, second) if z)
    for name, kind in _NAMED_KIND.findall(folded):
        if name not in _NOT_A_NAME and not name.isdigit():
            parts.add(f"{name} {kind.replace('addon', 'add-on')}")
    original = unicodedata.normalize("NFKC", text)
    for code in _CODE.findall(original):
        if code.casefold() not in _GRAMMAR_CAPITALS and not code.isdigit():
            parts.add(code.casefold())
    for match in _CAPITALISED.finditer(original):
        words = match.group(0).split()
        sentence_start = (
            not original[: match.start()].strip() or original[: match.start()].rstrip()[-1] in ".?!:;\n"
        )
        while words and words[0].casefold() in _GRAMMAR_CAPITALS:
            words, sentence_start = words[1:], False
        if not words or (len(words) == 1 and (words[0].isupper() or sentence_start)):
            # Nothing left; a lone code (counted above); or a sentence's first word, capitalised for
            # grammar as often as for a name ("Roaming charges in Canada?").
            continue
        name = _fold(" ".join(words)).strip()
        if name and not name.isdigit():
            parts.add(name)
    return "|".join(sorted(parts))


# --- lookup and store --------------------------------------------------------------------------------------

# One round trip: the exact match and the nearest same-signature neighbour are both candidates; the best
# is counted as hit and returned by the UPDATE. The SET LOCALs end with the statement's implicit transaction
# (as in apps/knowledge/selectors.py): when the planner prefers the HNSW index, iterative scanning keeps it
# from returning nothing because other tenants' rows filled its candidate list; and the hit count, which
# only chooses what the cap drops, does not wait for its WAL to reach the disk.
_ITERATIVE_SCAN = "SET LOCAL hnsw.iterative_scan = 'strict_order';"
# Only when the statement is its own transaction: inside a caller's transaction it would also cover the
# caller's writes, which must stay durable.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off;"
_LOOKUP_SQL = """
WITH candidate AS (
    (SELECT id, 'exact' AS kind, 1.0::float8 AS similarity
     FROM conversations_cachedanswer
     WHERE tenant_id = %(tenant)s AND knowledge_epoch = %(epoch)s AND style = %(style)s
       AND normalized = %(normalized)s
     LIMIT 1)
    UNION ALL
    (SELECT id, 'neighbour', 1 - (embedding <=> %(vector)s::vector)
     FROM conversations_cachedanswer
     WHERE %(neighbours)s AND tenant_id = %(tenant)s AND knowledge_epoch = %(epoch)s AND style = %(style)s
       AND signature = %(signature)s AND embedding_model = %(model)s
     ORDER BY embedding <=> %(vector)s::vector
     LIMIT 1)
),
best AS (
    SELECT id, kind, similarity FROM candidate
    WHERE kind = 'exact' OR similarity >= %(threshold)s
    ORDER BY kind = 'exact' DESC, similarity DESC
    LIMIT 1
)
UPDATE conversations_cachedanswer AS c SET hits = c.hits + 1, last_hit_at = %(now)s
FROM best WHERE c.id = best.id
RETURNING c.payload, best.kind, best.similarity
"""

# The tenant's rows of older epochs, and beyond the cap its least recently used ones (hit or stored).
_PRUNE_SQL = """
DELETE FROM conversations_cachedanswer
WHERE tenant_id = %(tenant)s AND (
    knowledge_epoch < %(epoch)s
    OR id IN (
        SELECT id FROM conversations_cachedanswer
        WHERE tenant_id = %(tenant)s
        ORDER BY coalesce(last_hit_at, created_at) DESC
        OFFSET %(cap)s
    )
)
"""


def _similarity() -> float:
    return float(getattr(settings, "ANSWER_CACHE_SIMILARITY", DEFAULT_SIMILARITY))


def _usable(vector: list[float]) -> bool:
    return len(vector) == EMBEDDING_DIMENSIONS


def cache_lookup(*, tenant: Tenant, style: str, question: str, vector: list[float]) -> CacheHit | None:
    """The stored answer for this question in this style under the tenant's current knowledge, or None."""
    normalized = question_normalize(question)
    if not normalized or len(normalized) > MAX_QUESTION_CHARS:
        metrics.answer_cache_count(tenant=tenant.slug, result="miss")
        return None
    params: dict[str, Any] = {
        "tenant": tenant.id,
        "epoch": tenant.knowledge_epoch,
        "style": style,
        "normalized": normalized,
        "neighbours": _usable(vector),
        "vector": str(vector) if _usable(vector) else "[0]",
        "signature": question_signature(question),
        "model": settings.EMBEDDINGS_MODEL,
        "threshold": _similarity(),
        # The application's clock, as created_at is: the cap compares the two.
        "now": timezone.now(),
    }
    settings_sql = _ITERATIVE_SCAN if connection.in_atomic_block else _ITERATIVE_SCAN + _ASYNC_COMMIT
    with connection.cursor() as cursor:
        cursor.execute(settings_sql + _LOOKUP_SQL, params)
        while cursor.description is None and cursor.nextset():
            pass  # the SETs' empty results
        row = cursor.fetchone()
    if row is None:
        metrics.answer_cache_count(tenant=tenant.slug, result="miss")
        return None
    payload, kind, similarity = row
    if isinstance(payload, str):  # Django leaves jsonb undecoded on its cursors
        payload = json.loads(payload)
    metrics.answer_cache_count(tenant=tenant.slug, result=f"hit_{kind}")
    return CacheHit(payload=payload, kind=kind, similarity=float(similarity))


def cache_store(
    *, tenant: Tenant, style: str, question: str, vector: list[float], payload: dict[str, Any]
) -> None:
    """Stores (or replaces) the answer to this question in this style under the tenant's knowledge epoch,
    then drops the tenant's rows of older epochs and those beyond the cap."""
    normalized = question_normalize(question)
    if not normalized or len(normalized) > MAX_QUESTION_CHARS or not _usable(vector):
        return
    with transaction.atomic():
        CachedAnswer.objects.bulk_create(
            [
                CachedAnswer(
                    tenant=tenant,
                    knowledge_epoch=tenant.knowledge_epoch,
                    style=style,
                    normalized=normalized,
                    signature=question_signature(question),
                    embedding=vector,
                    embedding_model=settings.EMBEDDINGS_MODEL,
                    payload=payload,
                )
            ],
            update_conflicts=True,
            unique_fields=["tenant", "knowledge_epoch", "style", "normalized"],
            update_fields=["signature", "embedding", "embedding_model", "payload", "updated_at"],
        )
        with connection.cursor() as cursor:
            cursor.execute(
                _PRUNE_SQL, {"tenant": tenant.id, "epoch": tenant.knowledge_epoch, "cap": MAX_ROWS_PER_TENANT}
            )
    metrics.answer_cache_count(tenant=tenant.slug, result="store")
