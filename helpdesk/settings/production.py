"""Production: every service is external and every secret comes from the environment, without defaults."""

from helpdesk.settings.base import *  # noqa: F403
from helpdesk.settings.base import env

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    from helpdesk.env import ConfigError

    raise ConfigError("DJANGO_ALLOWED_HOSTS is empty: list the public host names, comma-separated")
DATABASE_URL = env.str("DATABASE_URL")
REDIS_URL = env.str("REDIS_URL")
LLM_BASE_URL = env.str("LLM_BASE_URL")
LLM_API_KEY = env.str("LLM_API_KEY")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
