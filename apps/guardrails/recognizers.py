"""What counts as PII here and how sure the analyzer must be: Presidio's recognizers, configured for
support messages, for offline machines, and so that policy prose survives.

Built once per process by `apps.guardrails.pii`; nothing else should import this module.

Choices, each measured with `bench/pii_recall.py`:

- Only the entity types in `THRESHOLDS` are looked for. Dates, organisations, URLs and nationalities
  are left alone: "within 14 days" or "our Berlin team" in a policy are not personal data, and NER
  tags them often enough to shred policy prose.
- Phone numbers are redacted at the recognizer's base score, even without a word like "call" nearby: a
  customer's number and a company hotline look the same, a missed customer number leaks data, and a
  redacted hotline only costs a placeholder. So "Call 0800 123 456 for support" becomes
  "Call <PHONE_NUMBER> for support".
- Country and continent names are not treated as locations: "roaming in France" identifies nobody,
  and redacting countries makes policies unreadable. Cities, streets and regions still are.
- Card numbers must pass the Luhn check and IBANs their mod-97 check: random digit runs (order and
  tracking numbers) are then rarely mistaken for either, so both can be matched without context words.
- spaCy's small model misses many names in short, informal messages and calls some of them places;
  `names.CuedNameRecognizer` finds names by their cue ("Thanks, Grace"), and a pattern finds street
  addresses, which the model rarely tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import phonenumbers
import spacy
from phonenumbers import geocoder
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpEngine, NoOpNlpEngine, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)
from spacy.pipeline import EntityRecognizer as SpacyEntityRecognizer
from tldextract import TLDExtract

from apps.guardrails.names import CuedNameRecognizer

LANGUAGE = "en"

# Minimum score per entity type. NER findings score a flat 0.85 (spaCy gives no confidence); checksum
# recognizers 1.0 when the checksum holds; a context word ("call", "card", "ssn") adds 0.35.
THRESHOLDS: dict[str, float] = {
    "PERSON": 0.5,
    "LOCATION": 0.5,
    "EMAIL_ADDRESS": 0.5,
    "PHONE_NUMBER": 0.4,
    "CREDIT_CARD": 0.5,
    "IBAN_CODE": 0.5,
    # 0.4 admits an undelimited nine-digit number only when "ssn" or "social security" is near it.
    "US_SSN": 0.4,
    "IP_ADDRESS": 0.5,
}

# Regions whose national formats ("020 7946 0958", "(415) 555-0132") are recognised; numbers written
# with +country code are recognised whatever the region. Each region is one more pass over the text.
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IE", "IN", "CA", "AU", "BR", "MX")

# spaCy labels that mean a person or a place; every other label is dropped before Presidio sees it.
_NER_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}

_EXTRA_PLACES_TOO_BIG_TO_IDENTIFY = (
    "UK",
    "U.K.",
    "US",
    "U.S.",
    "USA",
    "U.S.A.",
    "America",
    "United States of America",
    "Britain",
    "Great Britain",
    "England",
    "Scotland",
    "Wales",
    "Northern Ireland",
    "EU",
    "European Union",
    "EEA",
    "Europe",
    "Asia",
    "Africa",
    "North America",
    "South America",
    "Latin America",
    "Middle East",
    "Oceania",
    "Antarctica",
    "Czechia",
    "GB",  # also "20GB" of data, which spaCy reads as Great Britain
)


class _InstalledSpacyEngine(SpacyNlpEngine):
    """Loads an installed spaCy package and never downloads one: Presidio's engine runs `spacy download`
    (pip, over the internet) for a missing model, which on an offline machine hangs or fails noisily.

    The dependency parser is not loaded (about 1 ms of 6 per 30-word message): no recognizer here reads
    dependencies, NER does not listen to the parser (identical entities on the 415 benchmark texts),
    and the parts of speech it changes are function words ("that", "have"), never proper nouns."""

    def load(self) -> None:
        self.nlp = {  # type: ignore[assignment]  # Presidio annotates the attribute as None
            model["lang_code"]: spacy.load(model["model_name"], exclude=["parser"]) for model in self.models
        }


class _OfflineEmailRecognizer(EmailRecognizer):
    """Presidio validates e-mail domains with `tldextract.extract`, whose module-level extractor fetches
    the public suffix list from the internet on first use (and logs a traceback when it can't). This
    one reads only the snapshot bundled in the tldextract wheel and writes no cache file."""

    def __init__(self) -> None:
        super().__init__()
        self._domains = TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    def validate_result(self, pattern_text: str) -> bool:
        return self._domains(pattern_text).fqdn != ""


class _CardRecognizer(CreditCardRecognizer):
    """Presidio's card pattern misses Mastercard's 2221-2720 range; the Luhn check is unchanged."""

    # 13 to 17 digits in four groups, so an expiry date after the number ("... 1111 12/26") is not
    # swallowed into a run that then fails the Luhn check.
    PATTERNS = [
        Pattern(
            "card number",
            r"\b(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|6\d{3}|3\d{3})[ -]?\d{3,4}[ -]?\d{3,4}[ -]?\d{3,5}\b",
            0.3,
        )
    ]

    def __init__(self) -> None:
        super().__init__(patterns=self.PATTERNS)


class _StreetAddressRecognizer(PatternRecognizer):
    """House number, one to three capitalised words, a street kind: "221B Baker Street", "14 Elm Rd".
    The small spaCy model rarely tags these, and billing and delivery addresses are everyday support
    talk. Case-sensitive, unlike Presidio's default, so "3 times down the road" is not an address."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity="LOCATION",
            patterns=[
                Pattern(
                    "street address",
                    r"\b\d{1,5}[A-Za-z]?,?\s+(?:[A-Z][a-z'\u2019-]+\s+){1,3}"
                    r"(?:Street|St|Road|Rd|Lane|Ln|Avenue|Ave|Close|Drive|Dr|Way|Court|Ct|Place|Pl|"
                    r"Crescent|Terrace|Gardens|Boulevard|Blvd|Square|Sq|Row|Hill|Grove|Walk|Mews|"
                    r"Parade|Highway|Hwy)\b\.?",
                    0.6,
                )
            ],
            global_regex_flags=re.DOTALL | re.MULTILINE,
            name="StreetAddressRecognizer",
        )


