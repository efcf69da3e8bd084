"""Signing deliveries as the Standard Webhooks specification says.

Each delivery carries three headers:

- ``webhook-id``: the message id, the same for every attempt of one job's delivery (a receiver
  deduplicates on it);
- ``webhook-timestamp``: the attempt's time, whole seconds since the epoch;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, once per
  secret, separated by spaces: during a rotation every secret signs, and a receiver holding
  any of them accepts.

Secrets are ``whsec_`` followed by base64 (:func:`generate_secret` makes one), or raw bytes.
No function here puts a secret, or a part of one, into an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

__all__ = ["SECRET_PREFIX", "decode_secret", "generate_secret", "sign", "signed_headers"]

#: The prefix of a secret's text form.
SECRET_PREFIX = "whsec_"


def generate_secret(size: int = 32) -> str:
    """A new random secret in its text form: ``whsec_`` and ``size`` bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def decode_secret(secret: str | bytes) -> bytes:
    """The key bytes of a secret (``whsec_<base64>``, plain base64, or raw bytes); a
    :class:`ValueError` that does not quote the secret for an empty or malformed one."""
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        text = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "a webhook secret must be 'whsec_' followed by base64 (see generate_secret())"
            ) from None
    else:
        raise ValueError(f"a webhook secret is a str or bytes, not {type(secret).__name__}")
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def sign(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode("ascii")
        for key in keys
    )


def signed_headers(
    keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, message_id, timestamp, body),
    }
