"""The support check for composed sentences (apps/guardrails/support.py), on telecom-policy evidence.

FAITHFUL holds paraphrases a careful model would write: they must pass. KNOWN_FALSE_FAILS holds faithful
sentences the rules refuse on purpose (a false fail is cheap, a false pass is not); they are asserted to
fail, for the reason given, so that a change of behaviour is noticed and the module's limits stay true.
UNSUPPORTED holds what small models get wrong: wrong numbers, swapped units and rates, quantities moved to
the wrong thing, invented names and facts, false and dropped negations, antonyms, widened scope and filler;
every one must fail, for the reason given.

The rules were tuned on those lists. The HELD_OUT lists (other policies) were written afterwards, before
the checker was run on them. On their first run 17 of 20 faithful sentences passed and 25 of 26
unsupported ones were refused; the one false pass ("All eSIM transfers are free." against "the first three
... are free") and two of the false fails (delivery/delivered, a merged free-then-priced sentence) led to
rule changes, so the floors asserted below are tuned figures; the first run is the honest estimate.
"""

from __future__ import annotations

import time

import pytest

from apps.guardrails.support import SentenceBuffer, SupportVerdict, sentences_split, support_check

EVIDENCE: dict[str, list[str]] = {
    "returns": [
        "You can return a phone bought online within 14 days of delivery for a full refund. The phone must "
        "be returned in its original packaging with all accessories.",
        "Phones bought in a store can be returned within 14 days only if they are unopened. We do not refund "
        "the delivery charge of €4.99 unless the phone was faulty.",
    ],
    "roaming": [
        "Zone 1 covers all European Union countries, Switzerland and the United Kingdom. When roaming in "
        "Zone 1 you use your allowance at no extra cost.",
        "A Travel Pass costs €6 per day in Zone 2 and €12 per day in Zone 3. You are only charged on days "
        "when you use your phone; receiving calls does not trigger the daily charge.",
        "Calls on ships and aircraft are not covered by the Travel Pass and cost €5.00 per minute.",
    ],
    "pac": [
        "A PAC is valid for 30 days from the day it is issued. Text PAC to 65075 and we reply within one "
        "minute. We never charge for giving you a PAC.",
        "If we receive a valid PAC by 16:00 on a working day, your number moves on the next working day.",
    ],
    "billing": [
        "Your bill is due 14 days after the bill date. If you pay late, we add a late payment fee of €10. "
        "You can change your payment date once every 6 months."
    ],
    "outage": [
        "If your broadband stops working and we have not fixed it within two full working days of your "
        "report, we credit you €9 for each calendar day until the service is restored.",
        "If our engineer misses a booked appointment, we credit you €30.",
        "If the engineer finds that the fault was caused by wiring inside your home, a call-out charge of "
        "€65 applies. Appointments are available Monday to Saturday.",
    ],
    "esim": [
        "You can transfer your eSIM to a new phone three times per year free of charge. Each further "
        "transfer costs €5. An eSIM transfer is done in the Nimbus app and takes about 10 minutes."
    ],
    "transcripts": [
        "We keep chat transcripts for two years after the conversation ends. After two years, transcripts "
        "are deleted automatically. You can ask us to delete a transcript sooner, unless we need it to "
        "resolve a complaint."
    ],
    "boost": [
        "A data boost adds extra data to your plan for the rest of the billing month. Boosts cost €8 and can "
        "be added in the Nimbus app."
    ],
}

