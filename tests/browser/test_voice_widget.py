"""Voice in the customer widget, in a real Chromium whose fake microphone plays a question spoken by
espeak-ng: the recording goes to the real desk (Daphne), a real Celery worker on the `voice` queue
transcribes it with the real engine, the transcript lands in the message box, and the customer sends it
like anything typed. Answers read aloud: the browser's `speechSynthesis` is the boundary, so its `speak`
and `cancel` are wrapped to record what the widget asked of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import wave
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Tenant
from apps.conversations.models import Message
from apps.knowledge import ingestion
from apps.knowledge import services as knowledge
from apps.voice.models import VoiceClip
from apps.voice.services import voice_settings_update
from tests.browser.conftest import CHROMIUM
from tests.browser.test_widget import (
    FIRST_ANSWER_MS,
    FOCUSED,
    REFUNDS,
    answers_in,
    embed,
    open_widget,
    settle,
    shadow,
)
from tests.conftest import celery_worker_in_process

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SPOKEN = "Can I return a phone?"
# Synthetic speech is not perfect: one recognisable word of the question is enough.
HEARD = re.compile(r"return|phone", re.IGNORECASE)
# The first transcript pays for loading the speech model in the worker.
TRANSCRIPT_MS = 120_000

# The voice line under the composer, each state it shows, in order (the transient "Transcribing…" too).
RECORD_VOICE = """
() => {
  const root = document.querySelector('helpdesk-widget').shadowRoot;
  const bar = root.querySelector('.voice-bar');
  window.__voice = [];
  const snap = () => {
    const text = bar.querySelector('.rec-text').textContent;
    const line = bar.hidden ? '' : bar.getAttribute('data-state') + ':' + text;
    if (window.__voice[window.__voice.length - 1] !== line) window.__voice.push(line);
  };
  snap();
  const everything = { subtree: true, childList: true, characterData: true, attributes: true };
  new MutationObserver(snap).observe(bar, everything);
}
"""

# What the widget asked of the browser's speech synthesis (the boundary): nothing is really spoken.
WATCH_SPEECH = """
(() => {
  window.__spoken = [];
  window.__cancelled = 0;
  if (!window.speechSynthesis) return;
  window.speechSynthesis.speak = (utterance) => { window.__spoken.push(utterance.text); };
  window.speechSynthesis.cancel = () => { window.__cancelled += 1; };
})();
"""


@pytest.fixture
def company(make_tenant, host_site) -> Tenant:
    """Acme Mobile, whose website is `host_site`, with its refund policy published (answers quote it)."""
    tenant = make_tenant(slug="acme", name="Acme Mobile", origins=[host_site.origin])
    version = knowledge.document_upload(
        tenant=tenant,
        actor=None,
        upload=knowledge.Upload(filename="refunds.md", data=REFUNDS),
        title="Refund policy",
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    knowledge.version_publish(version=ready, actor=None)
    return tenant


@pytest.fixture(scope="module")
def spoken_question(tmp_path_factory) -> Path:
    """The question as espeak-ng says it: 48 kHz 16-bit mono PCM (what Chromium's fake microphone plays),
    with a little silence before and enough after that a few seconds of recording hold it once."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (`.ci/run` installs the Debian package)")
    folder = tmp_path_factory.mktemp("voice")
    raw = folder / "raw.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), SPOKEN], check=True, capture_output=True)
    if shutil.which("sox") is None:
        return raw
    wav = folder / "question.wav"
    subprocess.run(
        ["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(wav), "pad", "0.3", "3"],
        check=True,
        capture_output=True,
    )
    return wav


@pytest.fixture(scope="module")
def talking_browser(browser, spoken_question: Path):
    """A second Chromium of the same Playwright whose microphone plays the spoken question once (then
    silence); a page may use it only where its context allows the microphone."""
    talking = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={spoken_question}%noloop",
        ],
    )
    yield talking
    talking.close()


@pytest.fixture(scope="module")
def silent_browser(browser, tmp_path_factory):
    """A Chromium whose microphone hears nothing at all (digital silence)."""
    wav = tmp_path_factory.mktemp("silence") / "silence.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(b"\x00\x00" * 48000 * 6)
    quiet = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
        ],
    )
    yield quiet
    quiet.close()


