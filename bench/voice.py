"""Speech-to-text speed and accuracy of the local voice engine on speech generated with espeak-ng.

    .venv/bin/python bench/voice.py [--limit N] [--beam-size 5] [--threads 2]

Each question of ../shared/acceptance/demo_answers.jsonl (field `q`; bench/data/questions.jsonl when that
is absent; or --questions FILE) is spoken by
espeak-ng into a WAV, then transcribed through the product's own path (apps/voice/engine.py: PyAV decode,
Silero VAD, faster-whisper with the bundled tiny.en model, int8). Per clip: audio length, transcription
time and the real-time factor (time / length; below 1 is faster than real time). Overall: RTF p50/p95 and
the word error rate (substitutions + deletions + insertions over reference words, after lower-casing and
dropping punctuation; `jiwer` is used when installed, else the edit distance below).

espeak-ng's voice is synthetic and flat, so the WER here is not what a person at a microphone gets; it is
the same input every run, so it compares engines and settings. The model load is timed apart.

Prints one line per clip and, last, one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The shared acceptance set when this checkout has it, else the labelled questions in bench/data.
ACCEPTANCE = ROOT.parent / "shared" / "acceptance" / "demo_answers.jsonl"
LABELLED = ROOT / "bench" / "data" / "questions.jsonl"


def configure(*, beam_size: int, threads: int) -> None:
    """The settings the engine reads, without a database or a running desk."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            TRANSCRIBE_BASE_URL=None,
            VOICE_MAX_SECONDS=600,
            VOICE_LANGUAGE="en",
            VOICE_MODEL_PATH="",
            VOICE_CPU_THREADS=threads,
            VOICE_BEAM_SIZE=beam_size,
            LLM_BREAKER_FAILURES=3,
            LLM_BREAKER_RESET_SECONDS=30.0,
        )


def normalise(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, 1):
        current = [i]
        for j, heard in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != heard)))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, reference words) after normalising both."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    try:
        import jiwer

        if not ref:
            return len(hyp), 0
        out = jiwer.process_words(" ".join(ref), " ".join(hyp) or "")
        return out.substitutions + out.deletions + out.insertions, len(ref)
    except ImportError:
        return edit_distance(ref, hyp), len(ref)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _question(row: dict[str, object]) -> str:
    return str(row.get("q") or row.get("question") or "")


def speak(text: str, path: Path) -> None:
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--questions", type=Path, default=ACCEPTANCE if ACCEPTANCE.exists() else LABELLED)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    questions = [
        _question(json.loads(line)) for line in args.questions.read_text().splitlines() if line.strip()
    ]
    if args.limit:
        questions = questions[: args.limit]
    configure(beam_size=args.beam_size, threads=args.threads)
    from apps.voice import engine
    from apps.voice.formats import AudioFormat

    started = time.monotonic()
    engine.whisper_model()
    load_s = time.monotonic() - started
    print(
        f"model loaded in {load_s:.2f}s "
        f"({os.cpu_count()} CPUs, {args.threads} threads, beam {args.beam_size})"
    )
    rows = []
    total_errors = total_words = 0
    with tempfile.TemporaryDirectory() as folder:
        for n, question in enumerate(questions, 1):
            wav = Path(folder) / f"q{n}.wav"
            speak(question, wav)
            result = engine.transcribe(data=wav.read_bytes(), audio_format=AudioFormat.WAV)
            length = result.duration_s or 0.0
            errors, words = word_errors(question, result.text)
            total_errors += errors
            total_words += words
            rtf = result.seconds / length if length else float("nan")
            rows.append({"audio_s": length, "transcribe_s": result.seconds, "rtf": rtf, "errors": errors})
            print(
                f"{n:3d}  audio {length:5.2f}s  took {result.seconds:5.2f}s  rtf {rtf:4.2f}  "
                f"errors {errors}/{words}  {question!r} -> {result.text!r}"
            )
    rtfs = [row["rtf"] for row in rows]
    summary = {
        "clips": len(rows),
        "model_load_s": round(load_s, 3),
        "audio_s_total": round(sum(row["audio_s"] for row in rows), 2),
        "transcribe_s_total": round(sum(row["transcribe_s"] for row in rows), 2),
        "rtf_p50": round(statistics.median(rtfs), 3) if rtfs else None,
        "rtf_p95": round(percentile(rtfs, 0.95), 3) if rtfs else None,
        "wer": round(total_errors / total_words, 3) if total_words else None,
        "word_errors": total_errors,
        "reference_words": total_words,
        "beam_size": args.beam_size,
        "threads": args.threads,
        "questions_file": str(args.questions),
    }
    print(
        f"RTF p50 {summary['rtf_p50']}  p95 {summary['rtf_p95']}  WER {summary['wer']} "
        f"({total_errors}/{total_words} words)"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