# (sentence, evidence, question)
FAITHFUL: list[tuple[str, str, str]] = [
    (
        "You can return a phone you bought online within 14 days of delivery and get a full refund.",
        "returns",
        "",
    ),
    ("Online purchases can be returned within fourteen days of delivery for a full refund.", "returns", ""),
    ("Phones bought in a store can only be returned within 14 days if they are unopened.", "returns", ""),
    ("We don't refund the €4.99 delivery charge unless the phone was faulty.", "returns", ""),
    ("Delivery charges of €4.99 aren't refunded unless the phone was faulty.", "returns", ""),
    ("Returned phones must be in their original packaging with all accessories.", "returns", ""),
    ("Yes, roaming in Zone 1 costs nothing extra.", "roaming", "Is roaming free in Zone 1?"),
    ("Zone 1 includes the European Union, Switzerland and the United Kingdom.", "roaming", ""),
    ("A Travel Pass costs €6 a day in Zone 2.", "roaming", ""),
    ("In Zone 3, the Travel Pass is €12 per day.", "roaming", ""),
    ("Receiving calls doesn't trigger the daily Travel Pass charge.", "roaming", ""),
    (
        "No, receiving calls doesn't trigger the daily charge.",
        "roaming",
        "Do I pay the Travel Pass if someone calls me?",
    ),
    ("You're only charged for the Travel Pass on days when you use your phone.", "roaming", ""),
    ("Calls on ships cost €5 per minute and aren't covered by the Travel Pass.", "roaming", ""),
    ("Your PAC stays valid for 30 days from when it's issued.", "pac", ""),
    ("A PAC is valid for thirty days.", "pac", ""),
    ("A PAC is valid for a 30-day period from the day it is issued.", "pac", ""),
    ("Text PAC to 65075 and you'll get a reply within a minute.", "pac", ""),
    ("Getting a PAC is free.", "pac", ""),
    ("No, we never charge for a PAC.", "pac", "Do I have to pay for my PAC?"),
    ("If we receive a valid PAC by 4pm on a working day, your number moves the next working day.", "pac", ""),
    ("Your number moves on the next working day if we get a valid PAC by 16:00 on a working day.", "pac", ""),
    ("Your bill is due 14 days after the bill date.", "billing", ""),
    ("You have fourteen days from the bill date to pay your bill.", "billing", ""),
    ("If you pay your bill late, a €10 late payment fee is added.", "billing", ""),
    ("You can change your payment date once every six months.", "billing", ""),
    (
        "If your broadband isn't fixed within two full working days, we credit €9 for every calendar day "
        "until it's restored.",
        "outage",
        "",
    ),
    ("If the engineer misses your booked appointment, you get a €30 credit.", "outage", ""),
    ("A call-out charge of €65 applies if the fault is in the wiring inside your home.", "outage", ""),
    ("Engineer appointments are available Monday to Saturday.", "outage", ""),
    ("You can move your eSIM to a new phone three times a year at no cost.", "esim", ""),
    ("Further eSIM transfers cost €5 each.", "esim", ""),
    ("An eSIM transfer takes about 10 minutes in the Nimbus app.", "esim", ""),
    ("We keep chat transcripts for 2 years after a conversation ends.", "transcripts", ""),
    ("Transcripts are deleted automatically after two years.", "transcripts", ""),
    ("Chat transcripts are kept for a two-year period.", "transcripts", ""),
    ("You can ask us to delete a transcript sooner, unless we need it for a complaint.", "transcripts", ""),
    (
        "The 20 GB boost costs €8 and you can add it in the Nimbus app.",
        "boost",
        "How much is the 20 GB boost?",
    ),
    (
        "For order NM-100234, you can return the phone within 14 days of delivery.",
        "returns",
        "I bought a phone online, order NM-100234. Can I send it back?",
    ),
    ("Zone 1 is covered at no extra cost, and a Travel Pass costs €6 per day in Zone 2.", "roaming", ""),
    ("With a Travel Pass you pay €6 per day in Zone 2.", "roaming", ""),
    ("A missed engineer appointment gets you a €30 credit.", "outage", ""),
    ("After three free transfers, each further eSIM transfer costs €5.", "esim", ""),
    ("A data boost costs €8 and lasts for the rest of the billing month.", "boost", ""),
]

# Faithful, but refused by design (see the module's "Known limits"): (sentence, evidence, question, reason).
KNOWN_FALSE_FAILS: list[tuple[str, str, str, str]] = [
    # "down for more than two days" denies nothing; the evidence says "not fixed": a dropped negation.
    (
        "You get €9 per day in compensation if your broadband is down for more than two working days.",
        "outage",
        "",
        "negation",
    ),
    # "No," negates the claim after it, and "getting a PAC is free" carries no negation of its own.
    ("No, getting a PAC is free.", "pac", "Do I have to pay for a PAC?", "negation"),
    # "won't be charged" is free; the evidence says "does not trigger the daily charge".
    ("You won't be charged for receiving calls.", "roaming", "", "negation"),
    # The evidence clause also says they are not covered: a negated part left out reads as dropped.
    ("Calls on ships and aircraft cost €5 per minute.", "roaming", "", "negation"),
    # "respectively" pairs are not followed: €6 lands beside Zone 3.
    (
        "Zone 2 and Zone 3 need a Travel Pass, which costs €6 and €12 per day respectively.",
        "roaming",
        "",
        "binding:€6",
    ),
]

