"""`python -m devstack`: start, stop and inspect the local development stack."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devstack import stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    parser.add_argument("--state", type=Path, default=Path(".devstack"), help="state directory")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the stack (idempotent)")
    p_up.add_argument(
        "--operator", action="store_true", help="also helm-install freshet (charts/freshet)"
    )
    p_up.add_argument(
        "--prometheus", action="store_true", help="also start Prometheus, scraping annotated pods"
    )
    sub.add_parser("down", help="stop everything the state directory records")
    sub.add_parser("status", help="which processes are running")
    p_logs = sub.add_parser("logs", help="print a component's log")
    p_logs.add_argument("component")
    p_demo = sub.add_parser("demo", help="run the demo end to end")
    p_demo.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)

    if args.command == "up":
        s = stack.up(args.state, prometheus=args.prometheus)
        if args.operator:
            from devstack import release

            release.install(s)
            print(f"freshet installed: helm --namespace {release.NAMESPACE} status freshet")
        print(f"stack up; export KUBECONFIG={s.kubeconfig}")
        print(f"S3 endpoint http://{s.s3.endpoint} (credentials in {s.state / 's3.json'})")
        if s.prometheus_url:
            print(f"Prometheus {s.prometheus_url}")
    elif args.command == "down":
        stack.down(args.state)
        print("stack down")
    elif args.command == "status":
        for name, pid in stack.running(args.state).items():
            print(f"{name:26} {'running pid ' + str(pid) if pid else 'stopped'}")
    elif args.command == "logs":
        log = args.state / "logs" / f"{args.component}.log"
        sys.stdout.write(log.read_text(errors="replace"))
    elif args.command == "demo":
        from devstack import demo

        return demo.run(args.state, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
