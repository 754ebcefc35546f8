"""`make run` on a developer's machine: embedded services unless their URLs are set."""

from helpdesk.keys import local_secret_key, secret_key_refuse_weak
from helpdesk.settings.base import *  # noqa: F403
from helpdesk.settings.base import ALLOWED_HOSTS, LOCAL, env

DEBUG = env.bool("DJANGO_DEBUG", True)
# `make run`, its workers and a hand-run manage.py share var/secret_key: sessions and sealed secrets hold.
SECRET_KEY = env.optional("DJANGO_SECRET_KEY") or local_secret_key(LOCAL.var_dir)
secret_key_refuse_weak(secret_key=SECRET_KEY, debug=DEBUG, allowed_hosts=ALLOWED_HOSTS)
