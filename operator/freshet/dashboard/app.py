"""The dashboard's routes: pages (GET, readable without JavaScript) and actions
(POST with a CSRF token, then a redirect back to the page).

Kubernetes and store calls are blocking, so each page is built in a worker
thread (`asyncio.to_thread`); the event loop only parses requests and writes
responses. Every page checks the viewer's access to the policy before anything
of it is read; every action checks `patch` before it is made, and is then made
with the viewer's own credentials.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import jinja2
from aiohttp import web
from freshet_contract.preprocess import prep_job_name
from freshet_contract.result import RunResult
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from freshet import actions
from freshet.dashboard import gather, views
from freshet.dashboard.access import Unauthenticated
from freshet.dashboard.charts import render
from freshet.dashboard.gather import Scope, StoreError, Viewer
from freshet.dashboard.identity import ClusterIdentity, Credentials
from freshet.dashboard.sessions import COOKIE, SESSION_SECONDS, Csrf
from freshet.failures import api_message
from freshet.ledger import Ledger
from freshet.quarantine import NotQuarantined

log = logging.getLogger("freshet.dashboard")

NOTHING = "\u2013"
"""Shown for a missing value (an en dash)."""

RECENT_RUNS = 20
"""Runs shown in the policy page's table; older ones are folded below it."""

REFRESH_SECONDS = 3
"""How often a page showing a run in flight reloads itself."""

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)

DONE = {
    "retrain": "Retrain requested: the operator starts a run on its next look (seconds).",
    "rollback": "Rollback requested: the previous model serves again shortly.",
    "pin": "Pinned: this version serves, and nothing newer is promoted until unpinned.",
    "unpin": "Unpinned: promotions go through again.",
    "release": "Released: the batch is back under its key and pending; the next run"
    " validates it again.",
}


class Identity(Protocol):
    login_required: bool

    def viewer(self, presented: Credentials) -> Viewer | None: ...


class Forbidden(Exception):
    """The viewer may not do this; the message names who, what and where."""


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class Page:
    template: str
    context: dict[str, Any]
    status: int = 200


Handler = Callable[..., Awaitable[web.StreamResponse]]


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("freshet.dashboard", "templates"),
        autoescape=True,
        # Lenient: pages read API objects as they come, and a field an older
        # operator never wrote is an empty cell, not a failed page.
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_number, duration=fmt_duration, when=fmt_when, message=fmt_message)
    env.globals.update(
        chart=render,
        metric_rows=views.metric_rows,
        reason_checks=views.reason_checks,
        run_phases=views.run_phases,
        summary=views.summary,
        pinnable=views.pinnable,
        condition_tone=views.condition_tone,
    )
    return env


def fmt_number(value: Any) -> str:
    """Numbers for people: four significant digits, integers as they are."""
    if value is None:
        return NOTHING
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return NOTHING
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min"


def fmt_when(value: datetime | str | None) -> str:
    """A timestamp, to the second, in UTC."""
    if not value:
        return NOTHING
    when = value
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


_LONG_FLOAT = re.compile(r"-?\d+\.\d{5,}(?:[eE][-+]?\d+)?")


def fmt_message(text: Any) -> str:
    """A message for people: floats the operator wrote in full rounded to four
    significant digits (the tables keep every digit)."""
    return _LONG_FLOAT.sub(lambda m: f"{float(m.group()):.4g}", str(text or ""))


