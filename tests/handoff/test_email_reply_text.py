"""The customer's new words in an email, cut from the quoted history by mail-parser-reply: the reply
headers of Gmail, Outlook and Apple Mail in English, German and French, ">" quoting, and signatures."""

from __future__ import annotations

import pytest

from apps.handoff.email_path import email_reply_text

NEW = "Does the World Traveller pass work in Andorra?"

GMAIL_EN = f"""{NEW}

On Tue, 3 Mar 2026 at 10:00, Nimbus Telecom <support@nimbus.example> wrote:

> Outside the EU, the World Traveller pass costs 8 euros per day.
> It includes 1 GB of data.
"""

APPLE_EN = f"""{NEW}

> On 3 Mar 2026, at 10:00, Nimbus Telecom <support@nimbus.example> wrote:
>
> Outside the EU, the World Traveller pass costs 8 euros per day.
"""

OUTLOOK_EN = f"""{NEW}

________________________________
From: Nimbus Telecom <support@nimbus.example>
Sent: Tuesday, March 3, 2026 10:00 AM
To: Maria Garcia <maria@example.com>
Subject: Re: Roaming

Outside the EU, the World Traveller pass costs 8 euros per day.
"""

GMAIL_DE = """Gilt der World Traveller Pass auch in Andorra?

Am Di., 3. März 2026 um 10:00 Uhr schrieb Nimbus Telecom <support@nimbus.example>:

> Außerhalb der EU kostet der World Traveller Pass 8 Euro pro Tag.
"""

OUTLOOK_DE = """Gilt der World Traveller Pass auch in Andorra?

Von: Nimbus Telecom <support@nimbus.example>
Gesendet: Dienstag, 3. März 2026 10:00
An: Maria Garcia <maria@example.com>
Betreff: AW: Roaming

Außerhalb der EU kostet der World Traveller Pass 8 Euro pro Tag.
"""

GMAIL_FR = """Le forfait World Traveller fonctionne-t-il en Andorre ?

Le mar. 3 mars 2026 à 10:00, Nimbus Telecom <support@nimbus.example> a écrit :

> Hors de l'UE, le forfait World Traveller coûte 8 euros par jour.
"""

OUTLOOK_FR = """Le forfait World Traveller fonctionne-t-il en Andorre ?

De : Nimbus Telecom <support@nimbus.example>
Envoyé : mardi 3 mars 2026 10:00
À : Maria Garcia <maria@example.com>
Objet : RE: Roaming

Hors de l'UE, le forfait World Traveller coûte 8 euros par jour.
"""

SIGNED = f"""{NEW}
I travel next week.

Best regards,
Maria Garcia
+44 20 7946 0958
"""

SIGNED_DE = """Gilt der Pass auch in Andorra?

Mit freundlichen Grüßen
Maria Garcia
"""

PHONE = f"""{NEW}

Sent from my iPhone

On 3 Mar 2026, at 10:00, Nimbus Telecom <support@nimbus.example> wrote:
> Hello
"""

LIST = """Two questions:
- does the pass work in Andorra?
- is Monaco in the EU zone?

> Outside the EU, the World Traveller pass costs 8 euros per day.
"""


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (GMAIL_EN, NEW),
        (APPLE_EN, NEW),
        (OUTLOOK_EN, NEW),
        (GMAIL_DE, "Gilt der World Traveller Pass auch in Andorra?"),
        (OUTLOOK_DE, "Gilt der World Traveller Pass auch in Andorra?"),
        (GMAIL_FR, "Le forfait World Traveller fonctionne-t-il en Andorre ?"),
        (OUTLOOK_FR, "Le forfait World Traveller fonctionne-t-il en Andorre ?"),
        (SIGNED, f"{NEW}\nI travel next week."),
        (SIGNED_DE, "Gilt der Pass auch in Andorra?"),
        (PHONE, NEW),
        # A list the customer wrote is theirs, not a signature.
        (LIST, "Two questions:\n- does the pass work in Andorra?\n- is Monaco in the EU zone?"),
        (GMAIL_EN.replace("\n", "\r\n"), NEW),
    ],
    ids=[
        "gmail-en",
        "apple-en",
        "outlook-en",
        "gmail-de",
        "outlook-de",
        "gmail-fr",
        "outlook-fr",
        "signature-en",
        "signature-de",
        "sent-from-phone",
        "hyphen-list",
        "crlf",
    ],
)
def test_quoted_history_in_each_language_and_mail_program_is_cut(text: str, kept: str) -> None:
    assert email_reply_text(text) == kept


@pytest.mark.parametrize(
    "text",
    [
        "> Outside the EU, the pass costs 8 euros per day.\n",
        "On Tue, 3 Mar 2026 at 10:00, Nimbus Telecom <support@nimbus.example> wrote:\n> Hello\n",
        "Von: Nimbus Telecom <support@nimbus.example>\nGesendet: Dienstag, 3. März 2026 10:00\n"
        "An: Maria\nBetreff: AW: Roaming\n\nHallo\n",
        "   \n\n",
    ],
    ids=["only-quoted", "only-attribution", "only-outlook-block", "blank"],
)
def test_an_email_with_nothing_new_is_empty(text: str) -> None:
    assert email_reply_text(text) == ""


def test_a_huge_forwarded_history_is_cut_quickly() -> None:
    import time

    history = "".join(f"> line {n} of an old thread that goes on and on\n" for n in range(20_000))
    text = f"{NEW}\n\nOn Tue, 3 Mar 2026 at 10:00, Nimbus <support@nimbus.example> wrote:\n{history}"
    started = time.monotonic()
    assert email_reply_text(text) == NEW
    assert time.monotonic() - started < 2.0
