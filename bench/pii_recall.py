"""Recall and precision of PII detection per entity type, on generated support messages, and its cost
per message against the pattern-only floor (CONTRACTS §4).

    .venv/bin/python bench/pii_recall.py [--messages 400] [--seed 7] [--repeats 200] [--smoke]

The messages come from the template generator below (faker is not a dependency): varied names from
several cultures, e-mail addresses built from them, phone numbers in national and international formats
of eleven countries, Luhn-valid card numbers of five schemes, checksum-valid IBANs of eight countries,
US SSNs, IPv4/IPv6 addresses, cities and street addresses, plus messages with no PII at all. Every value's
span is recorded, so the ground truth is exact.

A finding counts for recall and precision when it overlaps a labelled span of the same type. "Leak-free"
is stricter and what redaction is for: every letter and digit of the span ends up inside some finding,
whatever its type. Policy sentences are scanned separately; ideally nothing in them is found except
the hotline numbers (redacted on purpose, see apps/guardrails/recognizers.py).

Prints a table and, last, one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.guardrails import pii  # noqa: E402

ENTITIES = list(pii.ENTITY_TYPES)


def words(text: str) -> list[str]:
    return text.split()


FIRST = words(
    "Maria James Aisha Wei Olusegun Priya Lukas Sofia Mohammed Emma Hiroshi Chloe Mateo Fatima Oliver "
    "Ananya Jakub Isabella Kwame Elena Daniel Mei Santiago Amara Thomas Leila Rafael Ingrid Arjun Grace "
    "Dmitri Zainab Patrick Yuki Carlos Hannah Tunde Sarah Mikhail Lucia Kevin Nadia Benjamin Ayesha "
    "Giovanni Freya Samuel Chen Laura Ahmed Julia Marek Olivia Ravi Charlotte Sergio Amelia Kofi Anna"
)
LAST = words(
    "Lopez Smith Okafor Zhang Adeyemi Sharma Muller Rossi Khan Johnson Tanaka Dubois Garcia Hussain "
    "Williams Patel Nowak Martinez Mensah Popescu Brown Wang Fernandez Diallo Schneider Haddad Oliveira "
    "Larsen Reddy Taylor Ivanov Bello O'Brien Nakamura Rodriguez Cohen Balogun Wilson Petrov Romano "
    "Murphy Rahman Fischer Ali Bianchi Andersen Kowalski Evans Gupta Moreau Ortega Davies Asante Novak"
)
CITIES = words(
    "London Manchester Birmingham Leeds Glasgow Bristol Edinburgh Cardiff Berlin Munich Hamburg Madrid "
    "Barcelona Paris Lyon Milan Rome Amsterdam Rotterdam Dublin Chicago Boston Seattle Denver Austin "
    "Toronto Vancouver Mumbai Bangalore Delhi Lagos Nairobi Accra Johannesburg Sydney Melbourne Warsaw "
    "Lisbon Vienna Zurich"
)
STREETS = words("High Elm Station Church Mill Park Victoria Queen King Oak Maple Bridge Green Main")
STREET_KINDS = ["Street", "Road", "Lane", "Avenue", "Close", "Drive"]
MAIL_DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "hotmail.de",
    "icloud.com",
    "proton.me",
    "btinternet.com",
    "acme-logistics.com",
    "uni-heidelberg.de",
    "orange.fr",
]
US_AREA_CODES = ["212", "415", "312", "617", "303", "206", "512", "702", "305", "404", "646", "818"]

TEMPLATES = [
    "Hi, I'm {PERSON}, my card {CREDIT_CARD} was charged twice, call me on {PHONE_NUMBER}",
    "Hello, my name is {PERSON} and I can't log in. My email is {EMAIL_ADDRESS}.",
    "This is {PERSON}. Please refund to my account {IBAN_CODE} as agreed on the phone.",
    "My number changed, the new one is {PHONE_NUMBER}. Thanks, {FIRST}",
    "Can you update my billing address to {ADDRESS}, {LOCATION}? Account holder {PERSON}.",
    "I moved from {LOCATION} to {LOCATION} last month, please update my details. {PERSON}",
    "Please send the invoice to {EMAIL_ADDRESS} instead of my old address.",
    "The payment from card ending {CREDIT_CARD} failed again, I've tried three times today!",
    "For the loan application: SSN {US_SSN}, phone {PHONE_NUMBER}, email {EMAIL_ADDRESS}.",
    "my social security number is {US_SSN} and my name is {PERSON}",
    "I keep getting blocked, my IP is {IP_ADDRESS} if that helps.",
    "Router logs show a login from {IP_ADDRESS} that wasn't me. Who is accessing my account?",
    "Hi team, {PERSON} here. I'd like to close my account and move the balance to {IBAN_CODE}.",
    "You can reach me at {PHONE_NUMBER} or {EMAIL_ADDRESS} any time after 5pm.",
    "Dear support, my husband {PERSON} and I share the account. His number is {PHONE_NUMBER}.",
    "I'm travelling to {LOCATION} next week, will my card {CREDIT_CARD} work there?",
    "Order was delivered to {ADDRESS} in {LOCATION} but nobody was home. Can you redeliver?",
    "Please transfer the deposit to IBAN {IBAN_CODE}, beneficiary {PERSON}.",
    "ok so the technician {PERSON} never showed up at {ADDRESS}. call me {PHONE_NUMBER}",
    "Card number {CREDIT_CARD}, expiry 09/27. Please cancel it, it was stolen in {LOCATION}.",
    "My daughter {PERSON} needs her own login, her email is {EMAIL_ADDRESS}.",
    "We spoke on the phone yesterday ({PHONE_NUMBER}). I'm still waiting for the callback. {FIRST}",
    "Is {IBAN_CODE} the right account for the direct debit? It's under {PERSON}.",
    "Hello! It's {FIRST} again. The wifi at {ADDRESS} keeps dropping since Tuesday.",
    "Tax form asks for my SSN: {US_SSN}. Is it safe to send it here?",
    "My VPN exit is {IP_ADDRESS} and the app says access denied.",
    "Regards,\n{PERSON}\n{PHONE_NUMBER}\n{EMAIL_ADDRESS}",
    "Please call my landline {PHONE_NUMBER}, mobile signal in {LOCATION} is terrible.",
    "I was double charged on {CREDIT_CARD}. Refund to {IBAN_CODE} please.",
    "The account is in my late father's name, {PERSON}. I'm his daughter {FIRST}.",
    "I live in {LOCATION} and your shop there refused my return.",
    "hi its {LOWER_PERSON} here, my phone is {PHONE_NUMBER}",
    "Write back to {EMAIL_ADDRESS} - {FIRST}",
    "Server {IP_ADDRESS} is unreachable from our office in {LOCATION}.",
    "Thanks {FIRST}, that solved it! Have a nice day.",
    "Could {PERSON} from your billing team call me back on {PHONE_NUMBER}?",
    "Security question: my SSN is {US_SSN}, DOB 14/02/1985.",
    "Visa {CREDIT_CARD} was declined at a shop in {LOCATION} although I have funds.",
    "New bank details: {IBAN_CODE} ({PERSON}). Old account is closed.",
    "Contact person for the business account: {PERSON}, {PHONE_NUMBER}, {EMAIL_ADDRESS}",
]
# Written after the recognizers were tuned on TEMPLATES, and never used to tune them: the gap between
# the two sets is a rough measure of how much the tuning fitted the generator rather than the problem.
HELD_OUT_TEMPLATES = [
    "Good morning. I'm writing for my mother, {PERSON}, who is in hospital. Her mobile is {PHONE_NUMBER}.",
    "Please stop calling {PHONE_NUMBER}, I've asked three times already!!",
    "The direct debit from {IBAN_CODE} bounced and now I've been charged a fee.",
    "Can someone explain why {CREDIT_CARD} was charged 3 times on Friday?",
    "Hey, quick q - does my plan cover calls to {LOCATION}? thx {FIRST}",
    "Signed up with {EMAIL_ADDRESS} but never got the confirmation mail",
    "Name: {PERSON}\nAddress: {ADDRESS}, {LOCATION}\nPhone: {PHONE_NUMBER}",
    "{PERSON} ({EMAIL_ADDRESS}) is authorised to speak about my account.",
    "We are seeing failed logins from {IP_ADDRESS} and {IP_ADDRESS} on our business account.",
    "Per our call, here is my SSN {US_SSN} for the credit check.",
    "Please refund the deposit to {IBAN_CODE} in the name of {PERSON}",
    "{FIRST} here, the engineer left without fixing the line at {ADDRESS}",
    "My ex-partner {PERSON} still has access to the account, please remove them.",
    "Deliver to the reception at {ADDRESS}, {LOCATION}, ask for {PERSON}.",
    "Card {CREDIT_CARD} exp 11/26 cvv not sharing that obviously",
    "Text me at {PHONE_NUMBER} when the technician is on the way. Cheers, {FIRST}",
    "Mr {PERSON} passed away last month; I am the executor. Contact me at {EMAIL_ADDRESS}.",
    "ip {IP_ADDRESS} keeps getting blocked by your firewall",
    "Hi {FIRST}, thanks for the quick help yesterday!",
    "I need a letter confirming my address for my visa application in {LOCATION}.",
]
NO_PII = [
    "I was charged twice for order #A1234-5678 on 3 March, can you check?",
    "Can I change my plan from 20GB to 50GB without a new contract?",
    "My router's light has been flashing orange since Tuesday.",
    "The app says error 0x80070005 when I try to log in.",
    "I paid 49.99 on 12/03/2024 but the invoice says 59.99.",
    "Tracking number 1Z999AA10123456784 shows no updates for a week.",
    "How long does a refund take to reach my account?",
    "Is roaming in Spain and Portugal included in my tariff?",
    "Your website keeps logging me out after 5 minutes.",
    "I want to cancel my subscription, it renews on the 15th.",
    "The parcel arrived damaged, the box was open and the charger is missing.",
    "Do you offer a discount for students or pensioners?",
    "Why did my bill go up by 3.50 this month?",
    "Invoice INV-2024-00817 shows the wrong VAT rate.",
    "I'm on the Unlimited 5G plan and speeds are below 2 Mbps in the evening.",
]
POLICY = [
    "Customers may cancel within 14 days of purchase for a full refund.",
    "Refunds are issued to the original payment method within 5 to 10 business days.",
    "Call 0800 123 456 for support, Monday to Friday, 9am to 5pm.",
    "Roaming in France, Germany, Spain and the United States is included in all plans.",
    "Customers in the UK and the EU can return devices free of charge.",
    "We never ask for your full card number or PIN by email or chat.",
    "Business accounts require a VAT number and a registered office address.",
    "Late payment incurs a fee of 12.50 after 30 days.",
    "Our engineers can visit between 8am and 6pm, seven days a week.",
    "Data allowances reset on the first day of each billing month.",
    "To report a lost card, call +44 20 7946 0000 at any time.",
    "Premium support is available to customers on the Business Plus tier.",
    "Devices bought under contract are locked to our network for 12 months.",
    "Complaints that we cannot resolve within eight weeks can go to the Ombudsman.",
    "Please allow up to 48 hours for a number port to complete.",
]


@dataclass
class Sample:
    text: str
    gold: list[tuple[str, int, int]] = field(default_factory=list)
    held_out: bool = False


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, digit in enumerate(reversed(body)):
        n = int(digit)
        if i % 2 == 0:
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    scheme = rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover"])
    if scheme == "amex":
        number = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        groups = [number[:4], number[4:10], number[10:]]
    else:
        prefix = {
            "visa": "4",
            "mc": str(rng.randint(51, 55)),
            "mc2": str(rng.randint(2221, 2720)),
            "discover": "6011",
        }[scheme]
        number = luhn_complete(prefix, 16, rng)
        groups = [number[i : i + 4] for i in range(0, 16, 4)]
    return rng.choice([" ", "-", ""]).join(groups)


def iban(rng: random.Random) -> str:
    def digits(n: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(n))

    def letters(n: int) -> str:
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(n))

    country, bban = rng.choice(
        [
            ("GB", letters(4) + digits(14)),
            ("DE", digits(18)),
            ("FR", digits(10) + letters(1) + digits(10) + digits(2)),
            ("ES", digits(20)),
            ("NL", letters(4) + digits(10)),
            ("IT", letters(1) + digits(10) + digits(12)),
            ("IE", letters(4) + digits(14)),
            ("BE", digits(12)),
        ]
    )
    rearranged = bban + country + "00"
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def phone(rng: random.Random) -> str:
    def d(n: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(n))

    area = rng.choice(US_AREA_CODES)
    exchange = str(rng.randint(200, 999)).replace("11", "21")
    return rng.choice(
        [
            f"+44 20 7946 0{d(3)}",
            f"020 7946 0{d(3)}",
            f"+44 7{rng.randint(4, 9)}{d(2)} {d(6)}",
            f"07{rng.randint(4, 9)}{d(2)} {d(6)}",
            f"0161 496 0{d(3)}",
            f"({area}) {exchange}-{d(4)}",
            f"{area}-{exchange}-{d(4)}",
            f"+1 {area} {exchange} {d(4)}",
            f"{area}.{exchange}.{d(4)}",
            f"+49 30 {rng.randint(2, 9)}{d(6)}",
            f"+49 151 {d(8)}",
            f"030 {rng.randint(2, 9)}{d(6)}",
            f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"06 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+34 6{d(2)} {d(3)} {d(3)}",
            f"+91 9{d(4)} {d(5)}",
            f"+61 4{d(2)} {d(3)} {d(3)}",
            f"+61 2 {rng.randint(8, 9)}{d(3)} {d(4)}",
            f"+31 6 {d(8)}",
            f"+353 87 {d(3)} {d(4)}",
            f"+39 3{rng.randint(2, 4)}{d(1)} {d(3)} {d(4)}",
        ]
    )


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    sep = rng.choice(["-", "-", "-", " "])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def ip(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(8))
    return ".".join(str(n) for n in (rng.randint(11, 223), *(rng.randint(0, 255) for _ in range(3))))


def email(first: str, last: str, rng: random.Random) -> str:
    first, last = first.lower(), last.lower().replace("'", "")
    local = rng.choice(
        [f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}", f"{first}_{last}{rng.randint(1, 99)}"]
    )
    return f"{local}@{rng.choice(MAIL_DOMAINS)}"


def slot_value(slot: str, first: str, last: str, rng: random.Random) -> str:
    if slot == "PERSON":
        return f"{first} {last}"
    if slot == "LOWER_PERSON":
        return f"{first} {last}".lower()
    if slot == "FIRST":
        return first
    if slot == "EMAIL_ADDRESS":
        return email(first, last, rng)
    if slot == "ADDRESS":
        return f"{rng.randint(1, 240)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
    if slot == "LOCATION":
        return rng.choice(CITIES)
    generators = {
        "PHONE_NUMBER": phone,
        "CREDIT_CARD": card,
        "IBAN_CODE": iban,
        "US_SSN": ssn,
        "IP_ADDRESS": ip,
    }
    return generators[slot](rng)


def generate(count: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    samples = []
    for i in range(count):
        if i % 8 == 7:
            samples.append(Sample(rng.choice(NO_PII)))
            continue
        held_out = i % 4 == 1
        template = rng.choice(HELD_OUT_TEMPLATES if held_out else TEMPLATES)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        sample = Sample("", held_out=held_out)
        rest = template
        while "{" in rest:
            before, _, after = rest.partition("{")
            slot, _, rest = after.partition("}")
            sample.text += before
            value = slot_value(slot, first, last, rng)
            entity = {"LOWER_PERSON": "PERSON", "FIRST": "PERSON", "ADDRESS": "LOCATION"}.get(slot, slot)
            sample.gold.append((entity, len(sample.text), len(sample.text) + len(value)))
            sample.text += value
        sample.text += rest
        samples.append(sample)
    return samples


def score(samples: list[Sample], found: list[list[pii.PIIFinding]]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {
        e: {"gold": 0, "hit": 0, "leak_free": 0, "found": 0, "true": 0} for e in ENTITIES
    }
    for sample, findings in zip(samples, found, strict=True):
        covered = {i for f in findings for i in range(f.start, f.end)}
        for entity, start, end in sample.gold:
            row = rows[entity]
            row["gold"] += 1
            row["hit"] += any(f.entity_type == entity and f.start < end and start < f.end for f in findings)
            row["leak_free"] += all(i in covered for i in range(start, end) if sample.text[i].isalnum())
        for f in findings:
            row = rows[f.entity_type]
            row["found"] += 1
            row["true"] += any(e == f.entity_type and s < f.end and f.start < t for e, s, t in sample.gold)
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=200, help="timed runs of the 30-word message")
    parser.add_argument("--smoke", action="store_true", help="CI size: 40 messages, 20 repeats")
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.repeats = 40, 20

    load_started = time.perf_counter()
    pii.pii_scan("load")  # imports spaCy and Presidio, loads the model, warms the recognizers
    load_seconds = time.perf_counter() - load_started
    from apps.guardrails.recognizers import THRESHOLDS, build_analyzer

    floor = build_analyzer(model_name=pii._model_name(), ner=False)

    samples = generate(args.messages, args.seed)
    found = [pii.pii_scan(s.text) for s in samples]
    rows = score(samples, found)
    by_set = {}
    for name, held_out in (("tuned", False), ("held_out", True)):
        pairs = [(s, f) for s, f in zip(samples, found, strict=True) if s.held_out == held_out]
        by_set[name] = _ratios(_total(score([s for s, _ in pairs], [f for _, f in pairs])))

    # Cost: one 30-word message, ours (NER + patterns, windows, merge) against Presidio pattern-only,
    # interleaved A B A B after the warm-up above.
    message = (
        "Hi, I'm Maria Lopez, my card 4111 1111 1111 1111 was charged twice yesterday, please call me "
        "on +44 20 7946 0958 or email maria.lopez@example.com before 5pm today, thanks"
    )
    ours_ms, floor_ms = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        pii.pii_scan(message)
        ours_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        floor.analyze(message)
        floor_ms.append((time.perf_counter() - started) * 1000)

    policy_findings = {text: pii.pii_scan(text) for text in POLICY}

    print(
        f"PII recall on {len(samples)} generated messages (seed {args.seed}); spaCy {pii._model_name()} "
        f"{version('spacy')}, presidio-analyzer {version('presidio-analyzer')}; loaded in {load_seconds:.1f}s"
    )
    print(f"{'entity':<15}{'gold':>6}{'recall':>9}{'leak-free':>11}{'found':>7}{'precision':>11}")
    report: dict[str, dict[str, float | None]] = {}
    for entity, row in rows.items():
        report[entity] = _ratios(row)
        print(_line(entity, row))
    total = _total(rows)
    report["ALL"] = _ratios(total)
    print(_line("ALL", total))
    for name, ratios in by_set.items():
        print(
            f"  {name} templates: {int(ratios['gold'] or 0)} spans, recall {ratios['recall']}, "
            f"leak-free {ratios['leak_free']}, precision {ratios['precision']}"
        )
    print()
    flagged = {
        t: [f"{f.entity_type}:{t[f.start : f.end]}" for f in fs] for t, fs in policy_findings.items() if fs
    }
    print(f"policy sentences with findings: {len(flagged)}/{len(POLICY)}")
    for text, what in flagged.items():
        print(f"  {text!r}: {', '.join(what)}")
    words = len(message.split())
    p50, p95 = statistics.median(ours_ms), percentile(ours_ms, 0.95)
    f50, f95 = statistics.median(floor_ms), percentile(floor_ms, 0.95)
    print()
    print(f"latency, one {words}-word message, {args.repeats} interleaved runs:")
    print(f"  ours (NER + patterns)   p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    print(f"  floor (pattern-only)    p50 {f50:7.2f} ms  p95 {f95:7.2f} ms")
    print(f"  ratio ours/floor        p50 {p50 / f50:7.2f}     p95 {p95 / f95:7.2f}")
    print(
        json.dumps(
            {
                "bench": "pii_recall",
                "messages": len(samples),
                "seed": args.seed,
                "model": pii._model_name(),
                "thresholds": THRESHOLDS,
                "per_entity": report,
                "by_template_set": by_set,
                "policy_sentences_flagged": len(flagged),
                "policy_sentences": len(POLICY),
                "latency_ms": {"words": words, "ours_p50": round(p50, 2), "ours_p95": round(p95, 2)}
                | {"floor_p50": round(f50, 2), "floor_p95": round(f95, 2), "ratio_p50": round(p50 / f50, 2)},
                "load_seconds": round(load_seconds, 2),
            }
        )
    )


def _total(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    return {
        key: sum(row[key] for row in rows.values()) for key in ("gold", "hit", "leak_free", "found", "true")
    }


def _ratios(row: dict[str, float]) -> dict[str, float | None]:
    return {
        "gold": row["gold"],
        "recall": round(row["hit"] / row["gold"], 3) if row["gold"] else None,
        "leak_free": round(row["leak_free"] / row["gold"], 3) if row["gold"] else None,
        "found": row["found"],
        "precision": round(row["true"] / row["found"], 3) if row["found"] else None,
    }


def _line(entity: str, row: dict[str, float]) -> str:
    r = _ratios(row)

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    return (
        f"{entity:<15}{int(row['gold']):>6}{pct(r['recall']):>9}{pct(r['leak_free']):>11}"
        f"{int(row['found']):>7}{pct(r['precision']):>11}"
    )


if __name__ == "__main__":
    main()
