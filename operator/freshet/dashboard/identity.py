"""From a request to a Viewer: who is asking and which credentials act for them.

Locally the kubeconfig's identity is the only one (the server listens on the
loopback interface only). In the cluster a request carries a bearer token, from
an OIDC-aware proxy (`Authorization: Bearer ...`) or a login that pasted one (a
session cookie); the token is reviewed, and changes are made with it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from kubernetes import client

from freshet.dashboard.access import User, review_token, reviewed_access, self_access, whoami
from freshet.dashboard.gather import Viewer
from freshet.dashboard.sessions import COOKIE, Sessions, bearer_requester

REVIEW_SECONDS = 30.0
"""A token's TokenReview is reused this long (the API server caches its own as well)."""
MAX_CLIENTS = 256


@dataclass(frozen=True)
class Credentials:
    """What a request presented: a bearer token, a session cookie, or nothing."""

    bearer: str | None
    session: str | None

    @classmethod
    def of(cls, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Credentials:
        auth = headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        return cls(bearer, cookies.get(COOKIE))


class LocalIdentity:
    """`freshet dashboard` on a laptop: everything as the kubeconfig's user."""

    login_required = False

    def __init__(self, api: client.ApiClient, home_namespace: str) -> None:
        self._api = api
        self._home = home_namespace
        self._user: User | None = None

    def viewer(self, presented: Credentials) -> Viewer:
        if self._user is None:
            self._user = whoami(self._api)
        return Viewer(
            user=self._user,
            access=self_access(self._api, self._user),
            actor=self._api,
            reader=self._api,
            requester=f"local:{self._user.name}",
            home_namespace=self._home,
        )


class ClusterIdentity:
    """In a pod: TokenReview for the person, SubjectAccessReviews for what they ask."""

    login_required = True

    def __init__(self, reviewer: client.ApiClient, sessions: Sessions) -> None:
        self._reviewer = reviewer
        self.sessions = sessions
        self._lock = threading.Lock()
        self._reviewed: dict[str, tuple[User, float]] = {}
        self._clients: OrderedDict[str, client.ApiClient] = OrderedDict()

    def review(self, token: str) -> User:
        """The token's user; raises access.Unauthenticated when it is refused."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._reviewed.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        user = review_token(self._reviewer, token)
        with self._lock:
            self._reviewed[digest] = (user, time.monotonic() + REVIEW_SECONDS)
        return user

    def viewer(self, presented: Credentials) -> Viewer | None:
        """The viewer, or None when the request carries no usable credentials."""
        if presented.bearer is not None:
            token, user = presented.bearer, self.review(presented.bearer)
            requester = bearer_requester(token)
        else:
            login = self.sessions.get(presented.session)
            if login is None:
                return None
            token, user, requester = login.token, login.user, f"session:{presented.session}"
        return Viewer(
            user=user,
            access=reviewed_access(self._reviewer, user),
            actor=self._client_for(token),
            reader=self._reviewer,
            requester=requester,
        )

    def _client_for(self, token: str) -> client.ApiClient:
        """An API client that authenticates as the token's user (kept per token)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            found = self._clients.get(digest)
            if found is not None:
                self._clients.move_to_end(digest)
                return found
        own = self._reviewer.configuration
        conf = client.Configuration()
        conf.host = own.host
        conf.ssl_ca_cert = own.ssl_ca_cert
        conf.verify_ssl = own.verify_ssl
        conf.api_key = {"authorization": f"Bearer {token}"}
        made = client.ApiClient(conf)
        with self._lock:
            self._clients[digest] = made
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)[1].close()  # type: ignore[no-untyped-call]
        return made
