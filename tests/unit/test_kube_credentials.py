"""freshet.kube's credentials: the kubeconfig's current context, or the pod's
ServiceAccount (its token re-read as the kubelet rotates it). The requests
themselves run against the real API server in tests/integration/test_kube_client.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from freshet import kube
from freshet.kube import Credentials, Kube


def kubeconfig(tmp_path: Path, user: dict[str, object], server: str = "http://127.0.0.1:1") -> Path:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "b",
                "contexts": [
                    {"name": "a", "context": {"cluster": "other", "user": "nobody"}},
                    {"name": "b", "context": {"cluster": "c", "user": "u"}},
                ],
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def test_the_current_context_chooses_the_server_and_the_user(tmp_path: Path) -> None:
    found = Credentials.from_kubeconfig(kubeconfig(tmp_path, {"token": "t0k"}))
    assert (found.server, found.token, found.tls) == ("http://127.0.0.1:1", "t0k", None)


def test_a_kubeconfig_without_its_current_context_says_which(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {})
    doc = yaml.safe_load(path.read_text())
    doc["current-context"] = "gone"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="no context named 'gone'"):
        Credentials.from_kubeconfig(path)


def test_a_token_file_is_read_again_once_the_kubelet_may_have_rotated_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    client = Kube(Credentials("http://127.0.0.1:1", None, token_file=token))
    assert client._bearer() == "first"
    token.write_text("second\n")
    assert client._bearer() == "first"  # cached
    monkeypatch.setattr(kube, "TOKEN_REREAD_SECONDS", 0.0)
    assert client._bearer() == "second"


def test_in_a_pod_the_service_account_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token")
    # Any CA will do for building the context: the stack's or the system's.
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    (account / "ca.crt").write_bytes(system.read_bytes())
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    found = Credentials.from_environment()
    assert found.server == "https://10.96.0.1:443"
    assert found.token_file == account / "token" and found.tls is not None


def test_an_unreachable_api_server_is_an_api_error_with_status_zero(tmp_path: Path) -> None:
    client = Kube(Credentials.from_kubeconfig(kubeconfig(tmp_path, {"token": "t"})))
    with pytest.raises(kube.ApiError) as failed:
        client.secret_data("ns", "s")
    assert failed.value.status == 0