# (sentence, evidence, question, a reason the verdict must give)
UNSUPPORTED: list[tuple[str, str, str, str]] = [
    # wrong numbers and units
    ("You can return a phone bought online within 30 days of delivery.", "returns", "", "number:30 days"),
    ("Online purchases can be returned within 14 weeks.", "returns", "", "number:14 weeks"),
    ("A Travel Pass costs €8 per day in Zone 2.", "roaming", "", "number:€8 per day"),
    ("A Travel Pass costs €6 per month in Zone 2.", "roaming", "", "number:€6 per month"),
    ("A PAC is valid for 30 hours.", "pac", "", "number:30 hours"),
    ("A PAC is valid for 30 working days.", "pac", "", "number:30 working days"),
    ("Text PAC to 65075 and we reply within five minutes.", "pac", "", "number:five minutes"),
    (
        "If we receive a valid PAC by 17:00 on a working day, your number moves the next day.",
        "pac",
        "",
        "number:17:00",
    ),
    ("Your bill is due 30 days after the bill date.", "billing", "", "number:30 days"),
    ("The late payment fee is €10.50.", "billing", "", "number:€10.50"),
    ("The late payment fee is 10% of your bill.", "billing", "", "number:10%"),
    ("You can change your payment date once every three months.", "billing", "", "number:three months"),
    ("An eSIM transfer takes about 10 hours.", "esim", "", "number:10 hours"),
    ("You can transfer your eSIM five times a year for free.", "esim", "", "number:five"),
    ("Each further eSIM transfer costs €5 per month.", "esim", "", "number:€5 per month"),
    ("We keep chat transcripts for two months.", "transcripts", "", "number:two months"),
    ("Engineer appointments are available Monday to Friday.", "outage", "", "number:Friday"),
    ("You can change your payment date every month.", "billing", "", "number:every month"),
    ("You can transfer your eSIM three times per month free of charge.", "esim", "", "number:per month"),
    ("Boosts cost €8 and last for the rest of the year.", "boost", "", "number:year"),
    ("The boost costs €20.", "boost", "How much is the 20 GB boost?", "number:€20"),
    ("A 20 GB boost costs €8 and lasts 20 days.", "boost", "How much is the 20 GB boost?", "number:20 days"),
    # a quantity from the evidence, said of the wrong thing
    ("A Travel Pass costs €12 per day in Zone 2.", "roaming", "", "binding:€12 per day"),
    ("If our engineer misses your appointment, we credit you €65.", "outage", "", "binding:€65"),
    ("If our engineer misses a booked appointment, we credit you €9.", "outage", "", "binding:€9"),
    ("Your number moves within one minute of texting PAC to 65075.", "pac", "", "binding:one minute"),
    ("A PAC is valid for 14 days from the day it is issued.", "pac", "", "number:14 days"),
    # invented names
    ("A Travel Pass costs €6 per day in Zone 4.", "roaming", "", "name:Zone 4"),
    (
        "The Nimbus Unlimited plan includes roaming in Zone 1 at no extra cost.",
        "roaming",
        "",
        "name:Nimbus Unlimited",
    ),
    ("You can also buy a Roam Free Pass for Zone 2.", "roaming", "", "name:Roam Free Pass"),
    ("Your PAC is sent by Vodafone within one minute.", "pac", "", "name:Vodafone"),
    (
        "We keep chat transcripts for two years, after which they move to the Nimbus Archive.",
        "transcripts",
        "",
        "name:Nimbus Archive",
    ),
    # false negations
    ("No, roaming in the EU is not free.", "roaming", "Is roaming free in the EU?", "negation"),
    ("Roaming in Zone 1 is not included in your allowance.", "roaming", "", "negation"),
    ("A PAC is not valid for 30 days.", "pac", "", "negation"),
    ("We charge a fee for giving you a PAC.", "pac", "", "negation"),
    ("Phones bought online cannot be returned within 14 days of delivery.", "returns", "", "negation"),
    ("We refund the €4.99 delivery charge even if the phone wasn't faulty.", "returns", "", "negation"),
    ("Roaming in Zone 2 is free.", "roaming", "", "negation"),
    ("Roaming in Zone 3 costs nothing extra.", "roaming", "", "negation"),
    ("Wiring faults inside your home are repaired free of charge.", "outage", "", "negation"),
    # dropped negations
    ("Receiving calls triggers the daily Travel Pass charge.", "roaming", "", "negation"),
    ("Calls on ships and aircraft are covered by the Travel Pass.", "roaming", "", "negation"),
    ("We refund the delivery charge of €4.99.", "returns", "", "negation"),
    ("The Travel Pass costs €5 per minute.", "roaming", "", "negation"),
    # antonyms
    ("Your bill is due 14 days before the bill date.", "billing", "", "antonym:before"),
    ("Transcripts are deleted manually after two years.", "transcripts", "", "antonym:manually"),
    (
        "Phones bought in a store can be returned within 14 days even if they are opened.",
        "returns",
        "",
        "antonym:opened",
    ),
    (
        "If we receive a valid PAC by 16:00 on a working day, your number moves the same day.",
        "pac",
        "",
        "antonym:same",
    ),
    ("If you pay early, we take €10 off your bill.", "billing", "", "antonym:early"),
    (
        "You can return a phone bought online within 14 days of delivery for a partial refund.",
        "returns",
        "",
        "antonym:partial",
    ),
    # scope narrowed in the evidence, widened in the sentence
    ("Each eSIM transfer costs €5.", "esim", "", "scope:further"),
    ("eSIM transfers are always free.", "esim", "", "scope:always"),
    ("We keep chat transcripts forever.", "transcripts", "", "scope:forever"),
    # nothing in the evidence says this
    ("Travel Pass customers also get priority support from our specialist team.", "roaming", "", "overlap"),
    ("An eSIM transfer is done in a Nimbus store.", "esim", "", "novel:store"),
    ("A PAC is valid for 30 days from the day you request it.", "pac", "", "novel:request"),
    ("The €65 call-out charge applies to faults on our network.", "outage", "", "novel:network"),
    ("We keep chat transcripts for two years after you sign up.", "transcripts", "", "novel:sign"),
    # filler and length
    ("I hope this helps!", "roaming", "", "filler"),
    ("Let me know if you have any other questions.", "roaming", "", "filler"),
    ("Thanks for reaching out to Nimbus.", "roaming", "", "filler"),
    ("Sure!", "roaming", "", "filler"),
    ("Is there anything else I can help you with?", "roaming", "", "filler"),
    (
        "When roaming in Zone 1 you use your allowance at no extra cost, and when you travel further a "
        "Travel Pass costs €6 per day in Zone 2 and €12 per day in Zone 3, but you are only charged on days "
        "when you use your phone, because receiving calls does not trigger the daily charge, and calls on "
        "ships and aircraft are not covered by the Travel Pass.",
        "roaming",
        "",
        "too_long",
    ),
]


