"""`freshet`: the command-line entry point of the operator package's tools.

    freshet dashboard                 # on a laptop: http://127.0.0.1:8080, as your kubeconfig user
    freshet dashboard --in-cluster    # in a pod (the chart's dashboard.enabled)

The operator itself runs as `python -m freshet` (the image's entrypoint).
"""

from __future__ import annotations

import logging
import os
import sys

import click
from aiohttp import web
from freshet_contract import logs
from kubernetes import client, config

from freshet.config import OperatorConfig
from freshet.dashboard.app import Dashboard
from freshet.dashboard.gather import Scope
from freshet.dashboard.identity import ClusterIdentity, LocalIdentity
from freshet.dashboard.sessions import Sessions

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """freshet's tools."""


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {listen!r}", param_hint="--listen")
    return host.strip("[]"), int(port)


@main.command()
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to serve on")
@click.option(
    "--in-cluster",
    is_flag=True,
    help="run in a pod: sign people in with their bearer token (TokenReview) and check"
    " each page and action with a SubjectAccessReview",
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="path to the kubeconfig")
@click.option("--context", help="the kubeconfig context to use")
@click.option(
    "-n", "--namespace", help="where to list policies if you may not list them cluster-wide"
)
@click.option(
    "--store-endpoint",
    help="reach object stores here instead of their Secrets' endpoint (how pods see it)",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "plain"]),
    default=lambda: os.environ.get("FRESHET_LOG_FORMAT", "plain"),
    help="json: one object per line (the chart's logFormat)",
)
def dashboard(
    *,
    listen: str,
    in_cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    store_endpoint: str | None,
    log_format: str,
) -> None:
    """Serve the web dashboard: policies, runs, quarantine, and the actions on them."""
    if log_format == "json":
        logs.configure("dashboard")
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, port = _split(listen)
    scope = Scope(OperatorConfig.from_env().namespaces, store_endpoint)
    if in_cluster:
        config.load_incluster_config()  # type: ignore[no-untyped-call]  # unannotated
        identity: ClusterIdentity | LocalIdentity = ClusterIdentity(client.ApiClient(), Sessions())
        hosts: frozenset[str] = frozenset()
    else:
        if host not in LOOPBACK:
            sys.exit(
                "error: without --in-cluster the dashboard acts with your kubeconfig's"
                " credentials for anyone who reaches it, so it listens on 127.0.0.1 only"
            )
        try:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
            listed, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        except config.ConfigException as e:
            sys.exit(f"error: kubeconfig: {e}")
        if context:
            active = next((c for c in listed if c["name"] == context), active)
        home = namespace or (active or {}).get("context", {}).get("namespace") or "default"
        identity = LocalIdentity(api, home)
        hosts = frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))
    app = Dashboard(identity, scope, allowed_hosts=hosts).app()
    click.echo(f"freshet dashboard on http://{listen}/", err=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
