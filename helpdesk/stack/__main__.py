import sys

from helpdesk.stack.supervisor import run

sys.exit(run())
