"""Erasure tests share the conversation tests' clean Redis state (partial replies, turn markers)."""

from tests.conversations.conftest import _fresh_realtime_state  # noqa: F401  (an autouse fixture)
