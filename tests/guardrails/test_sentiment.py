"""Signals that a turn belongs with a person (apps/guardrails/sentiment.py), measured on a small labelled
corpus of support messages: precision and recall are printed, and the floors asserted are the ones reached.

The TUNING lists are what the word lists and patterns were adjusted on (everyday false positives such as a
phone that "died" or an airport "terminal" included); the HELD_OUT lists were written afterwards and never
tuned on: their figures are the honest estimate for phrasings the rules have not seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from apps.guardrails.pii import RedactedText
from apps.guardrails.sentiment import human_requested, mood, sensitive_topic

# ---- asking for a person: (text, asks for one) ----

TUNING_HUMAN: list[tuple[str, object]] = [
    ("Can I talk to a human please?", True),
    ("I want to speak to a real person", True),
    ("Let me speak with an agent", True),
    ("agent", True),
    ("Human please", True),
    ("Is there a real person I can chat with?", True),
    ("Please connect me to a representative.", True),
    ("I need to talk to someone from your team", True),
    ("Transfer me to a human agent now", True),
    ("I'd like to speak to a manager", True),
    ("get me a person!!", True),
    ("Can I have a live agent?", True),
    ("Can someone call me back?", True),
    ("Put me through to customer service please", True),
    ("Are you a bot? I want a human", True),
    ("I'd rather talk to an actual human being", True),
    ("Can I speak to somebody about my bill?", True),
    ("operator", True),
    ("Is there anyone I can talk to?", True),
    ("stop, I want a person", True),
    ("I don't need a human, just tell me if roaming is free", False),
    ("No need to talk to a person, thanks", False),
    ("My travel agent booked the flights; do I need roaming?", False),
    ("I spoke to an agent yesterday and she said my refund was on its way", False),
    ("Is a person allowed to have two SIM cards?", False),
    ("How many people can share the family plan?", False),
    ("The person at the shop said the phone is under warranty", False),
    ("Is roaming free in Spain?", False),
    ("What does the World Traveller pass cost?", False),
    ("Can I add someone to my plan?", False),
    ("I do not want to talk to anyone, just answer please", False),
    ("My manager asked me for the invoice, where can I download it?", False),
    ("Can my son use my data allowance?", False),
    ("How do I speak to voicemail?", False),
    ("I want to cancel my contract", False),
    ("thanks, that's all I needed", False),
    ("Do you have staff discounts?", False),
    ("Can I transfer my number to a new phone?", False),
    ("I'm not a robot, why do I get captchas?", False),
    ("Does the human resources department need my ID?", False),
]

HELD_OUT_HUMAN: list[tuple[str, object]] = [
    ("i need a human", True),
    ("Can you get a real person on the line?", True),
    ("I want to talk to someone in billing", True),
    ("Please let me talk to a supervisor", True),
    ("speak to agent", True),
    ("Can I chat to a member of staff?", True),
    ("Connect me with an advisor please", True),
    ("I'd like someone to phone me back about this", True),
    ("This bot is useless, give me a human", True),
    ("Could a person look at my account please?", True),
    ("Do you have a human I can speak to?", True),
    ("Talk to human", True),
    ("Is there a customer service number I can ring?", True),
    ("How do I contact a real person at Nimbus?", True),
    ("What's the human population of Spain? Just kidding, is roaming free there?", False),
    ("I talked to a human last week and they fixed it", False),
    ("My agent at the insurance company needs a letter from you", False),
    ("Can another person use my SIM abroad?", False),
    ("Is this an automated reply?", False),
    ("Which plan is best for a person who travels a lot?", False),
    ("Does someone need to be home for the engineer visit?", False),
    ("I don't want to speak to anyone, I want the answer here", False),
    ("Who can I give my old phone to for recycling?", False),
    ("Can I speak on the phone while using data?", False),
    ("What time does your shop open?", False),
    ("I'd like to port my number to Nimbus", False),
    ("Can somebody else pay my bill?", False),
    ("How do I call a person abroad without roaming charges?", False),
]

# ---- how the customer sounds: (text, "upset" | "neutral" | "positive") ----

TUNING_MOOD: list[tuple[str, object]] = [
    ("This is the THIRD time I'm asking!!! Your service is useless and I am furious.", "upset"),
    ("I'm sick and tired of being overcharged every month.", "upset"),
    ("This is ridiculous, I've been waiting two weeks for my refund", "upset"),
    ("Worst service ever. Absolutely disgraceful.", "upset"),
    ("You people are incompetent, nothing works", "upset"),
    ("I am so frustrated, the internet keeps dropping and nobody fixes it", "upset"),
    ("WHY IS MY BILL DOUBLE THIS MONTH", "upset"),
    ("Fed up with this. I want my money back now.", "upset"),
    ("How many times do I have to explain the same problem?", "upset"),
    ("Unacceptable. You charged me twice and I'm furious.", "upset"),
    ("What a joke of a company, I've had enough", "upset"),
    ("I'm really angry, my phone was supposed to arrive last week", "upset"),
    ("your app is rubbish and your support is pathetic", "upset"),
    ("This is a nightmare, my roaming was charged even though it's included!!!", "upset"),
    ("I'm extremely disappointed with how I've been treated", "upset"),
    ("Stop wasting my time and fix it", "upset"),
    ("I am livid. Third outage this week.", "upset"),
    ("Is roaming free in Spain?", "neutral"),
    ("How do I return a phone?", "neutral"),
    ("My bill seems higher than usual, can you explain it?", "neutral"),
    ("Can I change my plan?", "neutral"),
    ("I still haven't received my order, where is it?", "neutral"),
    ("The app says error 503, what does that mean?", "neutral"),
    ("My phone is broken, can I get it repaired?", "neutral"),
    ("I'd like to cancel my contract next month", "neutral"),
    ("Roaming doesn't work in Norway, what should I do?", "neutral"),
    ("What's the bad weather policy for engineer visits?", "neutral"),
    ("I never got the confirmation email", "neutral"),
    ("Can I use my data again after the limit?", "neutral"),
    ("Is there a charge for calling the US?", "neutral"),
    ("What happens if I go over my data?", "neutral"),
    ("I was wrong about my address, can I update it?", "neutral"),
    ("Not bad, but can I get more data?", "neutral"),
    ("Thanks, that's really helpful!", "positive"),
    ("Great, perfect, thank you so much", "positive"),
    ("Brilliant service, I love the new app", "positive"),
    ("That solved it, I appreciate your help", "positive"),
    ("Awesome, happy with that", "positive"),
    ("Excellent, thanks for the quick answer", "positive"),
    ("Nice one, cheers", "positive"),
    ("Thank you! Everything is resolved now.", "positive"),
    ("I'm not angry, just confused about the charges", "neutral"),
    ("Not a problem, thanks anyway", "positive"),
]

HELD_OUT_MOOD: list[tuple[str, object]] = [
    ("I've been on hold for an hour, this is absolutely appalling", "upset"),
    ("You've charged me AGAIN for something I cancelled. Disgusting.", "upset"),
    ("Seriously?? Fourth time my internet has gone down today!!!", "upset"),
    ("I'm fuming, nobody has called me back like you promised", "upset"),
    ("Your company is a total scam and a disgrace", "upset"),
    ("I HATE THIS COMPANY", "upset"),
    ("Honestly the worst experience I've had with any provider", "upset"),
    ("I'm annoyed that my refund still hasn't arrived after a month", "upset"),
    ("This is unacceptable and I want compensation", "upset"),
    ("Why does nothing ever work with you people? So frustrating", "upset"),
    ("I'm upset that the engineer never turned up", "upset"),
    ("Can you explain the extra charge on my bill?", "neutral"),
    ("My internet has been slow since Tuesday", "neutral"),
    ("Where can I find my PUK code?", "neutral"),
    ("The engineer didn't come today, can I rebook?", "neutral"),
    ("I want to cancel roaming before my trip ends", "neutral"),
    ("Is the wrong number on my bill a mistake?", "neutral"),
    ("I can't log in to the app", "neutral"),
    ("Will my old SIM still work after the swap?", "neutral"),
    ("Do you sell refurbished phones?", "neutral"),
    ("I had a bad signal at home, is there a booster?", "neutral"),
    ("Never mind, I found it", "neutral"),
    ("How long does a refund take?", "neutral"),
    ("Thanks a lot, that's great", "positive"),
    ("Perfect, that's exactly what I needed", "positive"),
    ("You've been really helpful, thank you", "positive"),
    ("Love it, thanks!", "positive"),
    ("Good to know, cheers", "positive"),
    ("Happy days, it works now", "positive"),
    ("That was quick, excellent", "positive"),
]

# ---- sensitive topics: (text, the topic or None) ----

TUNING_SENSITIVE: list[tuple[str, object]] = [
    ("My husband passed away last month and I need to close his account.", "bereavement"),
    ("My mother died and I want to cancel her phone contract", "bereavement"),
    ("I'm arranging the funeral and need her number transferred", "bereavement"),
    ("How do I close the account of a deceased relative?", "bereavement"),
    ("There are unauthorized charges on my bill", "fraud"),
    ("Someone stole my identity and opened a contract in my name", "fraud"),
    ("I think I was scammed by someone pretending to be you", "fraud"),
    ("My account was hacked and the email changed", "fraud"),
    ("I think someone did a SIM swap on my number", "fraud"),
    ("My phone was stolen, please block the SIM", "fraud"),
    ("I can't afford food this month, can I pause my bill?", "vulnerability"),
    ("I'm being treated for cancer and can't pay right now", "vulnerability"),
    ("My partner is abusive and tracks my phone", "vulnerability"),
    ("I'll take you to court over this", "legal"),
    ("I'm going to complain to the ombudsman", "legal"),
    ("My lawyer will be in touch", "legal"),
    ("My phone died yesterday, how do I get a replacement?", None),
    ("The battery died after one hour", None),
    ("Is roaming free in Spain?", None),
    ("I'm at the airport terminal and roaming isn't working", None),
    ("Can I pay at the terminal in your shop?", None),
    ("Sue from your Leeds store helped me last week", None),
    ("Is this text message a real offer?", None),
    ("How do I transfer my number to a new SIM?", None),
    ("My card payment was declined", None),
    ("I lost my phone charger", None),
    ("The food court store was closed", None),
    ("My screen is broken, what does repair cost?", None),
    ("Can I use the phone in the hospital?", None),
    ("Is there a legal minimum contract length?", None),
]

HELD_OUT_SENSITIVE: list[tuple[str, object]] = [
    ("My dad passed away and his phone is still being billed", "bereavement"),
    ("Following the death of my wife I need to change the account holder", "bereavement"),
    ("I'm a widow and can't manage the payments alone", "bereavement"),
    ("I got a text asking for my bank details, is it a scam?", "fraud"),
    ("Someone used my account to buy two iPhones", "fraud"),
    ("There's a contract in my name I never signed", "fraud"),
    ("I was a victim of identity theft", "fraud"),
    ("I've been diagnosed with terminal cancer and need to cancel", "vulnerability"),
    ("I'm homeless at the moment and need to keep my number", "vulnerability"),
    ("I have a disability and can't use the app", "vulnerability"),
    ("I'm going to take legal action", "legal"),
    ("I'll report you to the regulator", "legal"),
    ("I've spoken to my solicitor about this", "legal"),
    ("My phone keeps dying after an update", None),
    ("The screen died completely", None),
    ("Which terminal do I need at the airport for the shop?", None),
    ("My sister wants to join my plan", None),
    ("How do I court new customers with referral codes?", None),
    ("Can I pay for my friend's bill?", None),
    ("The app crashed and died on me", None),
    ("Where do I find my account number?", None),
    ("My dad wants to upgrade his phone", None),
    ("Is the Nimbus store in the shopping centre open on Sunday?", None),
    ("I need a new SIM because mine is damaged", None),
]


@dataclass(frozen=True)
class Score:
    true_positives: int
    false_positives: int
    false_negatives: int
    misses: tuple[str, ...]
    false_alarms: tuple[str, ...]

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


def score(
    rows: Sequence[tuple[str, object]], predict: Callable[[str], object], positive: Callable[[object], bool]
) -> Score:
    """Precision and recall of `predict` against the labels; a prediction counts only if it equals the label
    (a sensitive message filed under the wrong topic is both a false alarm and a miss)."""
    tp = fp = fn = 0
    misses: list[str] = []
    false_alarms: list[str] = []
    for text, label in rows:
        got = predict(text)
        if positive(got) and got == label:
            tp += 1
            continue
        if positive(got):
            fp += 1
            false_alarms.append(text)
        if positive(label):
            fn += 1
            misses.append(text)
    return Score(tp, fp, fn, tuple(misses), tuple(false_alarms))


def _human(text: str) -> bool:
    return human_requested(RedactedText.stored(text))


def _upset(text: str) -> str:
    return "upset" if mood(RedactedText.stored(text)).angry else "not upset"


def _topic(text: str) -> str | None:
    return sensitive_topic(RedactedText.stored(text))


Rows = list[tuple[str, object]]
DETECTORS: dict[str, tuple[Rows, Rows, Callable[[str], object], Callable[[object], bool]]] = {
    "asks for a person": (TUNING_HUMAN, HELD_OUT_HUMAN, _human, lambda v: v is True),
    "upset": (TUNING_MOOD, HELD_OUT_MOOD, _upset, lambda v: v == "upset"),
    "sensitive topic": (TUNING_SENSITIVE, HELD_OUT_SENSITIVE, _topic, lambda v: v is not None),
}

# The figures reached when the corpus was written: a change that loses precision or recall fails.
FLOORS = {
    # detector: (tuning precision, tuning recall, held-out precision, held-out recall)
    "asks for a person": (1.0, 1.0, 1.0, 0.78),
    "upset": (1.0, 1.0, 1.0, 0.9),
    "sensitive topic": (1.0, 1.0, 1.0, 1.0),
}


def test_precision_and_recall_on_the_labelled_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["", f"{'detector':<18} {'set':<9} {'n':>3} {'precision':>9} {'recall':>7}"]
    reached = {}
    for name, (tuning, held_out, predict, positive) in DETECTORS.items():
        scores = []
        for label, rows in (("tuning", tuning), ("held out", held_out)):
            result = score(rows, predict, positive)
            scores.append(result)
            lines.append(
                f"{name:<18} {label:<9} {len(rows):>3} {result.precision:>9.2f} {result.recall:>7.2f}"
            )
            lines.extend(f"    missed: {text!r}" for text in result.misses)
            lines.extend(f"    false alarm: {text!r}" for text in result.false_alarms)
        reached[name] = scores
    with capsys.disabled():
        print("\n".join(lines))
    for name, (p_tuning, r_tuning, p_held, r_held) in FLOORS.items():
        on_tuning, on_held_out = reached[name]
        assert on_tuning.precision >= p_tuning, name
        assert on_tuning.recall >= r_tuning, name
        assert on_held_out.precision >= p_held, name
        assert on_held_out.recall >= r_held, name


def test_the_corpus_is_balanced_and_has_no_duplicates() -> None:
    for tuning, held_out, _, positive in DETECTORS.values():
        texts = [text for text, _ in [*tuning, *held_out]]
        assert len(texts) == len(set(texts))
        labels = [label for _, label in [*tuning, *held_out]]
        assert 0.3 <= sum(1 for label in labels if positive(label)) / len(labels) <= 0.7


def test_pleased_customers_score_above_zero_and_calm_ones_are_never_upset() -> None:
    rows = [*TUNING_MOOD, *HELD_OUT_MOOD]
    pleased = [(text, mood(text).score) for text, label in rows if label == "positive"]
    assert [text for text, value in pleased if value <= 0] == []
    calm = [text for text, label in rows if label != "upset" and mood(text).angry]
    assert calm == []


# ---- exact behaviour ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("I don't need a human", False),
        ("I do not want to speak to an agent. Just answer please.", False),
        ("I don't need the app. Can I talk to a human?", True),  # negation stays in its sentence
        ("You're not a robot? I want a real person", True),
        ("HUMAN!!!", True),
        ("Can I talk to a human please", True),
    ],
)
def test_asking_for_a_person_and_negation(text: str, asks: bool) -> None:
    assert human_requested(text) is asks


def test_negation_turns_a_word_around_within_its_clause_only() -> None:
    assert mood("I'm not angry").angry is False
    assert mood("I'm not angry").score > 0
    assert mood("Not a problem, thanks anyway").score > 0
    assert mood("Not bad but not great either").angry is False


def test_the_verdict_names_the_words_behind_it() -> None:
    verdict = mood("THIS IS RIDICULOUS, THE THIRD TIME I ASK!!! Useless.")
    assert (verdict.angry, verdict.score) == (True, -1.0)
    assert verdict.signals == ("ridiculous", "useless", "this is ridiculous", "third time", "capitals", "!!!")
    calm = mood("Is roaming free in Spain?")
    assert (calm.angry, calm.score, calm.signals) == (False, 0.0, ())


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("My wife passed away", "bereavement"),
        ("My phone died", None),
        ("Someone took over my account", "fraud"),
        ("I'm terminally ill", "vulnerability"),
        ("Sue at your shop was lovely", None),
        ("I will see you in court", "legal"),
        ("Mi marido falleció", None),  # English word lists only (docs/architecture/handoff.md)
        ("Mÿ hüsband pássed away", "bereavement"),  # accents are folded away
    ],
)
def test_sensitive_topics(text: str, topic: str | None) -> None:
    assert sensitive_topic(text) == topic
