"""A customer's consent to be remembered, and what is remembered (docs/architecture/memory.md).

Both belong to a subject inside one company: a verified customer (`contact`) or, for an anonymous
visitor, the widget's visitor id (it lives in the session token the browser keeps). Exactly one of the
two is set, so a guest's memory is never merged into a customer's.

The source of a fact is recorded by id, not by foreign key: retention deletes messages in bulk and a
remembered preference the customer agreed to keep is not a quote of the message (it is one sentence
of it, redacted). Erasure deletes both models' rows of the subject (`services.memory_subject_erase`).
"""

from __future__ import annotations

from django.db import models

from apps.accounts.models import Contact, TenantScopedModel

TEXT_MAX = 200
_ONE_SUBJECT = (models.Q(contact__isnull=False) & models.Q(visitor_id__isnull=True)) | (
    models.Q(contact__isnull=True) & models.Q(visitor_id__isnull=False)
)


class MemoryConsent(TenantScopedModel):
    """One answer to the question, kept as it was asked: the wording shown (verbatim) and its version.
    The latest row of a subject is the answer in force; earlier rows are its history. A refusal is
    stored too (`granted` false), so the widget does not ask again."""

    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    visitor_id = models.UUIDField(null=True, blank=True)
    granted = models.BooleanField()
    wording = models.TextField()
    version = models.PositiveSmallIntegerField()
    given_at = models.DateTimeField()
    # "Stop remembering": the consent ends and every fact of the subject is deleted with it.
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-given_at"]
        constraints = [models.CheckConstraint(condition=_ONE_SUBJECT, name="memoryconsent_one_subject")]
        indexes = [
            models.Index(fields=["tenant", "contact", "-given_at"], name="memconsent_contact_idx"),
            models.Index(fields=["tenant", "visitor_id", "-given_at"], name="memconsent_visitor_idx"),
        ]

    def __str__(self) -> str:
        return f"memory consent {'granted' if self.granted else 'declined'} v{self.version}"

    @property
    def active(self) -> bool:
        return self.granted and self.withdrawn_at is None


class MemoryFact(TenantScopedModel):
    """One short statement of the customer about themselves, in their own redacted words.

    `slot` names what the statement is about when the extractor knows ("plan", "device", "language",
    "contact_channel", "contact_time"...): a newer statement on the same slot replaces the older one.
    `key` is what makes two statements the same (the slot, or the normalised text) for deduplication.
    """

    class Kind(models.TextChoices):
        FACT = "fact", "Fact"
        PREFERENCE = "preference", "Preference"

    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    visitor_id = models.UUIDField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    slot = models.CharField(max_length=32, blank=True)
    key = models.CharField(max_length=TEXT_MAX)
    text = models.CharField(max_length=TEXT_MAX)
    source_message_id = models.UUIDField()
    source_conversation_id = models.UUIDField()
    # The conversation's turn of the source message: a fact said in the current episode is already in
    # that conversation's own history, so the prompt leaves it out of what was "told us before".
    source_turn = models.PositiveIntegerField()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=_ONE_SUBJECT, name="memoryfact_one_subject"),
            models.CheckConstraint(
                condition=models.Q(kind__in=["fact", "preference"]), name="memoryfact_kind_valid"
            ),
            models.UniqueConstraint(
                fields=["tenant", "contact", "key"],
                condition=models.Q(contact__isnull=False),
                name="uniq_memoryfact_contact_key",
            ),
            models.UniqueConstraint(
                fields=["tenant", "visitor_id", "key"],
                condition=models.Q(visitor_id__isnull=False),
                name="uniq_memoryfact_visitor_key",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "contact", "created_at"], name="memfact_contact_idx"),
            models.Index(fields=["tenant", "visitor_id", "created_at"], name="memfact_visitor_idx"),
        ]

    def __str__(self) -> str:
        return f"memory {self.kind} {self.id}"
