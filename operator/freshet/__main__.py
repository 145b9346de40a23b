"""`python -m freshet`: run the operator (any extra arguments go to `kopf run`).

`FRESHET_NAMESPACES` (comma-separated; the chart's `namespaces`) limits it to
those namespaces; unset, it watches all of them.
"""

from __future__ import annotations

import os
import sys

from kopf.cli import main as kopf_main


def scope(namespaces: str) -> list[str]:
    """kopf's namespace arguments for FRESHET_NAMESPACES."""
    listed = [n.strip() for n in namespaces.split(",") if n.strip()]
    return [f"--namespace={n}" for n in listed] or ["--all-namespaces"]


def main() -> None:
    sys.argv = [
        "kopf",
        "run",
        *scope(os.environ.get("FRESHET_NAMESPACES", "")),
        "--standalone",
        "-m",
        "freshet.handlers",
        *sys.argv[1:],
    ]
    kopf_main()


if __name__ == "__main__":
    main()
