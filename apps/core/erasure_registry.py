"""Erasers of customer data kept by apps the erasure app cannot name (docs/architecture/erasure.md).

The erasure app sits at the top of the layers and imports every app's models. An app written later, or one
whose data the erasure app should not know the shape of (the memory app), registers a function here from
its `AppConfig.ready()` instead; the erasure service calls every registered eraser once per request, and
again when it verifies that nothing is left.

An eraser deletes (or scrubs) what the customer left in its app and returns how many rows it changed. It
must be idempotent: called again for the same customer it finds nothing and returns 0, which is how the
verification step proves it worked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

# (tenant_id, conversation_ids, contact_id) -> rows deleted or scrubbed
Eraser = Callable[[uuid.UUID, list[uuid.UUID], uuid.UUID | None], int]

_erasers: dict[str, Eraser] = {}


def erasure_register(name: str, eraser: Eraser) -> None:
    """Registers `eraser` under `name` (a short word used as the count's key in the erasure report).

    Registering the same name again replaces the function (a module reloaded by a test or a dev server).
    """
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"eraser name must be a short word, got {name!r}")
    _erasers[name] = eraser


def erasure_erasers() -> dict[str, Eraser]:
    """The registered erasers by name, in registration order."""
    return dict(_erasers)
