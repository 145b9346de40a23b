"""The Kubernetes calls the controller makes, and nothing else.

kopf watches and dispatches; these synchronous client calls read Secrets and
Jobs, create Jobs, apply the model pointer to Deployments and write status.
Callers on the event loop go through `asyncio.to_thread`.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from freshet import names, serving

GROUP, VERSION, PLURAL = "freshet.dev", "v1alpha1", "trainingpolicies"


def api_client() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    # kubernetes.config is unannotated, hence the no-untyped-call ignores.
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self._api = api

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            data = self.core.read_namespaced_secret(name, namespace).data or {}
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        # The model types values as bytes | str; read from the API they are the
        # base64 strings `parse_store_secret` expects.
        return {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = self.batch.read_namespaced_job(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        # sanitize_for_serialization is unannotated in the kubernetes client.
        return dict(self._api.sanitize_for_serialization(job))  # type: ignore[no-untyped-call]

    def service_account_exists(self, namespace: str, name: str) -> bool:
        try:
            self.core.read_namespaced_service_account(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def namespace_annotations(self, namespace: str) -> dict[str, str]:
        ns = self.core.read_namespace(namespace)
        return dict((ns.metadata.annotations if ns.metadata else None) or {})

    def pods_not_created(self, namespace: str, job: str) -> str | None:
        """The Job controller's newest FailedCreate message for `job`, if any."""
        listed = self.core.list_namespaced_event(
            namespace,
            field_selector=f"involvedObject.kind=Job,involvedObject.name={job},reason=FailedCreate",
        )
        if not listed.items:
            return None
        return str(listed.items[-1].message)

    def policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                names.GROUP, names.VERSION, namespace, names.PLURAL, name
            )  # type: ignore[assignment]  # the client types custom objects as `object`
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return found

    def failed_container(self, namespace: str, job: str) -> str | None:
        """Which container of the Job's newest pod failed, with its exit code and
        termination message (its own summary, or the tail of its log)."""
        pods: list[Any] = self.core.list_namespaced_pod(
            namespace, label_selector=f"job-name={job}"
        ).items
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp, reverse=True):
            status = pod.status
            for c in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
                done = c.state.terminated if c.state else None
                if done is not None and done.exit_code != 0:
                    message = " ".join((done.message or done.reason or "").split())[-600:]
                    return f"container {c.name} exited {done.exit_code}: {message}"
        return None

    def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create the Job; False when it already exists (a replayed intent)."""
        try:
            # The client is annotated with the model, but its validate_call turns the
            # manifest dict into a V1Job, which is what the body is built as.
            self.batch.create_namespaced_job(namespace, body)  # type: ignore[arg-type]
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            dep = self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(self._api.sanitize_for_serialization(dep))  # type: ignore[no-untyped-call]

    def pods(self, namespace: str, match_labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        listed = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return [
            dict(self._api.sanitize_for_serialization(pod))  # type: ignore[no-untyped-call]
            for pod in listed.items
        ]

    def apply_deployment(
        self, namespace: str, patch: dict[str, Any], field_manager: str = serving.FIELD_MANAGER
    ) -> None:
        self.apps.patch_namespaced_deployment(
            patch["metadata"]["name"],
            namespace,
            patch,
            field_manager=field_manager,
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def apply_policy(self, namespace: str, body: dict[str, Any], field_manager: str) -> None:
        """Server-side apply of a TrainingPolicy (a TrainingPolicySet's child)."""
        self.custom.patch_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            namespace,
            names.PLURAL,
            body["metadata"]["name"],
            body,
            field_manager=field_manager,
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def list_policies(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        listed: Any = self.custom.list_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.PLURAL, label_selector=selector
        )
        return list(listed["items"])

    def delete_policy(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                names.GROUP, names.VERSION, namespace, names.PLURAL, name
            )
        except ApiException as e:
            if e.status != 404:
                raise

    def patch_set_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            names.GROUP, names.VERSION, namespace, names.SET_PLURAL, name, {"status": status}
        )

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}
        )