def _load_spacy(model_name: str) -> _InstalledSpacyEngine:
    nlp_engine = _InstalledSpacyEngine(models=[{"lang_code": LANGUAGE, "model_name": model_name}])
    nlp_engine.load()
    # Every label the model predicts but we don't use is dropped by name: an unlisted label would make
    # Presidio log a warning for each message that contains one.
    ner = nlp_engine.get_nlp(LANGUAGE).get_pipe("ner")
    if not isinstance(ner, SpacyEntityRecognizer):
        raise TypeError(f"spaCy model {model_name} has no entity recognizer")
    predicted = set(ner.labels)
    nlp_engine.ner_model_configuration = NerModelConfiguration(
        model_to_presidio_entity_mapping=dict(_NER_LABELS),
        labels_to_ignore=sorted(predicted - set(_NER_LABELS)),
    )
    return nlp_engine


def _place_names_too_big_to_identify() -> frozenset[str]:
    # Country names from phonenumbers' geocoder (a Presidio dependency): no hand-kept list to go stale.
    names = set(_EXTRA_PLACES_TOO_BIG_TO_IDENTIFY)
    for region in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number(region)
        if example is not None:
            names.add(geocoder.country_name_for_number(example, "en"))
    return frozenset(_normalise_place(name) for name in names if name)


def _normalise_place(name: str) -> str:
    name = re.sub(r"\s+", " ", name.strip().lower())
    return name.removeprefix("the ")


@dataclass(frozen=True)
class Analyzer:
    """A loaded Presidio analyzer and the filters applied to what it returns."""

    engine: AnalyzerEngine
    model_name: str
    entities: tuple[str, ...]
    places_kept: frozenset[str]

    @cached_property
    def recognizer_count(self) -> int:
        return len(self.engine.get_recognizers(LANGUAGE))

    @staticmethod
    def precedence(result: RecognizerResult) -> int:
        """Which of two overlapping findings gets the characters they share (lower first): exact
        formats (checksums, phone numbering plans, address shapes) over names found by their cue, over
        NER's guesses. NER's flat 0.85 would otherwise outrank a valid phone number's 0.4."""
        recognizer = (result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY)
        return {CuedNameRecognizer.__name__: 1, SpacyRecognizer.__name__: 2}.get(str(recognizer), 0)

    def analyze(self, text: str) -> list[RecognizerResult]:
        results = self.engine.analyze(
            text=text,
            language=LANGUAGE,
            entities=list(self.entities),
            score_threshold=min(THRESHOLDS.values()),
        )
        return [
            result
            for result in results
            if result.score >= THRESHOLDS[result.entity_type]
            and not (
                result.entity_type == "LOCATION"
                and _normalise_place(text[result.start : result.end]) in self.places_kept
            )
        ]


def build_analyzer(*, model_name: str, ner: bool = True) -> Analyzer:
    """Loads spaCy (seconds) and builds the analyzer. `ner=False` gives the pattern-only analyzer the
    benchmark uses as its floor; the product always runs with NER."""
    recognizers: list[EntityRecognizer] = [
        _OfflineEmailRecognizer(),
        PhoneRecognizer(supported_regions=PHONE_REGIONS, leniency=1),
        # A number written with +country code is a phone number if its length is possible for that
        # country, valid range or not: customers quote new ranges and test numbers too.
        PhoneRecognizer(supported_regions=("ZZ",), leniency=0, name="InternationalPhoneRecognizer"),
        _CardRecognizer(),
        _StreetAddressRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
    ]
    nlp_engine: NlpEngine
    if ner:
        nlp_engine = _load_spacy(model_name)
        recognizers.append(SpacyRecognizer(supported_entities=sorted(set(_NER_LABELS.values()))))
        recognizers.append(CuedNameRecognizer())
    else:
        nlp_engine = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
    engine = AnalyzerEngine(
        registry=RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE]),
        nlp_engine=nlp_engine,
        supported_languages=[LANGUAGE],
    )
    supported = set(engine.get_supported_entities(LANGUAGE))
    analyzer = Analyzer(
        engine=engine,
        model_name=model_name,
        entities=tuple(entity for entity in THRESHOLDS if entity in supported),
        places_kept=_place_names_too_big_to_identify(),
    )
    # The first call compiles every pattern and parses the suffix-list snapshot: pay for it here,
    # not on a customer's first message.
    analyzer.analyze("warm-up: Jane Doe, jane@example.com, +44 20 7946 0958, 4111 1111 1111 1111")
    return analyzer
