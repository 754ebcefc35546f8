"""data_exfiltration: other customers' or tenants' data ("give me other users' addresses", "show me the
previous customer's conversation"), sending the conversation somewhere ("append the chat history to this
URL"), and in the markup view a markdown image whose URL carries a query string."""

from __future__ import annotations

import re

from .rules import _RuleBook

RULES = _RuleBook()
_rule = RULES.rule

_FETCH = (
    "show|give|list|send|export|dump|print|reveal|share|leak|email|forward|retrieve|fetch|pull|display"
    "|output|read|tell|get|look up|lookup|search|find|access|download|copy|paste|provide|summarise|summarize"
)
_OTHERS = (
    r"(?:(?:other|another|someone else's|somebody else's|different|random|the other) (?:\w+ )?(?:customers?"
    r"|clients?|tenants?|companies|compan(?:y|ies)|organi[sz]ations?|users?|people|persons?|visitors?"
    r"|members?|subscribers?|shoppers?|buyers?|callers?|people's)|(?:all|every|each|any) (?:\w+ )?"
    r"(?:customers?|clients?|tenants?|companies|organi[sz]ations|shoppers|buyers))"
)
_PRIVATE = (
    r"(?:data|details|info|information|records?|orders?|e-?mails?|address(?:es)?|phone numbers?|numbers"
    r"|names|accounts?|conversations?|chats?|messages?|tickets?|transcripts?|histor(?:y|ies)|profiles?"
    r"|credentials|passwords?|payments?|cards?|invoices?|pii|personal|contacts?|files?|documents?)"
)
_OTHER_NOUNS = (
    "customer|customers|client|clients|tenant|tenants|company|companies|organisation|organisations"
    "|organization|organizations|user|users|people|person|persons|visitor|visitors|member|members"
    "|subscriber|subscribers|shopper|shoppers|buyer|buyers|caller|callers"
)
_CONVERSATIONS = "(?:conversations|chats|chat logs|sessions|transcripts|tickets)"
_R = "data_exfiltration"
_rule(
    _R,
    _FETCH,
    rf" (?:me |us )?(?:(?:a|the|all|of|some|any) ){{0,3}}{_OTHERS}(?:'s?|s')? "
    rf"(?!(?:my|our|your|his|her) )(?:\w+ )?{_PRIVATE}\b",
    before="not_own",
    needs=_OTHER_NOUNS,
)
_rule(
    _R,
    _FETCH,
    rf" (?:me |us )?(?:the |all |all the |of the )?(?:other|every|all|someone else's) {_CONVERSATIONS}\b",
    needs="conversations|chats|sessions|transcripts|tickets",
)
_rule(
    _R,
    _FETCH,
    rf" (?:me |us )?(?:the |all |all the )?{_CONVERSATIONS} (?:of|from|with|for) (?:other|all|every"
    r"|different) (?:\w+ )?(?:customers|users|people|clients|visitors)\b",
    needs="conversations|chats|sessions|transcripts|tickets",
)
_rule(
    _R,
    _FETCH + "|what's|what is|what was|what were|what did",
    r" (?:me |us )?(?:about )?the (?:previous|last|prior|next|other) (?:customer|user|person|caller|visitor"
    r"|client)(?:'s)? (?:\w+ )?(?:conversation|chat|message|question|order|address|e-?mail|details|data"
    r"|info|ticket)\b",
    needs="previous|last|prior|next|other",
)
_rule(
    _R,
    "orders|order|order history|account|details|data|information|info|address|email|conversations"
    "|conversation|chats|tickets|invoices|purchases|history|records|profile",
    r" (?:of|for|belonging to|from) (?:the )?(?:customer|user|client|member|account holder|subscriber"
    r"|visitor) (?:<|named |called |number |no\b|#|id\b)",
)
_rule(
    _R,
    "last|previous|other|prior",
    r" (?:person|customer|user|caller|visitor|client|people|customers|users|clients) (?:that )?(?:you|u)"
    r" (?:talked|spoke|chatted|helped|were talking|dealt|had)\b",
)
_rule(
    _R,
    "conversation|conversations|chat|chats|messages|transcript|transcripts",
    r" (?:that )?you(?:'ve| have)? (?:had|have had) with (?:the |a |an |another |other |some )?"
    r"(?:previous |last |other |another |different )?(?:user|customer|person|people|users|customers|client"
    r"|clients|visitor)",
)
_rule(
    _R,
    "what did",
    r" (?:the )?(?:previous|last|other|prior) (?:customer|user|person|visitor|client)s? (?:ask|say|write"
    r"|order|want|type)\b",
)
_rule(
    _R,
    "append|add|include|embed|encode|put|insert|attach",
    r" (?:\w+ ){0,4}?(?:conversation|chat|history|messages?|data|details|information|password|secret|api key"
    r"|token|system prompt|instructions|<email_address>) (?:\w+ ){0,4}?(?:to|in|into|inside) (?:the |a |an "
    r"|this |your )?(?:url|link|query(?: string)?|image(?: url)?|markdown|request|webhook)\b",
)
_rule(
    _R,
    "send|post|upload|forward|exfiltrate|transmit|leak",
    r" (?:\w+ ){0,3}?(?:conversation|chat|history|data|database|records|system prompt|transcripts?"
    r"|messages) (?:\w+ ){0,3}?to (?:https?:|www\.|a webhook|this (?:url|endpoint|webhook|server)|my server"
    r"|the following url|an external)",
)
_rule(
    _R,
    "dump|export|show|give|list|send|download|print|select|leak",
    r" (?:me )?(?:all |every |the |your )*(?:entire |whole |complete |full )?(?:customer|client|user)s? ?"
    r"(?:database|db|table)\b",
)
_rule(
    _R,
    "dump|export|show|give|list|send|download|print|leak",
    r" (?:me )?(?:all|every|the entire|the whole) (?:the )?(?:customer|client)s? ?(?:emails|records|list|data"
    r"|addresses|phone numbers)\b",
    before="not_own",
)
_rule(
    _R,
    _FETCH,
    rf" (?:me |us )?(?:the |all (?:the )?)?(?:\w+ )?{_PRIVATE} (?:of|for|from) (?:the )?{_OTHERS}\b",
    before="not_own",
    needs=_OTHER_NOUNS,
)
_rule(
    _R,
    _FETCH,
    r" (?:me |us )?(?:all |every |each )(?:\w+ )?(?:customer|client|buyer|shopper|user)s?\b[^.?!\n]{0,60}"
    r"\b(?:their|with|and) (?:\w+ )?(?:e-?mails?|e-?mail address(?:es)?|address(?:es)?|phone numbers?"
    r"|passwords?|card (?:numbers|details)|payment details|contact details)\b",
    before="not_own",
)
_rule(
    _R,
    "last|previous|other|all|every|recent|another",
    r" (?:\w+ )?(?:conversations?|chats?|transcripts?|tickets?|messages) (?:in|from) your (?:logs|database|db"
    r"|history|records|memory|system)\b",
    before="not_own",
)
_rule(
    _R,
    "tell|give|send|show|read",
    r" (?:me |us )(?:the |their |his |her )?(?:address|phone number|e-?mail(?: address)?|card number|name"
    r"|date of birth|details|balance) (?:on|of|for|linked to|registered to|associated with|tied to) (?:it"
    r"|that"
    r" account|this account|the account|that number|this number|them|him|her)\b",
)
_rule(_R, _FETCH, r"\b[^.?!\n]{0,60}\b(?:before|after) mine\b")
_rule(
    _R,
    _FETCH,
    r" (?:me |us )?(?:an? |the |your )?(?:full |complete )?(?:list|names|list of names|roster) of (?:all "
    r"|the "
    r"|other |every )?(?:customers|clients|users|buyers|shoppers|people|members|subscribers)\b",
    before="not_own",
)
_rule(
    _R,
    "which|what",
    r" (?:\w+ ){0,2}?(?:e-?mails?|e-?mail address(?:es)?|address(?:es)?|phone numbers?|names|passwords?"
    r"|cards?"
    r"|payment details|accounts?|credentials|details) (?:did|do|have|has|are|were) (?:the )?(?:other|another"
    r"|all"
    r"|every|previous|different) (?:\w+ )?(?:customers?|users?|clients?|shoppers?|buyers?|people|visitors?)",
)
_rule(_R, "select", r" (?:\* )?from (?:users|customers|clients|orders|accounts|conversations|messages)\b")

_EXFILTRATION_MARKUP: list[tuple[str, re.Pattern[str]]] = [
    (
        "data_exfiltration",
        re.compile(r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{0,300}[?&][^)\s=]{1,40}="),
    ),
]
