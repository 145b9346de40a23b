"""docs/gitops/health.lua, run by Debian's Lua 5.1 the way Argo CD runs a health
check: the object as the global `obj`, the script's return value read back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

HEALTH = Path(__file__).resolve().parents[1] / "docs" / "gitops" / "health.lua"


def _lua(value: Any) -> str:
    """A JSON-like value as a Lua table constructor (what Argo CD hands the script)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    return json.dumps(value)  # numbers and strings (JSON escapes are Lua escapes here)


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) the health check gives `obj`."""
    program = (
        f"obj = {_lua(obj)}\n"
        f"local hs = (function() {HEALTH.read_text()}\nend)()\n"
        'io.write(hs.status, "\\n", hs.message or "")\n'
    )
    p = subprocess.run(["lua5.1", "-"], input=program, capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    status, _, message = p.stdout.partition("\n")
    return status, message
