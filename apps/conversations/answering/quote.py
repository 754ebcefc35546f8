"""The evidence as the customer reads it: a short fixed lead-in and the policy's own sentences, cited.

This text is the whole answer in the `quote` style and the opening of a `compose` answer; nothing in it
is generated.
"""

from __future__ import annotations

from apps.conversations.answering.evidence import Evidence

LEAD_IN = "Here is what our policy says:"
LEAD_IN_MANY = "Here is what our policies say:"
LEAD_IN_WITH_FACTS = "And here is what our policy says about it:"


def quote_text(evidence: Evidence, *, after_facts: bool = False) -> str:
    if not evidence.items:
        return ""
    documents = {item.document_id for item in evidence.items}
    lead = LEAD_IN_WITH_FACTS if after_facts else (LEAD_IN if len(documents) == 1 else LEAD_IN_MANY)
    quotes = [f"\u201c{item.text}\u201d [{item.n}]" for item in evidence.items]
    return "\n\n".join([lead, *quotes])
