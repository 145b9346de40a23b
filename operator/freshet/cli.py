"""`kubectl freshet`: look at and steer TrainingPolicies from a terminal.

A kubectl plugin (the executable `kubectl-freshet` on PATH, installed with the
operator package). It acts as the user: the kubeconfig's identity, through the
API server, so RBAC decides what it may do. Every action is the same change a
GitOps repository or `kubectl annotate` would make, so the operator sees one
truth: retrain and rollback set the policy's annotations, pin and unpin its
`spec.serving.pinnedVersion` (under GitOps, change that in Git instead).
Quarantine and history read the policy's object store with the credentials in
the policy's own store Secret, read through the API, never from the
environment.

    kubectl freshet status churn -n team-a
    kubectl freshet quarantine release churn incoming/2026-11-30.csv
    source <(kubectl freshet completion bash)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import click
from freshet_contract.layout import StateLayout
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from minio.error import S3Error

from freshet import actions, names
from freshet.failures import api_message
from freshet.ledger import Ledger
from freshet.objectstore import ObjectStore
from freshet.policy_store import StoreUnavailable, open_store
from freshet.quarantine import NotQuarantined, Quarantine


@dataclass
class Target:
    """The cluster and namespace the command acts in, as the user. Connects on first
    use, so `completion` and `--help` need no cluster."""

    namespace_option: str | None
    kubeconfig: str | None
    context: str | None
    endpoint: str | None
    _api: client.ApiClient | None = None
    _namespace: str | None = None

    @property
    def api(self) -> client.ApiClient:
        if self._api is None:
            self._connect()
        assert self._api is not None
        return self._api

    @property
    def namespace(self) -> str:
        if self._namespace is None:
            self._connect()
        assert self._namespace is not None
        return self._namespace

    def _connect(self) -> None:
        # kubernetes.config is unannotated.
        load = config.new_client_from_config
        contexts = config.list_kube_config_contexts
        try:
            self._api = load(config_file=self.kubeconfig, context=self.context)  # type: ignore[no-untyped-call]
            listed, active = contexts(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]
        except config.ConfigException as e:
            fail(f"kubeconfig: {e}")
        if self.context:
            active = next((c for c in listed if c["name"] == self.context), active)
        default = (active or {}).get("context", {}).get("namespace") or "default"
        self._namespace = self.namespace_option or default

    def policy(self, name: str) -> dict[str, Any]:
        try:
            found: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                names.GROUP, names.VERSION, self.namespace, names.PLURAL, name
            )  # type: ignore[assignment]  # the client types custom objects as `object`
        except ApiException as e:
            fail(_api_error(e, f"TrainingPolicy {self.namespace}/{name}"))
        return found

    def patch(self, name: str, body: dict[str, Any]) -> None:
        try:
            client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
                names.GROUP, names.VERSION, self.namespace, names.PLURAL, name, body
            )
        except ApiException as e:
            fail(_api_error(e, f"TrainingPolicy {self.namespace}/{name}"))

    def store(self, policy: dict[str, Any]) -> tuple[ObjectStore, StateLayout]:
        """The policy's object store, with the credentials of its own store Secret."""
        secret = policy["spec"]["data"]["storeRef"]["name"]
        try:
            return open_store(self.api, policy, self.endpoint)
        except ApiException as e:
            fail(_api_error(e, f"Secret {self.namespace}/{secret} (spec.data.storeRef)"))
        except StoreUnavailable as e:
            fail(str(e))


def _api_error(e: ApiException, what: str) -> str:
    if e.status == 404:
        return f"{what} not found"
    if e.status == 403:
        return f"{what}: forbidden for you ({api_message(e)})"
    return f"{what}: {api_message(e)}"


