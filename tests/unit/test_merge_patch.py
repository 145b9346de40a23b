"""Status is written as a JSON merge patch that removes what disappeared, at any depth."""

from __future__ import annotations

from typing import Any

import pytest
from freshet.status import merge_patch


def apply(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 apply, to check the patch does what it says."""
    out = dict(doc)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = apply(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    ("current", "desired", "patch"),
    [
        ({}, {}, {}),
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1}, {}, {"a": None}),
        ({"m": {"x": 1, "last": {"v": "Pass"}}}, {"m": {"x": 1}}, {"m": {"last": None}}),
        ({"m": {"x": 1}}, {"m": {"x": 1, "y": 2}}, {"m": {"y": 2}}),
        ({"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
        ({"m": 1}, {"m": {"x": 1}}, {"m": {"x": 1}}),
    ],
)
def test_merge_patch(
    current: dict[str, Any], desired: dict[str, Any], patch: dict[str, Any]
) -> None:
    assert merge_patch(current, desired) == patch
    assert apply(current, patch) == desired
