"""`make run` on a developer's machine: embedded services unless their URLs are set."""

from helpdesk.settings.base import *  # noqa: F403
from helpdesk.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", True)