class Dashboard:
    def __init__(
        self,
        identity: Identity,
        scope: Scope,
        csrf: Csrf | None = None,
        *,
        allowed_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.identity = identity
        self.scope = scope
        self.csrf = csrf or Csrf()
        self.env = templates()
        self.allowed_hosts = allowed_hosts
        """Local mode: the Host headers accepted (DNS rebinding); empty: any."""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._errors])
        static = resources.files("freshet.dashboard") / "static"
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/login", self.login_form),
                web.post("/login", self.login),
                web.post("/logout", self.logout),
                web.get("/", self.index),
                web.get("/policies/{ns}/{name}", self.policy),
                web.get("/policies/{ns}/{name}/runs/{run}", self.run),
                web.get("/policies/{ns}/{name}/quarantine", self.quarantine),
                web.post("/policies/{ns}/{name}/{action}", self.act),
                web.static("/static", str(static)),
            ]
        )
        return app

    # Middlewares ---------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.allowed_hosts and request.host not in self.allowed_hosts:
            # A page on another site resolving its name to 127.0.0.1 (DNS rebinding).
            return web.Response(status=421, text=f"unexpected Host {request.host!r}\n")
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Forbidden as e:
            return self._error(403, "Forbidden", str(e))
        except NotFound as e:
            return self._error(404, "Not found", str(e))
        except Unauthenticated as e:
            return self._error(401, "Not signed in", f"the token was refused: {e}")
        except ApiException as e:
            if e.status in (403, 404):
                title = "Forbidden" if e.status == 403 else "Not found"
                return self._error(e.status, title, api_message(e))
            log.warning("API server error", extra={"path": request.path, "error": api_message(e)})
            return self._error(502, "The API server refused", api_message(e))
        except HTTPError as e:
            return self._error(502, "The API server is unreachable", str(e))

    def _error(self, status: int, title: str, message: str) -> web.Response:
        html = self.env.get_template("error.html").render(
            title=title, message=message, status=status, viewer=None, csrf_token=""
        )
        return web.Response(status=status, text=html, content_type="text/html")

    # Plumbing ----------------------------------------------------------------

    async def _viewer(self, request: web.Request) -> Viewer | None:
        presented = Credentials.of(request.headers, request.cookies)
        return await asyncio.to_thread(self.identity.viewer, presented)

    async def _page(
        self, request: web.Request, build: Callable[[Viewer, Mapping[str, str]], Page]
    ) -> web.StreamResponse:
        viewer = await self._viewer(request)
        if viewer is None:
            raise web.HTTPSeeOther(f"/login?next={request.path_qs}")
        params = {**request.match_info, **request.query}
        page = await asyncio.to_thread(build, viewer, params)
        done = request.query.get("done", "")
        context = {
            **page.context,
            "viewer": viewer,
            "csrf_token": self.csrf.token(viewer.requester),
            "notice": DONE.get(done, ""),
            "login_required": self.identity.login_required,
        }
        html = await asyncio.to_thread(self.env.get_template(page.template).render, **context)
        return web.Response(status=page.status, text=html, content_type="text/html")

    def _allowed(self, viewer: Viewer, verb: str, ns: str, name: str | None = None) -> None:
        if not viewer.access.may(verb, ns, name):
            what = f"trainingpolicy {ns}/{name}" if name else f"trainingpolicies in {ns}"
            raise Forbidden(f"{viewer.user.name} may not {verb} {what}")

    def _policy(self, viewer: Viewer, ns: str, name: str) -> dict[str, Any]:
        self._allowed(viewer, "get", ns, name)
        if self.scope.namespaces and ns not in self.scope.namespaces:
            raise NotFound(f"this dashboard serves {', '.join(self.scope.namespaces)} only")
        try:
            return gather.policy(viewer, ns, name)
        except ApiException as e:
            if e.status == 404:
                raise NotFound(f"TrainingPolicy {ns}/{name} not found") from e
            raise

    # Pages -------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def index(self, request: web.Request) -> web.StreamResponse:
        return await self._page(request, self._index)

    def _index(self, viewer: Viewer, params: Mapping[str, str]) -> Page:
        rows = [views.policy_row(p) for p in gather.policies(viewer, self.scope)]
        return Page("policies.html", {"rows": rows})

    async def policy(self, request: web.Request) -> web.StreamResponse:
        return await self._page(request, self._policy_page)

    def _policy_page(self, viewer: Viewer, params: Mapping[str, str]) -> Page:
        ns, name = params["ns"], params["name"]
        p = self._policy(viewer, ns, name)
        book, newest, store_error = None, None, ""
        try:
            q = gather.store(viewer, self.scope, p)
            book = gather.ledger(q)
            if book.runs and p["spec"].get("data", {}).get("labels"):
                newest = gather.result(q, book.runs[0].run_id)
        except StoreError as e:
            store_error = str(e)
        may = self._permissions(viewer, p)
        context = policy_context(
            p,
            book=book,
            newest=newest,
            events=gather.events(viewer, p),
            store_error=store_error,
            may=may,
        )
        return Page("policy.html", context)

    def _permissions(self, viewer: Viewer, p: dict[str, Any]) -> views.Permissions:
        meta = p["metadata"]
        patch = viewer.access.may("patch", meta["namespace"], meta["name"])
        return views.Permissions(patch=patch, can_pin=patch and actions.can_pin(p))

    async def run(self, request: web.Request) -> web.StreamResponse:
        return await self._page(request, self._run_page)

    def _run_page(self, viewer: Viewer, params: Mapping[str, str]) -> Page:
        ns, name, run_id = params["ns"], params["name"], params["run"]
        p = self._policy(viewer, ns, name)
        record, intent, result, store_error = None, None, None, ""
        try:
            q = gather.store(viewer, self.scope, p)
            book = gather.ledger(q)
            record = views.find_run(book, run_id)
            if book.intent is not None and book.intent.run_id == run_id:
                intent = book.intent
            result = gather.result(q, run_id)
        except StoreError as e:
            store_error = str(e)
        active = views.is_active(p, run_id) or (intent is not None and record is None)
        if record is None and intent is None and result is None and not store_error:
            raise NotFound(f"policy {ns}/{name} has no run {run_id} in its record")
        last = (p.get("status") or {}).get("lastRun") or {}
        job_name = last.get("jobName") if last.get("runId") == run_id else run_id
        if intent is not None and intent.phase == "Preprocessing":
            job_name = prep_job_name(run_id)  # its training Job comes after
        context = {
            "p": p,
            "run_id": run_id,
            "record": record,
            "intent": intent,
            "result": result,
            "metric": views.gate_metric(p),
            "progress": gather.progress(viewer, ns, str(job_name)) if active else None,
            "active": active,
            "store_error": store_error,
            "refresh": REFRESH_SECONDS if active else None,
        }
        return Page("run.html", context)

    async def quarantine(self, request: web.Request) -> web.StreamResponse:
        return await self._page(request, self._quarantine_page)

    def _quarantine_page(self, viewer: Viewer, params: Mapping[str, str]) -> Page:
        p = self._policy(viewer, params["ns"], params["name"])
        held, store_error = [], ""
        try:
            held = gather.held(gather.store(viewer, self.scope, p))
        except StoreError as e:
            store_error = str(e)
        context = {
            "p": p,
            "held": held,
            "store_error": store_error,
            "may": self._permissions(viewer, p),
        }
        return Page("quarantine.html", context)

    # Actions -----------------------------------------------------------------

    async def act(self, request: web.Request) -> web.StreamResponse:
        viewer = await self._viewer(request)
        if viewer is None:
            return self._error(401, "Not signed in", "sign in first: /login")
        form = await request.post()
        if not self.csrf.check(viewer.requester, str(form.get("csrf", ""))):
            return self._error(
                403, "Forbidden", "the form's CSRF token is missing or not yours: reload the page"
            )
        ns, name, action = (request.match_info[k] for k in ("ns", "name", "action"))
        fields = {k: str(v) for k, v in form.items()}
        where = await asyncio.to_thread(self._act, viewer, ns, name, action, fields)
        raise web.HTTPSeeOther(f"{where}?done={action}")

    def _act(self, viewer: Viewer, ns: str, name: str, action: str, form: Mapping[str, str]) -> str:
        """Make the change as the viewer; return the page to go back to."""
        if action not in DONE:
            raise NotFound(f"no action {action!r}")
        self._allowed(viewer, "patch", ns, name)
        p = self._policy(viewer, ns, name)
        back = f"/policies/{ns}/{name}"
        log.info(
            "action",
            extra={
                "policy": f"{ns}/{name}",
                "action": action,
                "user": viewer.user.name,
                "version": form.get("version"),
            },
        )
        if action == "release":
            key = form.get("key", "")
            try:
                gather.store(viewer, self.scope, p).release(key)
            except NotQuarantined as e:
                raise NotFound(str(e)) from e
            except StoreError as e:
                raise Forbidden(f"cannot release {key}: {e}") from e
            return f"{back}/quarantine"
        if action == "retrain":
            body = actions.retrain(actions.request_value())
        elif action == "rollback":
            body = actions.rollback(actions.request_value())
        elif action == "pin":
            if not actions.can_pin(p):
                raise Forbidden(f"{ns}/{name} has no spec.serving: nothing to pin")
            try:
                body = actions.pin(form.get("version", ""))
            except actions.InvalidVersion as e:
                raise Forbidden(str(e)) from e
        else:
            body = actions.unpin()
        gather.patch(viewer, ns, name, body)
        return back

    # Login (in the cluster) ------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        html = self.env.get_template("login.html").render(
            viewer=None, csrf_token="", error="", next=_safe_next(request.query.get("next"))
        )
        return web.Response(text=html, content_type="text/html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not isinstance(self.identity, ClusterIdentity):
            raise web.HTTPSeeOther("/")
        form = await request.post()
        token, target = str(form.get("token", "")).strip(), _safe_next(str(form.get("next", "")))
        try:
            user = await asyncio.to_thread(self.identity.review, token)
        except Unauthenticated as e:
            html = self.env.get_template("login.html").render(
                viewer=None, csrf_token="", error=f"That token was refused: {e}", next=target
            )
            return web.Response(status=401, text=html, content_type="text/html")
        sid = self.identity.sessions.open(token, user)
        log.info("signed in", extra={"user": user.name})
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE,
            sid,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Strict",
            path="/",
            secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https",
        )
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        viewer = await self._viewer(request)
        form = await request.post()
        mine = viewer is not None and self.csrf.check(viewer.requester, str(form.get("csrf", "")))
        if mine and isinstance(self.identity, ClusterIdentity):
            self.identity.sessions.close(request.cookies.get(COOKIE))
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response


def policy_context(
    p: dict[str, Any],
    *,
    book: Ledger | None,
    newest: RunResult | None,
    events: list[dict[str, Any]],
    store_error: str,
    may: views.Permissions,
) -> dict[str, Any]:
    """What policy.html shows, from what was read (pure: the benchmark renders it too)."""
    metric, watched = views.gate_metric(p), views.monitored_metric(p)
    row = views.policy_row(p)
    return {
        "p": p,
        "row": row,
        "metric": metric,
        "watched": watched,
        "book": book,
        "runs": views.run_rows(book, metric) if book else [],
        "recent": RECENT_RUNS,
        "versions": views.version_chart(book, metric) if book else None,
        "monitoring": views.monitoring_chart(book, watched) if book else None,
        "labels": views.label_maturity(p, newest),
        "events": events,
        "store_error": store_error,
        "may": may,
        "refresh": REFRESH_SECONDS if row.training else None,
    }


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
