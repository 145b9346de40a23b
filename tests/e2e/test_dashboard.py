"""The dashboard in a real browser: Debian's chromium, headless, driven through
chromium-driver by Selenium, against the dashboard the chart deploys on the node
(`dashboard.enabled`), signed in with real ServiceAccount tokens that the real
API server reviews. People are bound the ordinary way: `edit` and `view`, which
the chart's aggregated roles extend to TrainingPolicies.

FRESHET_SCREENSHOTS=docs/images saves a screenshot of each page (docs/dashboard.md).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import scenario as sc
from devstack import release
from devstack.browser import chromium, screenshot
from devstack.stack import Stack
from kubernetes import client
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

SHOTS = os.environ.get("FRESHET_SCREENSHOTS")
GARBAGE = bytes(range(256)) * 40  # binary, not CSV


@pytest.fixture(scope="module")
def dashboard(freshet_release: Stack) -> Iterator[str]:
    """The chart's dashboard, installed for this module and removed after it."""
    release.install(freshet_release, {"dashboard.enabled": "true"})
    try:
        yield release.dashboard_url(freshet_release)
    finally:
        release.install(freshet_release)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def person(api: client.ApiClient, ns: str, name: str, role: str | None) -> str:
    """A ServiceAccount bound `role` (a ClusterRole) in `ns`, and a token for it."""
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    if role is not None:
        client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
            ns,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=name),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
                ),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=ns)],
            ),
        )
    made = core.create_namespaced_service_account_token(
        name,
        ns,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    )
    return str(made.status.token)