def _policies(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Policy names for shell completion (none when the cluster cannot be asked)."""
    root = ctx.find_root().params
    target = Target(root.get("namespace"), root.get("kubeconfig"), root.get("context"), None)
    try:
        listed: Any = client.CustomObjectsApi(target.api).list_namespaced_custom_object(
            names.GROUP, names.VERSION, target.namespace, names.PLURAL
        )
    except (ApiException, SystemExit, OSError):
        return []
    found = [str(p["metadata"]["name"]) for p in listed["items"]]
    return [name for name in found if name.startswith(incomplete)]


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _metrics(values: dict[str, Any] | None) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted((values or {}).items())) or "-"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-n", "--namespace", help="the policy's namespace (default: the context's)")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="path to the kubeconfig")
@click.option("--context", help="the kubeconfig context to use")
@click.option(
    "--store-endpoint",
    help="reach the object store here instead of the Secret's endpoint (which is how pods see it)",
)
@click.pass_context
def main(
    ctx: click.Context,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
    store_endpoint: str | None,
) -> None:
    """Look at and steer freshet TrainingPolicies."""
    ctx.obj = Target(namespace, kubeconfig, context, store_endpoint)


@main.command()
@click.argument("policy", shell_complete=_policies)
@click.pass_obj
def status(target: Target, policy: str) -> None:
    """Serving version, conditions, and the last decision with its evidence."""
    p = target.policy(policy)
    st = p.get("status") or {}
    spec = p["spec"]
    click.echo(
        f"TrainingPolicy {target.namespace}/{policy}: {spec.get('mode')}, generation "
        f"{p['metadata'].get('generation')} (observed {st.get('observedGeneration', '-')})"
    )
    serving = st.get("serving")
    if serving:
        click.echo(
            f"Serving: {serving['version']} since {serving.get('promotedTime', '?')}"
            f" (run {serving.get('runId', '?')}): {_metrics(serving.get('metrics'))}"
        )
    else:
        click.echo("Serving: no model yet")
    pinned = (spec.get("serving") or {}).get("pinnedVersion")
    if pinned:
        click.echo(f"Pinned: {pinned} (kubectl freshet unpin {policy})")
    click.echo("\nConditions:")
    _table(
        [
            [c["type"], c["status"], c.get("reason", ""), c.get("message", "")]
            for c in st.get("conditions") or []
        ],
        ["TYPE", "STATUS", "REASON", "MESSAGE"],
    )
    last = st.get("lastRun")
    if last:
        click.echo(
            f"\nLast run: {last['runId']} ({last.get('trigger', '?')}) -> {last.get('version')}:"
            f" {last.get('phase')}{' (' + last['reason'] + ')' if last.get('reason') else ''}"
        )
        if last.get("message"):
            click.echo(f"  {last['message']}")
    candidate = st.get("candidate")
    if candidate:
        click.echo(
            f"  evidence: candidate {_metrics(candidate.get('metrics'))};"
            f" serving {_metrics(candidate.get('baselineMetrics'))}"
        )
    data = st.get("data")
    if data:
        click.echo(
            f"\nData: {data.get('seen', 0)} seen, {data.get('consumed', 0)} trained on,"
            f" {data.get('pending', 0)} pending, {data.get('quarantined', 0)} quarantined"
        )


@main.command()
@click.argument("policy", shell_complete=_policies)
@click.pass_obj
def history(target: Target, policy: str) -> None:
    """Every run: the version, its metrics against the serving model's, the decision."""
    p = target.policy(policy)
    store, layout = target.store(p)
    try:
        raw = store.get_json(layout.ledger_key)
    except S3Error as e:
        fail(f"cannot read {layout.ledger_key}: {e.code}: {e.message}")
    book = Ledger.model_validate(raw or {})
    serving = book.serving.version if book.serving else None
    _table(
        [
            [
                r.version + (" *" if r.version == serving else ""),
                r.outcome,
                r.reason,
                r.trigger or "-",
                _metrics(r.metrics),
                _metrics(r.baseline_metrics),
                r.finished_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ]
            for r in book.runs
        ],
        ["VERSION", "DECISION", "REASON", "TRIGGER", "METRICS", "SERVING THEN", "FINISHED"],
    )
    if serving:
        click.echo(f"* serving now: {serving}")


@main.command()
@click.argument("policy", shell_complete=_policies)
@click.pass_obj
def retrain(target: Target, policy: str) -> None:
    """Ask for one retrain now (annotation freshet.dev/retrain)."""
    target.policy(policy)
    value = actions.request_value()
    target.patch(policy, actions.retrain(value))
    click.echo(f"retrain requested for {target.namespace}/{policy} ({value})")


@main.command()
@click.argument("policy", shell_complete=_policies)
@click.option("--to", "version", help="serve this version (pins it: spec.serving.pinnedVersion)")
@click.pass_obj
def rollback(target: Target, policy: str, version: str | None) -> None:
    """Roll the serving model back to the previous one (annotation freshet.dev/rollback),
    or, with --to, to a given version by pinning it."""
    target.policy(policy)
    if version:
        _pin(target, policy, version)
        return
    value = actions.request_value()
    target.patch(policy, actions.rollback(value))
    click.echo(f"rollback requested for {target.namespace}/{policy} ({value})")


def _pin(target: Target, policy: str, version: str) -> None:
    try:
        body = actions.pin(version)
    except actions.InvalidVersion as e:
        fail(str(e))
    target.patch(policy, body)
    click.echo(f"{target.namespace}/{policy} pinned to {version}")


@main.command()
@click.argument("policy", shell_complete=_policies)
@click.argument("version")
@click.pass_obj
def pin(target: Target, policy: str, version: str) -> None:
    """Serve VERSION and promote nothing newer until unpinned."""
    if not actions.can_pin(target.policy(policy)):
        fail(f"{target.namespace}/{policy} has no spec.serving: nothing to pin")
    _pin(target, policy, version)


@main.command()
@click.argument("policy", shell_complete=_policies)
@click.pass_obj
def unpin(target: Target, policy: str) -> None:
    """Let promotions through again."""
    target.policy(policy)
    target.patch(policy, actions.unpin())
    click.echo(f"{target.namespace}/{policy} unpinned")


@main.command()
@click.argument("policy", shell_complete=_policies)
@click.option("--previous", is_flag=True, help="the container's previous instance")
@click.pass_obj
def logs(target: Target, policy: str, previous: bool) -> None:
    """The trainer's log of the policy's last run."""
    last = (target.policy(policy).get("status") or {}).get("lastRun")
    if not last:
        fail(f"{target.namespace}/{policy} has not run yet")
    core = client.CoreV1Api(target.api)
    try:
        pods = core.list_namespaced_pod(
            target.namespace, label_selector=f"job-name={last['jobName']}"
        ).items
    except ApiException as e:
        fail(_api_error(e, f"pods of Job {last['jobName']}"))
    if not pods:
        fail(f"the pods of run {last['runId']} are gone (Jobs are kept for a while, then removed)")
    # The kubernetes client's models type every field optional.
    names_by_age = sorted((p.metadata.creation_timestamp, p.metadata.name) for p in pods)  # type: ignore[union-attr]
    newest = str(names_by_age[-1][1])
    try:
        click.echo(
            core.read_namespaced_pod_log(newest, target.namespace, previous=previous), nl=False
        )
    except ApiException as e:
        fail(_api_error(e, f"log of pod {newest}"))


@main.group()
def quarantine() -> None:
    """Batches validation refused: why, and putting them back."""


def _quarantine(target: Target, policy: str) -> Quarantine:
    store, layout = target.store(target.policy(policy))
    return Quarantine(store, layout)


@quarantine.command("list")
@click.argument("policy", shell_complete=_policies)
@click.pass_obj
def quarantine_list(target: Target, policy: str) -> None:
    """Quarantined batches with their reasons."""
    try:
        held = _quarantine(target, policy).held()
    except S3Error as e:
        fail(f"{e.code}: {e.message}")
    _table([[h.key, h.summary] for h in held], ["BATCH", "REASON"])


@quarantine.command("show")
@click.argument("policy", shell_complete=_policies)
@click.argument("key")
@click.pass_obj
def quarantine_show(target: Target, policy: str, key: str) -> None:
    """Every failed check of one batch, with its figures."""
    try:
        held = _quarantine(target, policy).show(key)
    except NotQuarantined as e:
        fail(str(e))
    except S3Error as e:
        fail(f"{e.code}: {e.message}")
    click.echo(json.dumps({"batch": held.key, **held.reason}, indent=2, sort_keys=True))


@quarantine.command("release")
@click.argument("policy", shell_complete=_policies)
@click.argument("key")
@click.pass_obj
def quarantine_release(target: Target, policy: str, key: str) -> None:
    """Put a batch back under its original key; the next run validates it again."""
    q = _quarantine(target, policy)
    try:
        moved = q.release(key)
    except NotQuarantined as e:
        fail(str(e))
    except S3Error as e:
        fail(f"{e.code}: {e.message}")
    original = q.original_key(key)
    click.echo(f"released {original}" if moved else f"{original} was already released")


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: `source <(kubectl freshet completion bash)`."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    script = cls(main, {}, "kubectl-freshet", "_KUBECTL_FRESHET_COMPLETE").source()
    click.echo(script)


def complete_for_kubectl() -> None:
    """`kubectl_complete-freshet`: kubectl's completion of a plugin's arguments (it runs
    this with the words typed so far): the candidates, one per line, then cobra's
    directive `:4` (no file names)."""
    from click.shell_completion import ShellComplete

    args = sys.argv[1:]
    incomplete = args.pop() if args else ""
    completer = ShellComplete(main, {}, "kubectl-freshet", "_KUBECTL_FRESHET_COMPLETE")
    for item in completer.get_completions(args, incomplete):
        click.echo(item.value)
    click.echo(":4")
