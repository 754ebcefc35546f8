"""The test suite. The harness (tests/harness.py) starts PostgreSQL+pgvector and Valkey and sets the URLs."""

from helpdesk.keys import local_secret_key, secret_key_refuse_weak
from helpdesk.settings.base import *  # noqa: F403
from helpdesk.settings.base import ALLOWED_HOSTS, DATABASES, LOCAL, database_options, env

DEBUG = False
# The harness points HELPDESK_VAR_DIR at its own directory: each session has a key of its own, shared with
# the Daphne and Celery processes tests start (sessions and sealed secrets made here open there).
SECRET_KEY = env.optional("DJANGO_SECRET_KEY") or local_secret_key(LOCAL.var_dir)
secret_key_refuse_weak(secret_key=SECRET_KEY, debug=DEBUG, allowed_hosts=ALLOWED_HOSTS)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "10000/min", "anon": "10000/min"}}  # noqa: F405
# Every stored event rendered must match its model (apps/core/event_types).
EVENTS_STRICT = True
# pytest-django's non-transactional tests see only the main thread's connection, inside their transaction:
# database calls stay thread-sensitive and unpooled here unless the environment turns them on, as
# tests/daphne.py does for every real Daphne a test starts.
DB_ASYNC_THREADS = env.int("DB_ASYNC_THREADS", 0)
DATABASE_POOL_MAX = env.int("DATABASE_POOL_MAX", 0)
DATABASES["default"]["OPTIONS"] = database_options(
    DATABASES["default"].get("OPTIONS"), pool_max=DATABASE_POOL_MAX
)
# Tests export spans nowhere, whatever the environment says (replies still store their own).
OTEL_EXPORTER_OTLP_ENDPOINT = None
# Every instrumentation, though nothing is exported: the suite covers the per-query spans too.
HELPDESK_TRACE_LIBRARIES = "all"
