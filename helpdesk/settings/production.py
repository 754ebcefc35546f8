"""Production: every service is external and every secret comes from the environment, without defaults."""

from helpdesk.keys import secret_key_refuse_weak
from helpdesk.settings.base import *  # noqa: F403
from helpdesk.settings.base import env

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    from helpdesk.env import ConfigError

    raise ConfigError("DJANGO_ALLOWED_HOSTS is empty: list the public host names, comma-separated")
secret_key_refuse_weak(secret_key=SECRET_KEY, debug=DEBUG, allowed_hosts=ALLOWED_HOSTS)
# Production starts no embedded service: each of these must be set (env.str raises naming the variable).
for _required in ("DATABASE_URL", "REDIS_URL", "LLM_BASE_URL", "LLM_API_KEY"):
    env.str(_required)
# /metrics names every tenant: production never serves it without a bearer token (nor does the view,
# outside a local setup, whatever the settings module).
METRICS_TOKEN = env.str("METRICS_TOKEN")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Browsers that once reached the desk over HTTPS refuse plain HTTP to it for this long (HSTS; sent only
# on HTTPS responses). A year is what the preload list asks; subdomains and preloading bind every host
# under the domain, possibly for months, so they are the operator's explicit choice.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Plain HTTP is redirected to HTTPS, except the probes load balancers and Prometheus send inside the
# network (the Docker HEALTHCHECK calls http://127.0.0.1:8000/healthz). Turn it off when the proxy in
# front already redirects, or to try these settings over plain http.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_CONTENT_TYPE_NOSNIFF = True

# A production model server (vLLM, OpenAI) batches many streams: no per-process limit unless one is set.
LLM_MAX_CONCURRENT_STREAMS = env.int("LLM_MAX_CONCURRENT_STREAMS", 0)
