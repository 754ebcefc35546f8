"""`manage.py abstain_calibrate` and `manage.py model_profile` on a company's real published policies."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import Tenant
from apps.llm.profiles import profile_cache_clear, profile_current, style_for

pytestmark = pytest.mark.django_db

LABELLED = [
    {
        "question": "Do I pay extra for roaming in the European Union?",
        "answerable": True,
        "answer": "no extra charge",
    },
    {
        "question": "How much is the World Traveller pass per day?",
        "answerable": True,
        "answer": "8 euros per day",
    },
    {"question": "How long do I have to return a device?", "answerable": True, "answer": "within 14 days"},
    {"question": "Do you sell laptops?", "answerable": False},
    {"question": "What will the weather be in Berlin tomorrow?", "answerable": False},
    {"question": "Who is your chief executive?", "answerable": False},
]


def _labelled(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


def _faithful(body: dict[str, object]) -> str:
    """A model that restates the first policy sentence it was given."""
    messages = body["messages"]
    assert isinstance(messages, list)
    prompt = str(messages[-1]["content"])
    evidence = prompt.split("Policy sentences:", 1)[1].split('"""', 2)[1].strip()
    return evidence.split(". ")[0].rstrip(".") + "."


def test_abstain_calibrate_reports_the_trade_off_and_sets_the_threshold(kb_tenant, tmp_path):
    out = StringIO()
    call_command(
        "abstain_calibrate",
        "--tenant",
        kb_tenant.slug,
        "--questions",
        str(_labelled(tmp_path, LABELLED)),
        "--json",
        stdout=out,
    )
    report = json.loads(out.getvalue())
    assert (report["questions"], report["answerable"]) == (6, 3)
    # On these clear cases the chosen threshold separates them completely, with the facts shown.
    assert (report["answered_right"], report["false_answers"], report["abstained"]) == (3, 0, 3)
    kb_tenant.refresh_from_db()
    assert kb_tenant.abstain_threshold == pytest.approx(report["threshold"])


def test_abstain_calibrate_dry_run_keeps_the_threshold_and_bad_input_is_a_clear_error(kb_tenant, tmp_path):
    out = StringIO()
    call_command(
        "abstain_calibrate",
        "--tenant",
        kb_tenant.slug,
        "--questions",
        str(_labelled(tmp_path, LABELLED)),
        "--dry-run",
        stdout=out,
    )
    assert "Would set" in out.getvalue()
    assert Tenant.objects.get(pk=kb_tenant.pk).abstain_threshold is None
    with pytest.raises(CommandError, match="both answerable and unanswerable"):
        call_command(
            "abstain_calibrate",
            "--tenant",
            kb_tenant.slug,
            "--questions",
            str(_labelled(tmp_path, LABELLED[:3])),
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no label"}\n', encoding="utf-8")
    with pytest.raises(CommandError, match=r"bad\.jsonl:1"):
        call_command("abstain_calibrate", "--tenant", kb_tenant.slug, "--questions", str(bad))
    with pytest.raises(CommandError, match="No company"):
        call_command("abstain_calibrate", "--tenant", "nobody")


# The command reads the database from worker threads: the rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_model_profile_measures_support_and_auto_follows_it(kb_tenant, fake_llm, tmp_path, settings):
    questions = _labelled(tmp_path, LABELLED)
    profile_cache_clear()
    assert style_for(kb_tenant)[0] == "quote"  # never profiled: quote
    # A model that invents numbers: its sentences are dropped, the profile fails, auto stays quote.
    fake_llm.reply_text = "The pass costs 15 euros per day. Returns are accepted within 60 days."
    out = StringIO()
    call_command(
        "model_profile", "--tenant", kb_tenant.slug, "--questions", str(questions), "--json", stdout=out
    )
    report = json.loads(out.getvalue())
    assert (report["questions"], report["supported"]) == (3, 0)
    assert report["composed"] >= 3
    assert report["passes"] is False
    assert style_for(kb_tenant)[0] == "quote"
    # A faithful model passes once enough sentences were measured (20), and auto then composes.
    fake_llm.responder = _faithful
    many = _labelled(tmp_path, [row for row in LABELLED if row["answerable"]] * 7)
    call_command("model_profile", "--tenant", kb_tenant.slug, "--questions", str(many), "--json", stdout=out)
    profile = profile_current()
    assert profile is not None
    assert profile.composed >= 21
    assert (profile.supported, profile.passes) == (profile.composed, True)
    assert style_for(kb_tenant)[0] == "compose"
    kb_tenant.answer_style = "quote"  # the company's own choice wins
    assert style_for(kb_tenant) == ("quote", "the company chose to quote answers in its settings")


@pytest.mark.django_db(transaction=True)  # as above: read from worker threads
def test_model_profile_measures_a_registered_endpoint_and_its_auto_style_follows(
    kb_tenant, fake_llm, tmp_path
):
    from apps.llm.endpoints import endpoint_register
    from apps.llm.models import ModelProfile
    from apps.llm.profiles import style_auto
    from apps.llm.routing import route_for
    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI(models=["candidate-model"]) as candidate:
        endpoint = endpoint_register(
            tenant=None,
            name="Candidate",
            base_url=candidate.base_url,
            model="candidate-model",
            api_key="sk-candidate",
            style="auto",
            actor=None,
        )
        assert style_auto(route_for(endpoint))[0] == "quote"  # never measured
        candidate.responder = _faithful  # after the registration's probe
        many = _labelled(tmp_path, [row for row in LABELLED if row["answerable"]] * 7)
        before = len(fake_llm.chat_requests)
        out = StringIO()
        call_command(
            "model_profile", "--tenant", kb_tenant.slug, "--endpoint", "Candidate", "--questions", str(many),
            "--json", stdout=out,
        )  # fmt: skip
        report = json.loads(out.getvalue())
        assert (report["model"], report["base_url"]) == ("candidate-model", candidate.base_url)
        assert len(candidate.chat_requests) > 1, report
        assert len(fake_llm.chat_requests) == before  # only the endpoint was asked
    profile = ModelProfile.objects.get(model="candidate-model")
    assert profile.passes
    assert profile.composed >= 21
    profile_cache_clear()
    assert style_auto(route_for(endpoint))[0] == "compose"
    with pytest.raises(CommandError, match="No model endpoint"):
        call_command("model_profile", "--tenant", kb_tenant.slug, "--endpoint", "nothing-of-that-name")