def _check(sentence: str, key: str, question: str) -> SupportVerdict:
    return support_check(sentence, EVIDENCE[key], question=question)


@pytest.mark.parametrize(("sentence", "key", "question"), FAITHFUL, ids=[c[0][:50] for c in FAITHFUL])
def test_faithful_paraphrase_passes(sentence: str, key: str, question: str) -> None:
    assert _check(sentence, key, question) == SupportVerdict(supported=True, reasons=())


@pytest.mark.parametrize(
    ("sentence", "key", "question", "reason"), KNOWN_FALSE_FAILS, ids=[c[0][:50] for c in KNOWN_FALSE_FAILS]
)
def test_known_false_fail_is_refused(sentence: str, key: str, question: str, reason: str) -> None:
    verdict = _check(sentence, key, question)
    assert verdict.supported is False
    assert reason in verdict.reasons


@pytest.mark.parametrize(
    ("sentence", "key", "question", "reason"), UNSUPPORTED, ids=[c[0][:50] for c in UNSUPPORTED]
)
def test_unsupported_sentence_fails(sentence: str, key: str, question: str, reason: str) -> None:
    verdict = _check(sentence, key, question)
    assert verdict.supported is False
    assert reason in verdict.reasons


def test_negation_shaped_free_phrases_match_and_no_negates_the_claim() -> None:
    evidence = ["In Zone 1 you use your allowance at no extra cost."]
    question = "Is roaming in Zone 1 free?"
    assert support_check("Yes, roaming in Zone 1 costs nothing extra.", evidence, question=question) == (
        SupportVerdict(True, ())
    )
    assert support_check("No, roaming in the EU is not free.", evidence, question=question) == SupportVerdict(
        False, ("name:EU", "negation")
    )
    # Without the question, "roaming" is a word the one-line evidence never uses: a new fact to the checker.
    assert support_check("Yes, roaming in Zone 1 costs nothing extra.", evidence).reasons == (
        "novel:roaming",
    )