def sign_in(browser: WebDriver, url: str, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{url}/login")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    # The click returns before the redirect's page has always loaded (seen once in
    # CI: the login page was still there); wait for the signed-in header.
    who = until(
        "the signed-in page",
        lambda: browser.find_element(By.CSS_SELECTOR, ".who span"),
        timeout=10,
    )
    assert who.text.startswith("system:serviceaccount:")


def shot(browser: WebDriver, name: str) -> None:
    """A full-page screenshot into $FRESHET_SCREENSHOTS, when it is set."""
    if SHOTS:
        screenshot(browser, Path(SHOTS) / f"dashboard-{name}.png")


def buttons(browser: WebDriver) -> set[str]:
    return {b.text for b in browser.find_elements(By.CSS_SELECTOR, "button[data-action]")}


def click(browser: WebDriver, label: str) -> None:
    (button,) = [
        b for b in browser.find_elements(By.CSS_SELECTOR, "button[data-action]") if b.text == label
    ]
    button.click()


def until(what: str, check: Callable[[], Any], timeout: float = 180, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except NoSuchElementException:
            found = None
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def svg_labels(browser: WebDriver) -> list[str]:
    """The x-axis labels of the first chart (the versions)."""
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart")
    return [t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.tick[text-anchor='middle']")]


def test_an_editor_retrains_watches_the_run_and_rolls_back(
    stack: Stack,
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    dashboard: str,
    browser: WebDriver,
) -> None:
    sc.create_policy(
        kube_api, ns, sc.policy("web", gate={"metric": "accuracy", "maxRegression": "0.2"})
    )
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(400, seed=90))
    sc.wait_for("v1", lambda: sc.serving_version(sc.get_policy(kube_api, ns, "web")) == "v1")
    editor = person(kube_api, ns, "editor", "edit")
    sign_in(browser, dashboard, editor)

    # The list: the policy with its serving version.
    row = browser.find_element(By.XPATH, f"//a[@href='/policies/{ns}/web']/ancestor::tr")
    assert "v1" in row.text and "Dynamic" in row.text
    shot(browser, "policies")

    browser.get(f"{dashboard}/policies/{ns}/web")
    assert buttons(browser) >= {"Retrain now", "Roll back", "Pin v1"}
    assert svg_labels(browser) == ["v1"]
    click(browser, "Retrain now")
    assert "Retrain requested" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    annotations = sc.get_policy(kube_api, ns, "web")["metadata"]["annotations"]
    assert "freshet.dev/retrain" in annotations

    # The run appears in the runs table; its page shows progress, then its statistics.
    link = until(
        "the v2 run in the table",
        lambda: (
            browser.get(f"{dashboard}/policies/{ns}/web")
            or [
                a
                for a in browser.find_elements(By.CSS_SELECTOR, "table.runs a")
                if a.find_element(By.XPATH, "../following-sibling::td[1]").text == "v2"
            ]
        ),
        every=0.5,
    )[0]
    run_url = link.get_attribute("href")
    browser.get(run_url)
    saw_progress = bool(browser.find_elements(By.ID, "progress"))
    if saw_progress:
        assert "Job" in browser.find_element(By.ID, "progress").text
        shot(browser, "run-progress")
    # No reload from here: the page refreshes itself (meta refresh) while the run is in flight.
    until(
        "the run's decision", lambda: browser.find_elements(By.CSS_SELECTOR, ".decision"), every=1
    )
    stats = browser.find_element(By.ID, "statistics")
    assert saw_progress, "the run page never showed the run in progress"
    text = stats.text
    assert "ROWS TRAINED" in text.upper() and "ROWS HELD OUT" in text.upper()
    assert "accuracy" in text
    decision = browser.find_element(By.CSS_SELECTOR, ".decision").text
    assert "Promoted" in decision
    shot(browser, "run")

    browser.get(f"{dashboard}/policies/{ns}/web")
    assert svg_labels(browser) == ["v1", "v2"]
    marks = browser.find_elements(By.CSS_SELECTOR, "svg.chart g.mark.candidate.promoted")
    assert len(marks) == 2
    shot(browser, "policy")

    # Roll back from the page: kubectl and the Events see it.
    click(browser, "Roll back")
    assert "Rollback requested" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    p = sc.wait_for(
        "the rollback",
        lambda: (q := sc.get_policy(kube_api, ns, "web")) and q["status"].get("lastRollback") and q,
    )
    assert p["status"]["lastRollback"]["toVersion"] == "v1"
    serving = subprocess.run(
        [
            *stack.kubectl(),
            "-n",
            ns,
            "get",
            "trainingpolicy",
            "web",
            "-o",
            "jsonpath={.status.serving.version}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert serving == "v1"
    events = (
        client.CoreV1Api(kube_api)
        .list_namespaced_event(ns, field_selector="involvedObject.name=web")
        .items
    )
    assert any(e.reason == "RolledBack" for e in events), [e.reason for e in events]
    browser.get(f"{dashboard}/policies/{ns}/web")
    assert "RolledBack" in browser.find_element(By.CSS_SELECTOR, "table.events").text
    assert "v1" in browser.find_element(By.CSS_SELECTOR, ".state .version").text


def _post(url: str, data: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(data).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request) as r:  # a redirect is followed: 200 at the end
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    dashboard: str,
    browser: WebDriver,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("ro"))
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=91))
    sc.wait_for("v1", lambda: sc.serving_version(sc.get_policy(kube_api, ns, "ro")) == "v1")
    viewer = person(kube_api, ns, "viewer", "view")
    nobody = person(kube_api, ns, "nobody", None)

    sign_in(browser, dashboard, viewer)
    browser.get(f"{dashboard}/policies/{ns}/ro")
    assert buttons(browser) == set()
    assert "Read-only" in browser.find_element(By.CSS_SELECTOR, ".readonly").text
    assert svg_labels(browser) == ["v1"]  # results are shown: reads are allowed

    # Forged: the viewer's own session and CSRF token, a POST the page never offered.
    cookie = browser.get_cookie("freshet-session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    csrf = browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] input[name=csrf]")
    jar = {"Cookie": f"freshet-session={cookie['value']}"}
    url = f"{dashboard}/policies/{ns}/ro/retrain"
    status, body = _post(url, {"csrf": csrf.get_attribute("value") or ""}, jar)
    assert status == 403 and f"system:serviceaccount:{ns}:viewer may not patch" in body
    status, body = _post(url, {}, jar)
    assert status == 403 and "CSRF" in body
    status, _ = _post(f"{dashboard}/policies/{ns}/ro/release", {"key": "incoming/b0.csv"}, jar)
    assert status == 403
    assert "freshet.dev/retrain" not in (
        sc.get_policy(kube_api, ns, "ro")["metadata"].get("annotations") or {}
    )

    # An OIDC-aware proxy's way: the bearer token on each request, no sign-in.
    status, page = _get(f"{dashboard}/policies/{ns}/ro", {"Authorization": f"Bearer {viewer}"})
    assert status == 200 and "Read-only" in page
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert token is not None
    status, _ = _post(url, {"csrf": token.group(1)}, {"Authorization": f"Bearer {viewer}"})
    assert status == 403
    # Someone with no rights on policies sees nothing; a made-up token is refused.
    status, body = _get(f"{dashboard}/policies/{ns}/ro", {"Authorization": f"Bearer {nobody}"})
    assert status == 403 and "may not get trainingpolicy" in body
    status, page = _get(f"{dashboard}/", {"Authorization": f"Bearer {nobody}"})
    assert status == 200 and f"/policies/{ns}/ro" not in page
    status, _ = _get(f"{dashboard}/", {"Authorization": "Bearer not-a-token"})
    assert status == 401
    browser.get(f"{dashboard}/login")
    shot(browser, "login")


def test_quarantine_reasons_and_release(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    dashboard: str,
    browser: WebDriver,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("qweb", serving=None))
    sc.put(s3, bucket, "incoming/good.csv", sc.batch_csv(400, seed=92))
    sc.put(s3, bucket, "incoming/broken.csv", GARBAGE)
    p = sc.wait_for(
        "the bad batch quarantined",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "qweb"))
            and (q.get("status") or {}).get("data", {}).get("quarantined") == 1
            and q
        ),
    )
    before = p["status"]["lastRun"]["runId"]
    sign_in(browser, dashboard, person(kube_api, ns, "editor", "edit"))

    browser.get(f"{dashboard}/policies/{ns}/qweb")
    browser.find_element(By.PARTIAL_LINK_TEXT, "quarantined").click()
    (held,) = browser.find_elements(By.CSS_SELECTOR, "article.held")
    assert "incoming/broken.csv" in held.text
    reason = p["status"]["conditions"]
    data_healthy = next(c for c in reason if c["type"] == "DataHealthy")
    assert data_healthy["status"] == "False"
    failed = held.find_elements(By.CSS_SELECTOR, "table.checks tr.failed")
    assert failed, held.text  # every failed check, with its figures
    assert "FAILED" in failed[0].text
    shot(browser, "quarantine")

    click(browser, "Release")
    assert "Released" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert browser.find_elements(By.CSS_SELECTOR, "article.held") == []
    keys = {o.object_name for o in s3.list_objects(bucket, recursive=True)}
    root = p["status"]["stateRoot"]
    assert "incoming/broken.csv" in keys
    assert not any(k.startswith(f"{root}quarantine/incoming/broken.csv") for k in keys)
    # Pending again: the operator takes it into a new run (which validates it again).
    sc.wait_for(
        "a run over the released batch",
        lambda: sc.get_policy(kube_api, ns, "qweb")["status"]["lastRun"]["runId"] != before,
    )


