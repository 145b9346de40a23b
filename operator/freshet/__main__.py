"""`python -m freshet`: run the operator (any extra arguments go to `kopf run`)."""

from __future__ import annotations

import sys

from kopf.cli import main as kopf_main


def main() -> None:
    sys.argv = [
        "kopf",
        "run",
        "--all-namespaces",
        "--standalone",
        "-m",
        "freshet.handlers",
        *sys.argv[1:],
    ]
    kopf_main()


if __name__ == "__main__":
    main()
