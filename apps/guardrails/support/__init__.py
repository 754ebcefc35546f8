"""Is a model-written sentence supported by the verbatim evidence it was written from?

In the assistant's `compose` style a language model (from a 135M model that invents numbers to a
GPT-4-class one) writes up to three sentences from policy sentences the customer is also shown. Each
sentence goes through `support_check` before it is shown; an unsupported one never is. The checker is pure
Python and deterministic: about 0.3 ms per sentence against a few policy paragraphs, the evidence analysis
cached per passage. It is tuned so that a false pass is rarer than a false fail: a refused faithful
sentence costs some fluency (the verbatim evidence is shown anyway), a shown invented one costs trust.

A sentence is supported only if every rule holds; each failure adds a machine-readable reason.

- `number:<text>`: every quantity is in the evidence, or in the question. Quantities are normalised:
  number words ("three" == "3", "a dozen" == 12), money ("€12" == "12 euros" == "EUR 12" == "€12.00"; £,
  $, cents; with its rate: "€6 per day" != "€6 per month", and a sentence that leaves the rate out may
  match any rate), percentages, durations ("30-day" == "30 days", "two years" == "24 months"; number and
  unit both, and "working days" needs working days), data sizes, times ("4pm" == "16:00"), weekdays,
  months, dates, ordinals, rates without a number ("every month", "per day") and time units said alone
  ("for the rest of the year"). A bare number matches a bare number or ordinal. A quantity in the question
  supports only the same kind and unit: "20 GB" typed by the customer does not support "€20".
- `name:<text>`: capitalised multi-word names, codes, acronyms and mid-sentence proper nouns ("Zone 2",
  "Travel Pass", "PAC", "eSIM", "NM-100234") appear in the evidence or the question, case-insensitively,
  allowing plurals and possessives ("Zones 2 and 3" supports "Zone 3"). A sentence's first word counts as
  part of a name only if the evidence never writes it in lower case ("Zone 2 costs", not "Call 150").
- `overlap`: at least 60 % (OVERLAP_MIN) of the content words (stopwords and quantities removed; plural,
  -ed, -ing, -ly stripped; a few synonyms folded: cost/charge/fee/price/pay, move/transfer, ...) occur in
  the evidence or the question. Every faithful paraphrase in the tests is at 80 % or more, most at 100 %;
  claims from elsewhere are at 0-30 %.
- `novel:<word>`: a content word found in neither, and not one of a few words paraphrases bring in
  without adding a fact (period, stay, include, apply, last, mean, ...), is a new fact ("done in a Nimbus
  store", "faults on our network"); it is tolerated only when 85 % (NOVEL_OVERLAP_MIN) of the sentence is
  covered. This, not the 60 % floor, is what catches one invented detail in an otherwise faithful sentence.
- `binding:<text>`: a quantity found in the evidence must belong to what the sentence says of it. The
  evidence sentences holding it must share at least 75 % as many of the quantity's phrase words (up to the
  nearest "and"/"or", names and its own unit left out) as the best evidence sentence does ("If our engineer
  misses your appointment, we credit €65" when €65 is the wiring call-out charge); and a quantity beside a
  numbered name must not be, in the evidence, beside a sibling of that name ("€12 per day in Zone 2" when
  €12 is Zone 3's price).
- `negation`: each clause of the sentence is matched to the evidence clause sharing the most words,
  names (numbered ones count most, and a clause about "Zone 1" never matches one about "Zone 3") and
  quantities; a whole evidence sentence competes when it matches better than each of its clauses. Their
  negation polarity must agree (a false negation and a dropped one both fail), so must their "free"
  polarity (calling something free needs a free clause; pricing something the evidence calls free fails),
  and when both are negated the negation must deny the same word ("we refund the charge if the phone
  wasn't faulty" against "we do not refund the charge unless the phone was faulty"). Cues: not, no, never,
  n't, cannot, without, none, nothing, non-, unable, and implicit ones (miss, fail, refuse, lack). Phrases
  shaped like negation that mean "free" ("at no extra cost", "costs nothing extra", "we never charge")
  set the free polarity instead, on both sides, and "no later than", "not only" are neutral. "No," opening
  an answer negates the claim unless the claim carries its own negation or such a phrase ("No, it isn't
  free", "No, we never charge for it"); "Yes," is dropped. A named thing denied earlier in the same passage
  ("If you do not have a Travel Pass, standard rates apply. In Zone 2, calls cost €1.20") is a condition:
  "Without a Travel Pass, calls in Zone 2 cost €1.20" passes.
- `antonym:<word>`: the matched evidence clause has the opposite of a word in a short list (before/after,
  early/late, next/same, automatically/manually, full/partial, ...) or its un-/in-/dis-/non- form.
- `scope:<word>`: a narrowing word of the matched clause must survive ("each further transfer", "unless",
  "the first three"), and each widening word of the sentence (all, always, forever, unlimited, ...) must
  be in that clause as often: "Unlimited plans can use up to 35 GB" does not support "unlimited data".
- `filler`: courtesy sentences ("I hope this helps.", "Let me know if you have other questions.") and
  sentences with fewer than two content words and no quantity or name.
- `too_long`: more than 60 words.

Known limits (passing means consistent with the evidence's words, numbers and polarity, not proven true):

- Meaning carried by roles and order is invisible: "refunded within 14 days" passes against "return
  within 14 days for a full refund", as do swapped conditions between clauses of one sentence, modality
  ("we will add" for "we may add"), who does what to whom, antonyms outside the list ("waived"), and
  conditions left out ("we credit €9 per day" without "after two working days").
- Two quantities swapped inside one evidence sentence with no name to tell them apart ("receiving calls
  costs €1.20" when, in the same sentence, making calls costs €1.20 and receiving €0.80) pass.
- Polarity is per clause, by cue words. Faithful sentences that turn a negation into a positive ("down for
  more than two days" for "not fixed within two days", "only refunded if faulty" for "not refunded unless
  faulty"), or drop a negated half of a clause, are refused; so is "No, getting a PAC is free" (the "No,"
  negates a claim with no negation of its own), and "respectively" pairings are not followed.
- A faithful synonym the lists lack ("arrive" for "deliver", "cause" for "be responsible") is a novel
  word; a question is needed for topic words the evidence leaves implicit ("roaming" in "Zone 1").
- Quantities are compared by value and unit, not arithmetic: "two weeks" == "14 days", but "a
  fortnight", "half an hour" and "one-thirtieth" are not numbers, and "12-month period" is not "a year".
- Names are found by capitalisation; a lower-case invented name is caught only as a novel word.

The package, lowest layer first:

- `splitting`: an answer cut into sentences, whole (`sentences_split`) or streamed (`SentenceBuffer`).
- `tokens`: a sentence normalised and tokenised.
- `quantities`: number, money, duration, data-size, time and date words; quantities parsed and compared.
- `vocabulary`: stopwords, negation cues, stems, synonyms, antonyms, scope and generic words.
- `names`: capitalised names, codes and acronyms, and the text as singular words to find them in.
- `clauses`: a sentence cut into clauses, each with its negation, "free" and scope words.
- `evidence`: the evidence and the question analysed, once per passage.
- `check`: `support_check` and its rules.
"""

from __future__ import annotations

from .check import OVERLAP_MIN, SupportVerdict, support_check
from .splitting import SentenceBuffer, sentences_split

__all__ = ["OVERLAP_MIN", "SentenceBuffer", "SupportVerdict", "sentences_split", "support_check"]
