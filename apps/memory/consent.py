"""The question the widget asks, word for word. Each answer stores the wording of the version it answered
(MemoryConsent.wording), so what a customer agreed to stays readable after the wording changes: change
the text, bump the version, and earlier answers keep theirs."""

from __future__ import annotations

CONSENT_VERSION = 1
CONSENT_WORDING = (
    "Can we remember a few things you tell us, like how you like to be contacted or which plan you're "
    "on, so you don't have to repeat them next time? You can see and delete them at any time under "
    "\u201cWhat we remember\u201d."
)
WORDINGS = {CONSENT_VERSION: CONSENT_WORDING}
