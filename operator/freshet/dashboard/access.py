"""Who is asking, and what they may do: Kubernetes authentication and authorization.

In the cluster the dashboard never decides by itself: a bearer token is checked
with a TokenReview, and each page or action with a SubjectAccessReview for that
user on that policy. Locally, the kubeconfig's identity asks the API server about
itself (SelfSubjectAccessReview). The dashboard's own ServiceAccount is used only
for reads, and only after the user was allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class _Cached:
    """Answers are cached for the lifetime of the object: one request."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str, str | None], bool] = {}

    def may(self, verb: str, namespace: str, name: str | None = None) -> bool:
        key = (verb, namespace, name)
        if key not in self._answers:
            self._answers[key] = self._ask(verb, namespace, name)
        return self._answers[key]

    def _ask(self, verb: str, namespace: str, name: str | None) -> bool:
        raise NotImplementedError


class ReviewedAccess(_Cached):
    """In the cluster: SubjectAccessReviews for a user the TokenReview named."""

    def __init__(self, reviewer: client.ApiClient, user: User) -> None:
        super().__init__()
        self.user = user
        self._authz = client.AuthorizationV1Api(reviewer)

    def _ask(self, verb: str, namespace: str, name: str | None) -> bool:
        review = self._authz.create_subject_access_review(
            client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user=self.user.name,
                    uid=self.user.uid or None,
                    groups=list(self.user.groups),
                    extra=dict(self.user.extra) or None,
                    resource_attributes=_attributes(verb, namespace, name),
                )
            )
        )
        return bool(review.status and review.status.allowed)


class SelfAccess(_Cached):
    """Locally: the kubeconfig's identity asks about itself."""

    def __init__(self, api: client.ApiClient, user: User) -> None:
        super().__init__()
        self.user = user
        self._authz = client.AuthorizationV1Api(api)

    def _ask(self, verb: str, namespace: str, name: str | None) -> bool:
        review = self._authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=_attributes(verb, namespace, name)
                )
            )
        )
        return bool(review.status and review.status.allowed)


def whoami(api: client.ApiClient) -> User:
    """The kubeconfig's identity (SelfSubjectReview, Kubernetes 1.28+)."""
    review: Any = client.AuthenticationV1Api(api).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    info = review.status.user_info if review.status else None
    if info is None:
        return User(name="(kubeconfig)")
    return User(name=info.username or "", uid=info.uid or "", groups=tuple(info.groups or ()))
