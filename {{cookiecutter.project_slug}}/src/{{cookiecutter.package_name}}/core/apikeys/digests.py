"""Making keys and their keyed digests: what is stored is HMAC-SHA256(SECRET_KEY, key)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from ..settings import Settings

# "<prefix>_<43 url-safe characters>": the prefix tells a leaked key's service at a glance
# (secret scanners match it), the rest carries 256 random bits.
PREFIX = "{{ cookiecutter.package_name.replace('_', '')[:12] }}"
KEY_PATTERN = re.compile("^" + PREFIX + "_[A-Za-z0-9_-]{43}$")


def new_key() -> str:
    """A new random key."""
    return f"{PREFIX}_{secrets.token_urlsafe(32)}"


def digest(secret: bytes, key: str) -> bytes:
    """The key's digest under one secret."""
    return hmac.new(secret, key.encode(), hashlib.sha256).digest()


def _secrets(settings: Settings) -> list[bytes]:
    keys = (settings.secret_key, *settings.secret_key_fallbacks)
    return [key.get_secret_value().encode() for key in keys]


def digests(settings: Settings, key: str) -> list[bytes]:
    """The key's digest under SECRET_KEY, then under each SECRET_KEY_FALLBACKS entry."""
    return [digest(secret, key) for secret in _secrets(settings)]


def secret_tag(secret: bytes) -> str:
    """A short name for a secret, safe to store and show: it reveals nothing of the secret."""
    return hmac.new(secret, b"api-key secret tag", hashlib.sha256).hexdigest()[:16]


def secret_tags(settings: Settings) -> list[str]:
    """The tags of SECRET_KEY, then of each fallback, in the order of digests()."""
    return [secret_tag(secret) for secret in _secrets(settings)]


def well_formed(key: str) -> bool:
    """Whether key has the shape of one of ours (anything else is refused without a query)."""
    return KEY_PATTERN.match(key) is not None
