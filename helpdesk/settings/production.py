"""Production: every service is external and every secret comes from the environment, without defaults."""

from helpdesk.settings.base import *  # noqa: F403
from helpdesk.settings.base import env

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    from helpdesk.env import ConfigError

    raise ConfigError("DJANGO_ALLOWED_HOSTS is empty: list the public host names, comma-separated")
# Production starts no embedded service: each of these must be set (env.str raises naming the variable).
for _required in ("DATABASE_URL", "REDIS_URL", "LLM_BASE_URL", "LLM_API_KEY"):
    env.str(_required)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
