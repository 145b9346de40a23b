"""The local control plane is a real Kubernetes: version, admission, GC, RBAC."""

from __future__ import annotations

import time

import pytest
from devstack import controlplane
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration


def _poll(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout}s")


def test_version_is_the_pinned_release(kube_api: client.ApiClient) -> None:
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version == controlplane.versions()["KUBE_VERSION"]


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.devstack.freshet.dev"},
    "spec": {
        "group": "devstack.freshet.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10}
                                },
                                "x-kubernetes-validations": [
                                    {"rule": "self.size % 2 == 0", "message": "size must be even"}
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_schema_violation_is_rejected_by_the_server(
    kube_api: client.ApiClient, namespace: str
) -> None:
    ext = client.ApiextensionsV1Api(kube_api)
    try:
        ext.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as e:
        if e.status != 409:
            raise
    objs = client.CustomObjectsApi(kube_api)

    def established() -> bool:
        crd = ext.read_custom_resource_definition("widgets.devstack.freshet.dev")
        return any(
            c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])
        )

    _poll(established)

    def create(size: int) -> object:
        body = {
            "apiVersion": "devstack.freshet.dev/v1",
            "kind": "Widget",
            "metadata": {"generateName": "w-"},
            "spec": {"size": size},
        }
        return objs.create_namespaced_custom_object(
            "devstack.freshet.dev", "v1", namespace, "widgets", body
        )

    def rejected(size: int) -> str:
        with pytest.raises(ApiException) as info:
            # A CRD can take a moment to be served after Established; retry 404s only.
            for _ in range(50):
                try:
                    create(size)
                except ApiException as e:
                    if e.status == 404:
                        time.sleep(0.1)
                        continue
                    raise
                break
        assert info.value.status == 422
        return str(info.value.body)

    assert "should be less than or equal to 10" in rejected(12)
    assert "size must be even" in rejected(3)
    assert create(4)


def test_deleting_an_owner_deletes_what_it_owns(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref])),
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="bystander"))
    )
    core.delete_namespaced_config_map("owner", namespace)

    def owned_gone() -> bool:
        names = {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
        return "owned" not in names

    _poll(owned_gone)
    core.read_namespaced_config_map("bystander", namespace)


def test_service_account_token_is_limited_to_its_role(
    kube_api: client.ApiClient, namespace: str, stack: object
) -> None:
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="cm-reader"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["get", "list"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
            ],
        ),
    )
    token = core.create_namespaced_service_account_token(
        "reader", namespace, client.AuthenticationV1TokenRequest(spec={"audiences": []})
    ).status.token

    cfg = client.Configuration()
    cfg.host = kube_api.configuration.host
    cfg.ssl_ca_cert = kube_api.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    as_reader = client.CoreV1Api(client.ApiClient(cfg))

    assert as_reader.list_namespaced_config_map(namespace).items is not None
    for forbidden in (
        lambda: as_reader.list_namespaced_secret(namespace),
        lambda: as_reader.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
        ),
        lambda: as_reader.list_namespaced_config_map("default"),
    ):
        with pytest.raises(ApiException) as info:
            forbidden()
        assert info.value.status == 403

    cfg.api_key = {"authorization": token[:-4] + "AAAA"}
    with pytest.raises(ApiException) as info:
        client.CoreV1Api(client.ApiClient(cfg)).list_namespaced_config_map(namespace)
    assert info.value.status == 401
