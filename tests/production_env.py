"""What production settings require besides a secret key, for tests that import them in a fresh
interpreter (settings read the environment once, at import)."""

from __future__ import annotations

PRODUCTION_ENV = {
    "DJANGO_ALLOWED_HOSTS": "support.example.com",
    "DATABASE_URL": "postgresql://helpdesk:pw@db.internal:5432/helpdesk",
    "REDIS_URL": "redis://redis.internal:6379",
    "LLM_BASE_URL": "https://llm.internal/v1",
    "LLM_API_KEY": "sk-test",
    "METRICS_TOKEN": "a-long-random-scrape-token",
}
# Long and varied enough for helpdesk/keys.py.
PRODUCTION_SECRET_KEY = "production-test-key-" + "x7" * 30
