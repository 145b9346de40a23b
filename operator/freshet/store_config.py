"""Connection settings of a policy's object store, read from its Secret.

Pure: takes the Secret's ``data`` (base64, as the API returns it) and returns
typed settings. Credentials are kept out of ``repr`` so they never reach a log
line or an exception message.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

REQUIRED_KEYS = ("endpoint", "bucket", "accessKeyID", "secretAccessKey")
ACCESS_KEY_ID_KEY = "accessKeyID"
SECRET_ACCESS_KEY_KEY = "secretAccessKey"


class StoreSecretError(ValueError):
    """The store Secret lacks a key or has an unusable value; the message says which."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    secret_name: str
    endpoint: str
    bucket: str
    secure: bool
    region: str | None
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)


def parse_store_secret(secret_name: str, data: Mapping[str, str]) -> StoreConfig:
    """Decode a store Secret's ``data`` into a ``StoreConfig``.

    ``secure`` defaults to true: plain HTTP must be asked for explicitly, since
    it sends the credentials' signatures and the data in the clear.
    """
    values = {key: _decode(secret_name, key, raw) for key, raw in data.items()}
    missing = [key for key in REQUIRED_KEYS if not values.get(key)]
    if missing:
        raise StoreSecretError(f"Secret {secret_name} lacks key(s): {', '.join(missing)}")
    secure_text = values.get("secure", "true").strip().lower()
    if secure_text not in {"true", "false"}:
        raise StoreSecretError(
            f'Secret {secret_name}: key secure must be "true" or "false", got {secure_text!r}'
        )
    return StoreConfig(
        secret_name=secret_name,
        endpoint=values["endpoint"].strip(),
        bucket=values["bucket"].strip(),
        secure=secure_text == "true",
        region=values.get("region", "").strip() or None,
        access_key_id=values[ACCESS_KEY_ID_KEY],
        secret_access_key=values[SECRET_ACCESS_KEY_KEY],
    )


def _decode(secret_name: str, key: str, raw: str) -> str:
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise StoreSecretError(f"Secret {secret_name}: key {key} is not base64 UTF-8") from err
