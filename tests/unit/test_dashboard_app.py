"""The dashboard's HTTP layer with the Kubernetes side faked: sign-in redirects, CSRF,
who sees buttons, who may act, and the headers every page carries. The same flows
run against the real API server in tests/e2e/test_dashboard.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from freshet import names
from freshet.dashboard import app as app_module
from freshet.dashboard import gather
from freshet.dashboard.access import User
from freshet.dashboard.app import Dashboard, _safe_next
from freshet.dashboard.gather import Scope, StoreError, Viewer
from freshet.dashboard.identity import Credentials

POLICY = {
    "metadata": {"namespace": "team-a", "name": "churn"},
    "spec": {
        "mode": "Dynamic",
        "data": {"storeRef": {"name": "s"}},
        "serving": {"deploymentRef": {"name": "d"}},
    },
    "status": {"serving": {"version": "v3"}, "conditions": [{"type": "Ready", "status": "True"}]},
}


class Rules:
    def __init__(self, user: str, verbs: set[str]) -> None:
        self.user = User(user)
        self.verbs = verbs

    def may(self, verb: str, namespace: str, name: str | None = None) -> bool:
        return namespace == "team-a" and verb in self.verbs


class Tokens:
    """Bearer "editor" may get and patch; "viewer" may only get and list."""

    login_required = True

    def viewer(self, presented: Credentials) -> Viewer | None:
        verbs = {"editor": {"get", "list", "patch"}, "viewer": {"get", "list"}}
        if presented.bearer not in verbs:
            return None
        rules = Rules(presented.bearer, verbs[presented.bearer])
        return Viewer(rules.user, rules, None, None, f"bearer:{presented.bearer}")  # type: ignore[arg-type]


@pytest.fixture
def patches(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(gather, "policy", lambda v, ns, name: POLICY)
    monkeypatch.setattr(gather, "policies", lambda v, scope: [POLICY])
    monkeypatch.setattr(gather, "events", lambda v, p: [])
    monkeypatch.setattr(gather, "patch", lambda v, ns, name, body: made.append(body))

    def no_store(*args: Any) -> Any:
        raise StoreError("the store is down")

    monkeypatch.setattr(gather, "store", no_store)
    return made


def serve(dashboard: Dashboard, check: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(dashboard.app())) as client:
            await check(client)

    asyncio.run(main())


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def test_without_credentials_pages_go_to_sign_in(patches: list[dict[str, Any]]) -> None:
    async def check(client: TestClient) -> None:
        r = await client.get("/policies/team-a/churn", allow_redirects=False)
        assert r.status == 303
        assert r.headers["Location"] == "/login?next=/policies/team-a/churn"
        r = await client.post("/policies/team-a/churn/retrain", data={}, allow_redirects=False)
        assert r.status == 401
        assert patches == []

    serve(Dashboard(Tokens(), Scope()), check)


def test_a_viewer_sees_no_buttons_and_may_not_act(patches: list[dict[str, Any]]) -> None:
    async def check(client: TestClient) -> None:
        page = await (await client.get("/policies/team-a/churn", headers=auth("viewer"))).text()
        assert "Retrain now" not in page and "Roll back" not in page
        assert "Read-only" in page
        assert "the store is down" in page  # a store problem shows; it does not fail the page
        token = csrf_of(page)  # the sign-out form still carries one
        r = await client.post(
            "/policies/team-a/churn/retrain",
            data={"csrf": token},
            headers=auth("viewer"),
            allow_redirects=False,
        )
        assert r.status == 403
        assert "viewer may not patch trainingpolicy team-a/churn" in await r.text()
        assert patches == []

    serve(Dashboard(Tokens(), Scope()), check)


def test_an_editor_acts_with_a_csrf_token_only(patches: list[dict[str, Any]]) -> None:
    async def check(client: TestClient) -> None:
        page = await (await client.get("/policies/team-a/churn", headers=auth("editor"))).text()
        assert "Retrain now" in page and "Roll back" in page and "Pin v3" in page
        url = "/policies/team-a/churn/retrain"
        for forged in ({}, {"csrf": "0" * 64}):
            r = await client.post(url, data=forged, headers=auth("editor"), allow_redirects=False)
            assert r.status == 403 and "CSRF" in await r.text()
        # The viewer's token is bound to the viewer: it does not work for the editor.
        viewer_page = await (await client.get("/", headers=auth("viewer"))).text()
        r = await client.post(
            url, data={"csrf": csrf_of(viewer_page)}, headers=auth("editor"), allow_redirects=False
        )
        assert r.status == 403
        assert patches == []
        r = await client.post(
            url, data={"csrf": csrf_of(page)}, headers=auth("editor"), allow_redirects=False
        )
        assert r.status == 303 and r.headers["Location"] == "/policies/team-a/churn?done=retrain"
        (body,) = patches
        assert set(body["metadata"]["annotations"]) == {names.RETRAIN_ANNOTATION}
        r = await client.post(
            "/policies/team-a/churn/pin",
            data={"csrf": csrf_of(page), "version": "latest"},
            headers=auth("editor"),
            allow_redirects=False,
        )
        assert r.status == 403 and "must look like v3" in await r.text()
        r = await client.post(
            "/policies/team-a/churn/pin",
            data={"csrf": csrf_of(page), "version": "v2"},
            headers=auth("editor"),
            allow_redirects=False,
        )
        assert r.status == 303
        assert patches[-1] == {"spec": {"serving": {"pinnedVersion": "v2"}}}
        r = await client.post(
            "/policies/team-a/churn/delete",
            data={"csrf": csrf_of(page)},
            headers=auth("editor"),
            allow_redirects=False,
        )
        assert r.status == 404

    serve(Dashboard(Tokens(), Scope()), check)


def test_other_namespaces_are_forbidden(patches: list[dict[str, Any]]) -> None:
    async def check(client: TestClient) -> None:
        r = await client.get("/policies/kube-system/x", headers=auth("editor"))
        assert (
            r.status == 403 and "editor may not get trainingpolicy kube-system/x" in await r.text()
        )

    serve(Dashboard(Tokens(), Scope()), check)


def test_every_page_carries_the_security_headers(patches: list[dict[str, Any]]) -> None:
    async def check(client: TestClient) -> None:
        r = await client.get("/", headers=auth("viewer"))
        assert r.status == 200
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "churn" in await r.text()
        css = await client.get("/static/dashboard.css")
        assert css.status == 200 and "svg" in await css.text()

    serve(Dashboard(Tokens(), Scope()), check)


def test_locally_only_loopback_host_names_are_served(patches: list[dict[str, Any]]) -> None:
    dashboard = Dashboard(Tokens(), Scope(), allowed_hosts=frozenset({"127.0.0.1:8080"}))

    async def check(client: TestClient) -> None:
        r = await client.get("/healthz", headers={"Host": "rebound.example:8080"})
        assert r.status == 421
        r = await client.get("/healthz", headers={"Host": "127.0.0.1:8080"})
        assert r.status == 200

    serve(dashboard, check)


def test_sign_in_never_redirects_off_site() -> None:
    assert _safe_next("/policies/a/b") == "/policies/a/b"
    for hostile in ("https://evil.example/", "//evil.example/x", "", None, "javascript:x"):
        assert _safe_next(hostile) == "/"


def test_done_notices_are_fixed_texts() -> None:
    assert set(app_module.DONE) == {"retrain", "rollback", "pin", "unpin", "release"}


def test_locally_it_listens_on_loopback_only() -> None:
    from click.testing import CliRunner
    from freshet.command import main

    result = CliRunner().invoke(main, ["dashboard", "--listen", "0.0.0.0:8080"])
    assert result.exit_code != 0
    assert "listens on 127.0.0.1 only" in str(result.exception) + result.output
    result = CliRunner().invoke(main, ["dashboard", "--listen", "8080"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output


def test_each_access_question_is_asked_once_per_request() -> None:
    from freshet.dashboard.access import CachedAccess

    asked: list[tuple[str | None, str | None, str | None]] = []

    def ask(attributes: Any) -> bool:
        asked.append((attributes.verb, attributes.namespace, attributes.name))
        return attributes.verb == "get"

    access = CachedAccess(User("u"), ask)
    assert access.may("get", "a", "p") and access.may("get", "a", "p")
    assert not access.may("patch", "a", "p")
    assert asked == [("get", "a", "p"), ("patch", "a", "p")]
