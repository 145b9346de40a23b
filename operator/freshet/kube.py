"""The operator's Kubernetes API calls, as JSON over one kept-alive connection pool.

Not the `kubernetes` client: importing it costs the operator process 32 MiB (a
model class for every kind of every group), a third of its memory at a thousand
policies, and every call would build and then flatten those models again. The
operator needs a dozen requests on a handful of kinds and reads them as the
dicts the API sends. The dashboard and `kubectl freshet`, separate processes,
keep the client (they act with other people's credentials).

Credentials are the pod's ServiceAccount (the token re-read as the kubelet
rotates it) or, outside a cluster, the kubeconfig's current context (client
certificates or a bearer token). Calls are synchronous: the loop runs them
through `asyncio.to_thread`.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml

from freshet import names, serving

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0
"""How often a ServiceAccount token is read again (the kubelet rotates bound tokens)."""
TIMEOUT_SECONDS = 30.0
_JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
_POLICIES = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{{ns}}/{names.PLURAL}"
_SETS = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{{ns}}/{names.SET_PLURAL}"


class ApiError(Exception):
    """The API server answered with an error status (or did not answer: status 0).

    The attributes are those of the `kubernetes` client's ApiException, so the
    classification in `failures` reads either."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        super().__init__(f"({status}) {reason}")
        self.status, self.reason, self.body = status, reason, body


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are to it."""

    server: str
    tls: ssl.SSLContext | None
    token: str | None = None
    token_file: Path | None = None

    @classmethod
    def from_environment(cls) -> Credentials:
        """The pod's ServiceAccount when in a cluster, else the kubeconfig."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        if host and (SERVICE_ACCOUNT / "token").exists():
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            tls = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
            netloc = f"[{host}]" if ":" in host else host
            return cls(f"https://{netloc}:{port}", tls, token_file=SERVICE_ACCOUNT / "token")
        paths = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        return cls.from_kubeconfig(Path(paths.split(os.pathsep)[0]))

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Credentials:
        doc = yaml.safe_load(path.read_text()) or {}
        context_name = doc.get("current-context")
        context = _named(doc, "contexts", context_name, path)["context"]
        cluster = _named(doc, "clusters", context["cluster"], path)["cluster"]
        user = _named(doc, "users", context["user"], path).get("user") or {}
        server = str(cluster["server"]).rstrip("/")
        if not server.startswith("https://"):
            return cls(server, None, token=user.get("token"))
        tls = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        elif data := cluster.get("certificate-authority-data"):
            tls.load_verify_locations(cadata=base64.b64decode(data).decode())
        elif file := cluster.get("certificate-authority"):
            tls.load_verify_locations(cafile=_relative(path, file))
        cert = _pem(path, user, "client-certificate")
        if cert is not None:
            key = _pem(path, user, "client-key")
            with _files(cert, key) as (cert_file, key_file):
                tls.load_cert_chain(cert_file, key_file)
        token_file = user.get("tokenFile")
        return cls(
            server,
            tls,
            token=user.get("token"),
            token_file=Path(_relative(path, token_file)) if token_file else None,
        )


def _named(doc: dict[str, Any], section: str, name: str | None, path: Path) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return dict(entry)
    raise ValueError(f"{path}: no {section[:-1]} named {name!r} (current-context)")


def _relative(kubeconfig: Path, file: str) -> str:
    return str((kubeconfig.parent / file).resolve())


def _pem(kubeconfig: Path, user: dict[str, Any], field: str) -> bytes | None:
    if data := user.get(f"{field}-data"):
        return base64.b64decode(data)
    if file := user.get(field):
        return Path(_relative(kubeconfig, file)).read_bytes()
    return None


class _files:
    """Client certificate and key as files for `load_cert_chain`, removed at once."""

    def __init__(self, cert: bytes, key: bytes | None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="freshet-kube-")
        self._cert, self._key = cert, key

    def __enter__(self) -> tuple[str, str | None]:
        cert = Path(self._dir.name) / "cert.pem"
        cert.write_bytes(self._cert)
        key = None
        if self._key is not None:
            key_path = Path(self._dir.name) / "key.pem"
            key_path.touch(mode=0o600)
            key_path.write_bytes(self._key)
            key = str(key_path)
        return str(cert), key

    def __exit__(self, *_: object) -> None:
        self._dir.cleanup()


