"""`python -m freshet`: run the operator (any extra arguments go to `kopf run`).

`FRESHET_NAMESPACES` (comma-separated; the chart's `namespaces`) limits it to
those namespaces; unset, it watches all of them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from freshet.config import OperatorConfig


def scope(namespaces: Sequence[str]) -> list[str]:
    """kopf's namespace arguments for the namespaces the operator serves."""
    return [f"--namespace={n}" for n in namespaces] or ["--all-namespaces"]


def main() -> None:
    # The operator talks to the API server through freshet.kube, not the
    # `kubernetes` client, which costs 32 MiB to import; kopf imports it whenever
    # it is installed (for optional integrations), and the image has it for the
    # dashboard and the CLI. A None entry fails that import, as if not installed.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    from kopf.cli import main as kopf_main

    sys.argv = [
        "kopf",
        "run",
        *scope(OperatorConfig.from_env().namespaces),
        "--standalone",
        "-m",
        "freshet.handlers",
        *sys.argv[1:],
    ]
    kopf_main()


if __name__ == "__main__":
    main()