@pytest.mark.parametrize(
    ("sentence", "evidence"),
    [
        ("The fee is €12.", "A fee of €12.00 applies."),
        ("The fee is 12 euros.", "A fee of €12 applies."),
        ("The fee is EUR 12.", "A fee of €12 applies."),
        ("You can make three changes.", "You can make 3 changes."),
        ("You have a 30-day window.", "You have a window of 30 days."),
        ("Records are kept for two years.", "Records are kept for 24 months."),
        ("The service window closes at 4 p.m.", "The service window closes at 16:00."),
        ("A dozen countries are covered.", "12 countries are covered."),
        ("The fee is 5 pounds.", "A fee of £5 applies."),
        ("The fee is $5.", "A fee of 5 dollars applies."),
        ("Ten percent is deducted.", "10% is deducted."),
        ("The form arrives within an hour.", "The form arrives within 60 minutes."),
    ],
)
def test_quantities_normalise(sentence: str, evidence: str) -> None:
    assert support_check(sentence, [evidence]) == SupportVerdict(True, ())


def test_question_quantity_supports_only_its_own_unit() -> None:
    evidence = ["Boosts can be added in the app."]
    question = "Can I add a 20 GB boost?"
    assert support_check("You can add the 20 GB boost in the app.", evidence, question=question).supported
    assert support_check("You can add the €20 boost in the app.", evidence, question=question).reasons == (
        "number:€20",
    )
    assert support_check("You can add the 20 GB boost in the app.", evidence).reasons == ("number:20 GB",)


def test_rates_and_units_without_a_number_must_be_in_the_evidence() -> None:
    evidence = ["You can change your plan once every 6 months. A Travel Pass costs €6 per day."]
    assert support_check("You can change your plan once every six months.", evidence).supported
    assert support_check("You can change your plan every month.", evidence).reasons == ("number:every month",)
    assert support_check("The Travel Pass is charged per day.", evidence).supported
    assert support_check("The Travel Pass is charged per week.", evidence).reasons == ("number:per week",)


def test_a_denied_condition_stated_earlier_in_the_passage_carries_over() -> None:
    evidence = [
        "If you do not have a Travel Pass, standard roaming rates apply. "
        "In Zone 2, calls cost €1.20 per minute."
    ]
    assert support_check("Without a Travel Pass, calls in Zone 2 cost €1.20 per minute.", evidence).supported
    # a denied predicate does not carry over: only a denied named thing (the condition) does
    assert support_check("Calls in Zone 2 do not cost €1.20 per minute.", evidence).reasons == ("negation",)


def test_each_universal_word_needs_its_own_in_the_evidence() -> None:
    evidence = ["Unlimited plans can use up to 35 GB of data per month in Zone 1."]
    assert support_check("Unlimited plans can use up to 35 GB a month in Zone 1.", evidence).supported
    assert support_check("Unlimited plans can use unlimited data in Zone 1.", evidence).reasons == (
        "scope:unlimited",
    )


def test_name_from_the_question_is_allowed() -> None:
    evidence = ["Your order ships within two working days."]
    sentence = "Order NM-100234 ships within two working days."
    assert support_check(sentence, evidence, question="Where is NM-100234?") == SupportVerdict(True, ())
    assert support_check(sentence, evidence).reasons == ("name:NM-100234",)


# ---- splitting ----

