"""Companies' API secrets are sealed at rest and survive a rotation of SECRET_KEY with a fallback."""

from __future__ import annotations

import pytest

from apps.core.sealing import PREFIX, SealBroken, seal, unseal


def test_a_sealed_secret_opens_and_does_not_show_itself(settings) -> None:
    sealed = seal("tok-3f9a-very-secret")
    assert sealed.startswith(PREFIX)
    assert "tok-3f9a" not in sealed
    assert sealed != seal("tok-3f9a-very-secret")  # a fresh IV each time
    assert unseal(sealed) == "tok-3f9a-very-secret"
    assert (seal(""), unseal("")) == ("", "")


def test_rotation_keeps_secrets_readable_only_while_the_old_key_is_a_fallback(settings) -> None:
    settings.SECRET_KEY = "old-key-" + "x" * 40
    sealed = seal("tok")
    settings.SECRET_KEY = "new-key-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = ["old-key-" + "x" * 40]
    assert unseal(sealed) == "tok"
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(SealBroken):
        unseal(sealed)


def test_a_value_stored_before_sealing_is_read_as_it_is() -> None:
    assert unseal("plain-legacy-token") == "plain-legacy-token"
