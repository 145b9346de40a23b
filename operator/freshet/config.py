"""Operator-wide settings, read once from the environment at startup."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    # At most this many training Jobs in flight across all policies: concurrency
    # comes from many policies, each of which runs serially.
    max_concurrent_runs: int = 10
    # Of those, at most this many backfills (retraining for late labels), so a
    # catch-up after downtime leaves room for runs on new data.
    max_concurrent_backfills: int = 2
    metrics_port: int = 9090
    # How often a policy re-checks things nothing notifies it about
    # (a Deployment rollout, a Secret that was fixed).
    resync_seconds: float = 30.0
    # How often a policy with nothing in flight and nothing due by the clock is
    # looked at anyway: data, spec and Job changes wake it at once, and what
    # time alone changes (quiet periods, label maturity, staleness, measurements)
    # sets its own deadline. This only bounds how long a hand edit of the
    # Deployment's model fields, or a Secret rotated while the old key still
    # works, goes unnoticed; at a thousand policies every such pass costs CPU.
    idle_resync_seconds: float = 600.0
    rollout_timeout_seconds: float = 600.0
    # The namespaces it serves (the chart's `namespaces`); empty: all of them.
    namespaces: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> OperatorConfig:
        return cls(
            max_concurrent_runs=int(os.environ.get("FRESHET_MAX_CONCURRENT_RUNS", "10")),
            max_concurrent_backfills=int(os.environ.get("FRESHET_MAX_CONCURRENT_BACKFILLS", "2")),
            metrics_port=int(os.environ.get("FRESHET_METRICS_PORT", "9090")),
            resync_seconds=float(os.environ.get("FRESHET_RESYNC_SECONDS", "30")),
            idle_resync_seconds=float(os.environ.get("FRESHET_IDLE_RESYNC_SECONDS", "600")),
            rollout_timeout_seconds=float(os.environ.get("FRESHET_ROLLOUT_TIMEOUT", "600")),
            namespaces=tuple(
                n.strip() for n in os.environ.get("FRESHET_NAMESPACES", "").split(",") if n.strip()
            ),
        )