TRICKY_TEXT = (
    "You can return it within 14 days, e.g. if it is unopened. That is, i.e. sealed. It costs approx. €12.50 "
    "for 1.5 GB. See clause No. 5 for details! Is that clear? Yes.\n"
    "Your options:\n- text PAC to 65075\n- call 150\n1. Open the app.\n2. Tap Roaming\n"
    "Charges apply from 08:00 etc. The end"
)
TRICKY_SENTENCES = [
    "You can return it within 14 days, e.g. if it is unopened.",
    "That is, i.e. sealed.",
    "It costs approx. €12.50 for 1.5 GB.",
    "See clause No. 5 for details!",
    "Is that clear?",
    "Yes.",
    "Your options:",
    "text PAC to 65075",
    "call 150",
    "Open the app.",
    "Tap Roaming",
    "Charges apply from 08:00 etc.",
    "The end",
]


def test_sentences_split_keeps_abbreviations_decimals_and_list_items() -> None:
    assert sentences_split(TRICKY_TEXT) == TRICKY_SENTENCES


def test_no_full_stop_before_a_word_ends_the_sentence() -> None:
    assert sentences_split("No. You need a PAC. No. 5 is free.") == [
        "No.",
        "You need a PAC.",
        "No. 5 is free.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        TRICKY_TEXT,
        "A Travel Pass costs €6 per day in Zone 2. In Zone 3 it is €12.00 per day...  Really?! Yes.",
        "First line\n\n\nSecond line.   Third one",
        "Ends with an abbreviation approx.",
        "",
    ],
)
def test_sentence_buffer_one_character_at_a_time_matches_split(text: str) -> None:
    buffer = SentenceBuffer()
    streamed: list[str] = []
    for ch in text:
        streamed.extend(buffer.feed(ch))
    streamed.extend(buffer.flush())
    assert streamed == sentences_split(text)


def test_sentence_buffer_returns_a_sentence_once_the_next_one_starts() -> None:
    buffer = SentenceBuffer()
    assert buffer.feed("A PAC is valid for 30 days. ") == []
    assert buffer.feed("Text PAC to 6") == ["A PAC is valid for 30 days."]
    assert buffer.feed("5075. It costs €1") == ["Text PAC to 65075."]
    assert buffer.feed("2.") == []
    assert buffer.feed("50 each.") == []
    assert buffer.flush() == ["It costs €12.50 each."]
    assert buffer.flush() == []


# ---- held out: written after the rules were tuned (see the module docstring of this file) ----

