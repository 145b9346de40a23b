"""Who is asking, and what they may do: Kubernetes authentication and authorization.

In the cluster the dashboard never decides by itself: a bearer token is checked
with a TokenReview, and each page or action with a SubjectAccessReview for that
user on that policy. Locally, the kubeconfig's identity asks the API server about
itself (SelfSubjectAccessReview). The dashboard's own ServiceAccount is used only
for reads, and only after the user was allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client

from freshet import names


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, list[str]] = field(default_factory=dict)


class Unauthenticated(Exception):
    """The token was refused (expired, revoked, or never valid)."""


def review_token(reviewer: client.ApiClient, token: str) -> User:
    """The user a bearer token belongs to, as the API server's authenticators say."""
    review = client.AuthenticationV1Api(reviewer).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
    )
    status = review.status
    if status is None or not status.authenticated or status.user is None:
        raise Unauthenticated((status.error if status else None) or "token not authenticated")
    user = status.user
    return User(
        name=user.username or "",
        uid=user.uid or "",
        groups=tuple(user.groups or ()),
        extra={k: list(v) for k, v in (user.extra or {}).items()},
    )


class Access(Protocol):
    """Whether the user may do `verb` on TrainingPolicies (one, or all in a namespace)."""

    user: User

    def may(self, verb: str, namespace: str, name: str | None = None) -> bool: ...


def _attributes(verb: str, namespace: str, name: str | None) -> client.V1ResourceAttributes:
    return client.V1ResourceAttributes(
        group=names.GROUP,
        resource=names.PLURAL,
        verb=verb,
        namespace=namespace,
        name=name,
    )


Ask = Callable[[client.V1ResourceAttributes], bool]


class CachedAccess:
    """A user's answers, each asked once for the lifetime of the object: one request."""

    def __init__(self, user: User, ask: Ask) -> None:
        self.user = user
        self._ask = ask
        self._answers: dict[tuple[str, str, str | None], bool] = {}

    def may(self, verb: str, namespace: str, name: str | None = None) -> bool:
        key = (verb, namespace, name)
        if key not in self._answers:
            self._answers[key] = self._ask(_attributes(verb, namespace, name))
        return self._answers[key]


def reviewed_access(reviewer: client.ApiClient, user: User) -> CachedAccess:
    """In the cluster: SubjectAccessReviews for a user the TokenReview named."""
    authz = client.AuthorizationV1Api(reviewer)

    def ask(attributes: client.V1ResourceAttributes) -> bool:
        review = authz.create_subject_access_review(
            client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user=user.name,
                    uid=user.uid or None,
                    groups=list(user.groups),
                    extra=dict(user.extra) or None,
                    resource_attributes=attributes,
                )
            )
        )
        return bool(review.status and review.status.allowed)

    return CachedAccess(user, ask)


def self_access(api: client.ApiClient, user: User) -> CachedAccess:
    """Locally: the kubeconfig's identity asks about itself."""
    authz = client.AuthorizationV1Api(api)

    def ask(attributes: client.V1ResourceAttributes) -> bool:
        review = authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
            )
        )
        return bool(review.status and review.status.allowed)

    return CachedAccess(user, ask)


def whoami(api: client.ApiClient) -> User:
    """The kubeconfig's identity (SelfSubjectReview, Kubernetes 1.28+)."""
    review: Any = client.AuthenticationV1Api(api).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    info = review.status.user_info if review.status else None
    if info is None:
        return User(name="(kubeconfig)")
    return User(name=info.username or "", uid=info.uid or "", groups=tuple(info.groups or ()))
