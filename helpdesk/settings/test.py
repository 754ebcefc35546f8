"""The test suite. The harness (tests/harness.py) starts PostgreSQL+pgvector and Valkey and sets the URLs."""

from helpdesk.settings.base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "10000/min", "anon": "10000/min"}}  # noqa: F405