@pytest.fixture
def talking_page(talking_browser, host_site) -> Iterator[Page]:
    """A page of `talking_browser` on which the company's website may use the microphone."""
    context = talking_browser.new_context()
    context.grant_permissions(["microphone"], origin=host_site.origin)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def refusing_page(talking_browser) -> Iterator[Page]:
    """A page of `talking_browser` where the visitor said no to the microphone."""
    context = talking_browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def voice_worker() -> Iterator[None]:
    with ExitStack() as stack:
        stack.enter_context(celery_worker_in_process(queues=("voice",)))
        yield


def voice_requests(page: Page) -> list[str]:
    """Every request the page makes to the desk's voice API, as "METHOD url"."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(f"{r.method} {r.url}") if "/voice" in r.url else None)
    return seen


def snap(page: Page, name: str) -> None:
    """Screenshots for a person to look at, when VOICE_SCREENSHOTS names a folder."""
    folder = os.environ.get("VOICE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def reopened(page: Page) -> None:
    """After a reload: the chat opens again by itself (it was open in this tab)."""
    expect(page.get_by_role("dialog", name="Chat with Acme Mobile")).to_be_visible(timeout=30_000)


def mic(page: Page):
    return shadow(page, "button.mic")


def test_hold_to_talk_the_transcript_is_checked_then_sent_and_answered(
    talking_page: Page, asgi_server, host_site, company: Tenant, llm, voice_worker
):
    answers_in(company, "quote")
    page = talking_page
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    page.evaluate(RECORD_VOICE)
    button = page.get_by_role("button", name="Record a voice message")
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-pressed", "false")

    # Push to talk: pressed while speaking, let go to stop.
    box = button.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    stop = page.get_by_role("button", name="Stop recording")
    expect(stop).to_have_attribute("aria-pressed", "true")
    bar = shadow(page, ".voice-bar")
    expect(bar).to_be_visible()
    expect(bar.locator(".rec-dot")).to_be_visible()
    expect(bar.locator(".rec-text")).to_have_text(re.compile(r"^Recording 0:0[2-9]$"), timeout=5_000)
    expect(shadow(page, ".voice-live")).to_have_text(
        "Recording. Release the button to stop, or press Escape to cancel."
    )
    snap(page, "voice-recording")
    page.wait_for_timeout(1_800)
    page.mouse.up()

    box_text = page.get_by_label("Your message")
    expect(box_text).to_have_value(HEARD, timeout=TRANSCRIPT_MS)
    snap(page, "voice-transcript")
    transcript = box_text.input_value()
    states = page.evaluate("window.__voice")
    assert "transcribing:Transcribing…" in states, states
    assert states[-1] == "", states
    expect(button).to_have_attribute("aria-pressed", "false")
    # Focused for the customer to check; nothing sent by itself.
    assert page.evaluate(FOCUSED) == "hd-input"
    expect(shadow(page, ".voice-live")).to_have_text(
        "Your words are in the message box: check them, then press Enter to send."
    )
    assert not Message.objects.filter(tenant=company, role=Message.Role.CUSTOMER).exists()
    clip = VoiceClip.objects.get(tenant=company)
    assert clip.status == VoiceClip.Status.DONE
    assert clip.audio_format == "webm"
    assert clip.transcript.strip() == transcript.strip()

    # Corrected by the customer, then sent the normal way, and answered.
    page.keyboard.press("End")
    page.keyboard.type(" Thanks")
    page.keyboard.press("Enter")
    mine = shadow(page, ".msg.customer")
    expect(mine).to_have_attribute("data-state", "sent", timeout=30_000)
    reply = shadow(page, ".msg.assistant")
    expect(reply).to_have_attribute("data-status", "complete", timeout=FIRST_ANSWER_MS)
    expect(reply.locator(".text")).to_contain_text("30 days")
    stored = Message.objects.get(tenant=company, role=Message.Role.CUSTOMER)
    assert stored.text == transcript.strip() + " Thanks"
    expect(mine.locator(".text")).to_have_text(stored.text)
    settle(page)


def test_cancel_or_escape_discards_the_recording_and_the_keyboard_starts_and_stops_it(
    talking_page: Page, asgi_server, host_site, company: Tenant, llm, voice_worker
):
    page = talking_page
    sent = voice_requests(page)
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    page.evaluate(RECORD_VOICE)
    panel = page.get_by_role("dialog", name="Chat with Acme Mobile")

    # Tab from the message box reaches the microphone; Space starts, Escape discards (the chat stays open).
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "secondary mic"
    page.keyboard.press("Space")
    expect(mic(page)).to_have_attribute("aria-pressed", "true")
    expect(mic(page)).to_have_attribute("aria-label", "Stop recording")
    expect(shadow(page, ".voice-live")).to_have_text(
        "Recording. Press the button again to stop, or press Escape to cancel."
    )
    page.wait_for_timeout(1_200)
    page.keyboard.press("Escape")
    expect(mic(page)).to_have_attribute("aria-pressed", "false")
    expect(mic(page)).to_have_attribute("aria-label", "Record a voice message")
    expect(shadow(page, ".voice-bar")).to_be_hidden()
    expect(shadow(page, ".voice-live")).to_have_text("Recording discarded.")
    expect(panel).to_be_visible()
    assert page.evaluate(FOCUSED) == "secondary mic"

    # A click starts it (a short press keeps recording); the Cancel button discards it.
    mic(page).click()
    cancel = page.get_by_role("button", name="Cancel recording")
    expect(cancel).to_be_visible()
    page.wait_for_timeout(1_200)
    cancel.click()
    expect(cancel).to_be_hidden()
    expect(mic(page)).to_have_attribute("aria-pressed", "false")
    page.wait_for_timeout(500)
    assert sent == [], sent
    assert not VoiceClip.objects.filter(tenant=company).exists()

    # Enter starts and Enter stops: this one is uploaded and transcribed.
    mic(page).focus()
    page.keyboard.press("Enter")
    expect(mic(page)).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(3_000)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Your message")).to_have_value(HEARD, timeout=TRANSCRIPT_MS)
    assert f"POST {asgi_server}/api/widget/v1/voice" in sent, sent
    assert VoiceClip.objects.filter(tenant=company).count() == 1


def test_a_recording_of_silence_gets_the_desks_sentence_and_nothing_in_the_box(
    silent_browser, asgi_server, host_site, company: Tenant, voice_worker
):
    context = silent_browser.new_context()
    context.grant_permissions(["microphone"], origin=host_site.origin)
    page = context.new_page()
    try:
        page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
        open_widget(page)
        mic(page).click()
        expect(mic(page)).to_have_attribute("aria-pressed", "true")
        page.wait_for_timeout(2_000)
        mic(page).click()
        expect(shadow(page, ".composer-error")).to_have_text(
            "We couldn't hear anything in that recording. Please try again closer to the microphone.",
            timeout=TRANSCRIPT_MS,
        )
        expect(shadow(page, ".voice-bar")).to_be_hidden()
        expect(mic(page)).not_to_have_attribute("aria-disabled", "true")  # ready for another try
        assert page.get_by_label("Your message").input_value() == ""
    finally:
        context.close()


def test_refusals_and_missing_features_are_explained_or_hidden(
    talking_page: Page, refusing_page: Page, page: Page, asgi_server, host_site, company: Tenant
):
    # The company turns voice off after the page loaded: the desk's own sentence, nothing stored.
    url = embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key)
    talking_page.goto(url)
    open_widget(talking_page)
    voice_settings_update(tenant=company, voice_enabled=False)
    mic(talking_page).click()
    expect(mic(talking_page)).to_have_attribute("aria-pressed", "true")
    talking_page.wait_for_timeout(1_000)
    mic(talking_page).click()
    expect(shadow(talking_page, ".composer-error")).to_have_text(
        "Voice messages are turned off for this chat. Please type your message instead.", timeout=15_000
    )
    expect(mic(talking_page)).to_have_attribute("aria-pressed", "false")
    expect(shadow(talking_page, ".voice-bar")).to_be_hidden()
    assert not VoiceClip.objects.filter(tenant=company).exists()
    # Loaded again, the widget's session says voice is off: no microphone is offered at all.
    talking_page.reload()
    reopened(talking_page)
    expect(shadow(talking_page, ".composer textarea")).to_be_visible()
    expect(mic(talking_page)).to_be_hidden()
    voice_settings_update(tenant=company, voice_enabled=True)

    # The visitor refused the microphone: a clear sentence where the widget says what went wrong.
    refusing_page.goto(url)
    open_widget(refusing_page)
    mic(refusing_page).click()
    expect(shadow(refusing_page, ".composer-error")).to_have_text(
        "Your browser didn't allow the microphone. To talk instead of typing, allow microphone access for "
        "this site in your browser's settings.",
        timeout=15_000,
    )
    expect(mic(refusing_page)).to_have_attribute("aria-pressed", "false")
    expect(shadow(refusing_page, ".voice-bar")).to_be_hidden()

    # No microphone at all (the ordinary test browser has none).
    page.goto(url)
    open_widget(page)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(shadow(page, ".composer-error")).to_have_text(
        "We couldn't find a microphone on this device. Please type your message instead.", timeout=15_000
    )

    # A browser without recording or speech synthesis shows neither control.
    page.add_init_script("delete window.MediaRecorder; delete window.speechSynthesis;")
    page.goto(url)
    reopened(page)
    expect(shadow(page, ".composer textarea")).to_be_visible()
    expect(mic(page)).to_be_hidden()
    expect(shadow(page, "button.speak")).to_be_hidden()


def test_read_aloud_is_remembered_and_speaks_each_completed_answer(
    page: Page, asgi_server, host_site, company: Tenant, llm
):
    answers_in(company, "quote")
    page.add_init_script(WATCH_SPEECH)
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    toggle = page.get_by_role("button", name="Read answers aloud")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    key = f"helpdesk:{company.widget_key}:speak"
    assert page.evaluate(f"localStorage.getItem('{key}')") == "1"

    # Remembered for this visitor across a reload.
    page.reload()
    reopened(page)
    toggle = page.get_by_role("button", name="Read answers aloud")
    expect(toggle).to_have_attribute("aria-pressed", "true")

    box = page.get_by_label("Your message")
    box.fill("How many days do I have to return a phone?")
    box.press("Enter")
    reply = shadow(page, ".msg.assistant").last
    expect(reply).to_have_attribute("data-status", "complete", timeout=FIRST_ANSWER_MS)
    stored = Message.objects.get(tenant=company, role=Message.Role.ASSISTANT)
    # The final stored text, once, without the source markers.
    page.wait_for_function("window.__spoken.length > 0")
    spoken = page.evaluate("window.__spoken")
    unmarked = re.sub(r"\s*\[\d+\]", "", stored.text).replace("\u201c", "").replace("\u201d", "")
    assert spoken == [unmarked.strip()]
    assert "[1]" not in spoken[0]

    # A new answer starting silences the old one; then it is read too.
    cancelled = page.evaluate("window.__cancelled")
    box.fill("What is the late payment fee?")
    box.press("Enter")
    expect(shadow(page, ".msg.assistant")).to_have_count(2, timeout=30_000)
    page.wait_for_function(f"window.__cancelled > {cancelled}")
    expect(shadow(page, ".msg.assistant").last).to_have_attribute("data-status", "complete", timeout=60_000)
    page.wait_for_function("window.__spoken.length === 2")

    # Off: the speech in progress stops, the choice is remembered, and the next answer is not read.
    cancelled = page.evaluate("window.__cancelled")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("window.__cancelled") == cancelled + 1
    page.reload()
    reopened(page)
    expect(page.get_by_role("button", name="Read answers aloud")).to_have_attribute("aria-pressed", "false")
    assert page.evaluate(f"localStorage.getItem('{key}')") is None
    # Replayed answers are never read out on a reload.
    assert page.evaluate("window.__spoken") == []
