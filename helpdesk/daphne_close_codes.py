"""Daphne's websocket protocol, made to deliver the close codes of CONTRACTS.md §1 to the client.

Daphne 4.2 on autobahn 26 stood between a consumer's close code and the browser in three ways:

1. Daphne closes with autobahn's public `sendClose`, which takes only 1000 and 3000-4999 from an
   application. A consumer's `close(1008)` raised inside Daphne ("invalid close code"), the application
   instance died, and Daphne's crash handler sent 1011 instead. RFC 6455 §7.4.1 defines 1008 (policy),
   1009 (too big) and 1011 (server error) for either endpoint to send, and IANA registered 1012-1014
   (1013: try again later). `serverClose` below sends every code an endpoint may put on the wire through
   autobahn's lower-level `sendCloseFrame`: the call autobahn itself makes for its own 1002/1007/1009 and
   Daphne for 1011. It keeps the state machine as `sendClose` does (OPEN to CLOSING, `closedByMe`, the
   close-handshake timeout); only the range check differs, and a code no endpoint may send (1004-1006,
   1015, below 1000, 1016-2999) still raises.
2. autobahn fails a connection (a frame past the limit, invalid UTF-8, a framing error) by dropping TCP
   unless `failByDrop` is off, so the client saw 1006 and no reason. Off, it sends 1009, 1007 or 1002 and
   drops TCP only if no reply came within `closeHandshakeTimeout` (1 s).
3. The protocol layer refuses a frame longer than PROTOCOL_FRAME_BYTES as soon as its header arrives: the
   payload that follows is read and discarded as it comes, never buffered (Daphne's default allowed 1 MiB
   per frame). The limit sits above the consumers' own (apps/core/realtime.py, MAX_FRAME_BYTES), so that
   the application decides for every frame a real client could send; the protocol stops only what no
   client of ours sends. Such a refusal carries the same `message_too_long` error frame as the consumer's,
   then 1009. Whole messages stay bounded by Daphne's --websocket-max-message-size (1 MiB by default),
   which autobahn also applies to what we send, so it is left alone.

The two options are class attributes: autobahn copies a factory's option to a new connection only where the
protocol does not set its own (`WebSocketProtocol._connectionMade`), so these take precedence over what
Daphne configures, --websocket-max-frame-size included.

`install()` is called by helpdesk/asgi.py, so it applies wherever Daphne loads the application: `make run`
(helpdesk.stack.embedded.web_argv), tests/daphne.py, the Docker image and `manage.py runserver`. It must
run before Daphne accepts connections (Daphne imports the application first), and running it again
changes nothing.
"""

from __future__ import annotations

import json

from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

from apps.core.errors import error_frame
from apps.core.realtime import MAX_FRAME_BYTES, frame_too_big

PROTOCOL_FRAME_BYTES = 2 * MAX_FRAME_BYTES

# RFC 6455 §7.4.1 and the IANA registry: what a server may send. 1010 is the client's (a missing
# extension); 1004 is reserved; 1005, 1006 and 1015 only ever describe a close, they are never sent.
_SENDABLE_BELOW_3000 = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1013, 1014})


def close_code_sendable(code: object) -> bool:
    """Whether a server may put `code` in a close frame."""
    if not isinstance(code, int) or isinstance(code, bool):
        return False
    return code in _SENDABLE_BELOW_3000 or 3000 <= code <= 4999


class HelpdeskWebSocketProtocol(WebSocketProtocol):
    """Daphne's protocol with RFC close codes, failing by close handshake, and a frame limit."""

    failByDrop = False
    maxFramePayloadSize = PROTOCOL_FRAME_BYTES

    def serverClose(self, code: int | None = None) -> None:
        code = 1000 if code is None else code
        if not close_code_sendable(code):
            raise ValueError(f"a server may not send close code {code!r} (RFC 6455 §7.4)")
        self.sendCloseFrame(code=code, isReply=False)

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        """autobahn's hook for a frame or message past its limit: say why before it closes with 1009."""
        if self.state == self.STATE_OPEN and not self.muted:
            self.sendMessage(json.dumps(error_frame(frame_too_big())).encode(), isBinary=False)
        super()._max_message_size_exceeded(msg_size, max_msg_size, reason)


def install() -> None:
    """Makes Daphne build HelpdeskWebSocketProtocol for every websocket; idempotent."""
    if not hasattr(WebSocketProtocol, "_max_message_size_exceeded"):
        # The hook above is autobahn's private method: an upgrade that drops it must be looked at.
        raise RuntimeError("autobahn no longer has _max_message_size_exceeded: re-check this module")
    WebSocketFactory.protocol = HelpdeskWebSocketProtocol
