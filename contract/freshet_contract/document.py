"""How a contract document is read and written: the policy that keeps releases compatible.

Reading is tolerant of what it does not know: an unknown field is ignored, so
a newer writer (an operator or trainer one release ahead) never breaks an older
reader. Everything else stays strict: types are not coerced (``"0"`` is not a
seed), patterns and ranges hold, a missing required field is an error.

Writing leaves out what has no value: a field that is ``None`` is not sent at
all, so adding an optional field never puts a key on the wire that an older
reader has not heard of (a trainer before ``maxEnsembleSize`` refused
``"maxEnsembleSize": null``). A reader takes an absent optional field as its
default, which is ``None`` for every optional field of the contract, so leaving
it out means the same. The only exception is a field that is required even
when null (``RunSpec.baseline``): it is listed in ``always_written``.

Leaving out ``None`` is built into the models' serializer, so every
``model_dump`` does it; ``to_document`` and ``to_json_bytes`` are the one way
both sides write a document (camelCase keys, JSON types).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.alias_generators import to_camel

API_VERSION: Final = "freshet.dev/run/v1"


class Document(BaseModel):
    """Strict, immutable, tolerant of unknown fields; camelCase on the wire."""

    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    always_written: ClassVar[frozenset[str]] = frozenset()
    """Fields written even when ``None`` (required by readers of earlier releases).
    Their names must be the same in Python and on the wire."""

    @model_serializer(mode="wrap")
    def _leave_out_none(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        return {
            key: value
            for key, value in dumped.items()
            if value is not None or key in self.always_written
        }

    def to_json_bytes(self) -> bytes:
        """The document as it goes on the wire, indented for humans."""
        return to_json_bytes(self)


def to_document(document: Document) -> dict[str, Any]:
    """The document as a JSON object: camelCase keys, no ``None`` fields."""
    dumped: dict[str, Any] = document.model_dump(mode="json", by_alias=True)
    return dumped


def to_json_bytes(document: Document) -> bytes:
    """The document as JSON text (camelCase keys, no ``None`` fields, indented)."""
    return document.model_dump_json(by_alias=True, indent=2).encode()