HELD_OUT_EVIDENCE: dict[str, list[str]] = {
    "cooling_off": [
        "If you joined or upgraded online or over the phone, you can cancel within 14 days for any reason. "
        "For plans with a device, the 14 days start on the day after the device is delivered. We refund "
        "everything you paid within 14 days of receiving the device back.",
        "Store purchases are covered by our own 14-day change-of-mind promise. The device must be returned "
        "to a Nimbus store in its original box with all accessories. If the device has been used and has "
        "minor signs of wear, we deduct a handling fee of €25.",
    ],
    "leaving": [
        "You need to give us 30 days' notice to end any plan. If you move your number to another provider "
        "before the 30 days are up, the notice period ends on the day the number moves.",
        "If you leave before the end of your minimum term, you pay an early termination charge equal to 85% "
        "of the monthly airtime charges remaining in the minimum term. No early termination charge applies "
        "to 30-day rolling plans.",
        "You can text EXIT to 2020 to receive a cancellation code within one minute; the code is valid for "
        "30 days.",
    ],
    "sim": [
        "If your SIM card is damaged or lost, you can order a replacement free of charge. We deliver "
        "replacement SIMs by post within two working days, or you can collect one immediately in any Nimbus "
        "store with photo identification.",
        "Each QR code can be used once and expires 30 days after it is issued. The first three eSIM "
        "transfers in any 12-month period are free; after that, each transfer costs €5.",
    ],
}
HELD_OUT_FAITHFUL: list[tuple[str, str]] = [
    ("If you joined online, you can cancel within 14 days for any reason.", "cooling_off"),
    ("For plans with a device, the 14 days start the day after delivery.", "cooling_off"),
    ("We refund everything you paid within 14 days of getting the device back.", "cooling_off"),
    ("Store purchases have a 14-day change-of-mind promise.", "cooling_off"),
    ("The device must go back to a Nimbus store in its original box with all accessories.", "cooling_off"),
    ("A handling fee of €25 is deducted if the device shows minor signs of wear.", "cooling_off"),
    ("You can cancel within fourteen days if you upgraded over the phone.", "cooling_off"),
    ("You must give 30 days' notice to end your plan.", "leaving"),
    ("If your number moves to another provider, the notice period ends on that day.", "leaving"),
    (
        "Leaving before your minimum term ends means an early termination charge of 85% of the remaining "
        "monthly airtime charges.",
        "leaving",
    ),
    ("There is no early termination charge on 30-day rolling plans.", "leaving"),
    ("Text EXIT to 2020 and you'll get a cancellation code within one minute.", "leaving"),
    ("The cancellation code is valid for 30 days.", "leaving"),
    ("A replacement SIM is free of charge if yours is damaged or lost.", "sim"),
    ("Replacement SIMs arrive by post within two working days.", "sim"),
    (
        "You can collect a replacement SIM immediately in any Nimbus store if you bring photo "
        "identification.",
        "sim",
    ),
    ("Each QR code can only be used once.", "sim"),
    ("A QR code expires 30 days after it is issued.", "sim"),
    ("Your first three eSIM transfers in any 12-month period are free.", "sim"),
    ("After the first three transfers, each eSIM transfer costs €5.", "sim"),
]
HELD_OUT_UNSUPPORTED: list[tuple[str, str]] = [
    ("If you joined online, you can cancel within 30 days for any reason.", "cooling_off"),
    ("For plans with a device, the 14 days start on the day you order it.", "cooling_off"),
    ("We refund everything you paid within 14 working days.", "cooling_off"),
    ("Store purchases have a 30-day change-of-mind promise.", "cooling_off"),
    ("The device can be returned without its original box.", "cooling_off"),
    ("A handling fee of €50 is deducted if the device shows minor signs of wear.", "cooling_off"),
    ("We never deduct a handling fee for store returns.", "cooling_off"),
    ("You must give 14 days' notice to end your plan.", "leaving"),
    ("You must give 30 weeks' notice to end your plan.", "leaving"),
    ("The early termination charge is 15% of the remaining monthly airtime charges.", "leaving"),
    ("30-day rolling plans also pay an early termination charge.", "leaving"),
    ("Text EXIT to 2002 to get a cancellation code.", "leaving"),
    ("Text CANCEL to 2020 to get a cancellation code.", "leaving"),
    ("The cancellation code is valid for 30 minutes.", "leaving"),
    ("The cancellation code is valid for 14 days.", "leaving"),
    ("Leaving early costs €85.", "leaving"),
    ("A replacement SIM costs €5.", "sim"),
    ("Replacement SIMs arrive by post within two weeks.", "sim"),
    ("You can collect a replacement SIM in any Vodafone store.", "sim"),
    ("You can collect a replacement SIM in any Nimbus store without photo identification.", "sim"),
    ("Each QR code can be used three times.", "sim"),
    ("A QR code never expires.", "sim"),
    ("All eSIM transfers are free.", "sim"),
    ("Your first five eSIM transfers in any 12-month period are free.", "sim"),
    ("Each eSIM transfer costs €5 per month.", "sim"),
    ("I hope that helps with your SIM!", "sim"),
]


def test_held_out_unsupported_sentences_are_all_refused() -> None:
    shown = [s for s, key in HELD_OUT_UNSUPPORTED if support_check(s, HELD_OUT_EVIDENCE[key]).supported]
    assert shown == []


def test_held_out_faithful_sentences_mostly_pass() -> None:
    refused = [s for s, key in HELD_OUT_FAITHFUL if not support_check(s, HELD_OUT_EVIDENCE[key]).supported]
    # "arrive" for "deliver" is a new word to the checker.
    assert refused == ["Replacement SIMs arrive by post within two working days."]


# ---- speed ----


def test_two_hundred_checks_take_well_under_a_second() -> None:
    cases = [(s, k, q) for s, k, q in FAITHFUL] + [(s, k, q) for s, k, q, _ in UNSUPPORTED]
    started = time.perf_counter()
    for n in range(200):
        sentence, key, question = cases[n % len(cases)]
        support_check(sentence, EVIDENCE[key], question=question)
    assert time.perf_counter() - started < 0.25