def _serving(url: str) -> bool:
    try:
        return _get(url, {})[0] == 200
    except OSError:  # not listening yet
        return False


def test_locally_as_the_kubeconfig_user(
    stack: Stack, kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    """`freshet dashboard` on a laptop: the kubeconfig's identity, loopback only."""
    sc.create_policy(kube_api, ns, sc.policy("local"))
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=93))
    sc.wait_for("v1", lambda: sc.serving_version(sc.get_policy(kube_api, ns, "local")) == "v1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    freshet = Path(sys.executable).parent / "freshet"
    server = subprocess.Popen(
        [
            str(freshet),
            "dashboard",
            "--kubeconfig",
            stack.kubeconfig,
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        until("the local dashboard", lambda: _serving(f"{url}/healthz"), timeout=30)
        status, page = _get(f"{url}/", {})
        assert status == 200 and f"/policies/{ns}/local" in page
        status, page = _get(f"{url}/policies/{ns}/local", {})
        assert status == 200 and "Retrain now" in page  # the kubeconfig's user is an admin
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert token is not None
        status, _ = _post(f"{url}/policies/{ns}/local/retrain", {}, {})
        assert status == 403
        status, _ = _post(f"{url}/policies/{ns}/local/retrain", {"csrf": token.group(1)}, {})
        assert status == 200  # after the redirect back to the policy
        annotations = sc.get_policy(kube_api, ns, "local")["metadata"]["annotations"]
        assert "freshet.dev/retrain" in annotations
        # Another site's name resolving to 127.0.0.1 (DNS rebinding) is not served.
        status, _ = _get(f"{url}/", {"Host": f"rebound.example:{port}"})
        assert status == 421
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert "Traceback" not in err, err
