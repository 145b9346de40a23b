"""The generator scripts in hack/ (gen-*.py), loaded by path: their file names are
not module names. Tests compare what they generate with what is committed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

HACK = Path(__file__).resolve().parents[1] / "hack"


def load(script: str) -> ModuleType:
    """`load("gen-manifests")`: hack/gen-manifests.py as a module."""
    spec = importlib.util.spec_from_file_location(script.replace("-", "_"), HACK / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