class Kube:
    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._pool = urllib3.PoolManager(
            maxsize=8,
            ssl_context=credentials.tls,
            timeout=urllib3.Timeout(total=TIMEOUT_SECONDS),
            retries=False,
        )
        self._token = credentials.token
        self._token_read = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> Kube:
        return cls(Credentials.from_environment())

    # -- the one request -------------------------------------------------------

    def _bearer(self) -> str | None:
        file = self._credentials.token_file
        if file is None:
            return self._token
        with self._lock:
            if time.monotonic() - self._token_read > TOKEN_REREAD_SECONDS:
                self._token = file.read_text().strip()
                self._token_read = time.monotonic()
            return self._token

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """The decoded JSON answer; ApiError for an error status or no answer."""
        url = self._credentials.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        if (token := self._bearer()) is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            response = self._pool.request(method, url, body=data, headers=headers)
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(0, f"{type(e).__name__}: {e}") from e
        text = response.data.decode("utf-8", "replace")
        if response.status >= 400:
            raise ApiError(response.status, response.reason or "", text)
        return json.loads(text) if text else None

    def _get(self, path: str, **query: str) -> dict[str, Any] | None:
        """GET an object; None when there is none."""
        try:
            found: dict[str, Any] = self.request("GET", path, query=query or None)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return found

    def _apply(self, path: str, body: dict[str, Any], field_manager: str) -> None:
        self.request(
            "PATCH",
            path,
            query={"fieldManager": field_manager, "force": "true"},
            body=body,
            content_type="application/apply-patch+yaml",  # JSON is YAML
        )

    # -- what the operator reads and writes --------------------------------------

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, base64 as the API sends it (what parse_store_secret reads)."""
        secret = self._get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        return None if secret is None else dict(secret.get("data") or {})

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(f"{_JOBS.format(ns=namespace)}/{name}")

    def jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        listed = self.request("GET", _JOBS.format(ns=namespace), query={"labelSelector": selector})
        return list(listed.get("items") or [])

    def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create the Job; False when it already exists (a replayed intent)."""
        try:
            self.request("POST", _JOBS.format(ns=namespace), body=body)
        except ApiError as e:
            if e.status == 409:
                return False
            raise
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job and, in the background, its pods; a missing one is no error."""
        try:
            self.request(
                "DELETE",
                f"{_JOBS.format(ns=namespace)}/{name}",
                body={"propagationPolicy": "Background"},
            )
        except ApiError as e:
            if e.status != 404:
                raise

    def service_account_exists(self, namespace: str, name: str) -> bool:
        return self._get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}") is not None

    def namespace_annotations(self, namespace: str) -> dict[str, str]:
        ns = self.request("GET", f"/api/v1/namespaces/{namespace}")
        return dict((ns.get("metadata") or {}).get("annotations") or {})

    def pods_not_created(self, namespace: str, job: str) -> str | None:
        """The Job controller's newest FailedCreate message for `job`, if any."""
        listed = self.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/events",
            query={
                "fieldSelector": (
                    f"involvedObject.kind=Job,involvedObject.name={job},reason=FailedCreate"
                )
            },
        )
        items = listed.get("items") or []
        return str(items[-1].get("message")) if items else None

    def pods(self, namespace: str, match_labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        listed = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector}
        )
        return list(listed.get("items") or [])

    def failed_container(self, namespace: str, job: str) -> str | None:
        """Which container of the Job's newest pod failed, with its exit code and
        termination message (its own summary, or the tail of its log)."""
        pods = self.pods(namespace, {"job-name": job})
        for pod in sorted(
            pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp", ""), reverse=True
        ):
            status = pod.get("status") or {}
            for c in [
                *(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or []),
            ]:
                done = (c.get("state") or {}).get("terminated")
                if done is not None and done.get("exitCode", 0) != 0:
                    said = done.get("message") or done.get("reason") or ""
                    message = " ".join(str(said).split())[-600:]
                    return f"container {c.get('name')} exited {done['exitCode']}: {message}"
        return None

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    def apply_deployment(
        self, namespace: str, patch: dict[str, Any], field_manager: str = serving.FIELD_MANAGER
    ) -> None:
        name = patch["metadata"]["name"]
        self._apply(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", patch, field_manager
        )

    def policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(f"{_POLICIES.format(ns=namespace)}/{name}")

    def list_policies(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        listed = self.request(
            "GET", _POLICIES.format(ns=namespace), query={"labelSelector": selector}
        )
        return list(listed.get("items") or [])

    def apply_policy(self, namespace: str, body: dict[str, Any], field_manager: str) -> None:
        """Server-side apply of a TrainingPolicy (a TrainingPolicySet's child)."""
        name = body["metadata"]["name"]
        self._apply(f"{_POLICIES.format(ns=namespace)}/{name}", body, field_manager)

    def delete_policy(self, namespace: str, name: str) -> None:
        try:
            self.request("DELETE", f"{_POLICIES.format(ns=namespace)}/{name}")
        except ApiError as e:
            if e.status != 404:
                raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> str | None:
        """Merge `status` into the policy's; the resourceVersion it then has."""
        return self._merge_status(f"{_POLICIES.format(ns=namespace)}/{name}/status", status)

    def patch_set_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._merge_status(f"{_SETS.format(ns=namespace)}/{name}/status", status)

    def _merge_status(self, path: str, status: dict[str, Any]) -> str | None:
        patched = self.request(
            "PATCH", path, body={"status": status}, content_type="application/merge-patch+json"
        )
        return ((patched or {}).get("metadata") or {}).get("resourceVersion")


def older(a: str | None, b: str | None) -> bool | None:
    """Is resourceVersion `a` older than `b` (two versions of one object)? None when
    either is not the positive decimal integer the API server promises
    (KEP-5504, comparable resource versions, stable since Kubernetes 1.35): an
    older server, or another implementation of the API, whose versions stay
    opaque."""
    if a is None or b is None or not (_comparable(a) and _comparable(b)):
        return None
    return (len(a), a) < (len(b), b)


def _comparable(version: str) -> bool:
    return version.isascii() and version.isdigit() and not version.startswith("0")
