"""How a rule's outcome is written down: one `Check` per rule, figures always.

Every rule produces a check for every batch, passed, failed or skipped, so a
batch's report has the same shape whether it was accepted or not and figures
can be compared across batches. Numbers are rounded to six digits: the report
is for humans and dashboards, and identical inputs give identical documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from freshet_contract.result import Check, ColumnFigures

from freshet_trainer.reasons import BatchReason

_DIGITS = 6


def rounded(value: float | None) -> float | None:
    """A JSON-safe figure: rounded, and None for NaN (JSON has no NaN)."""
    if value is None or math.isnan(value):
        return None
    return round(float(value), _DIGITS)


@dataclass(frozen=True)
class Rule:
    """A named check (`name`, lowerCamel) and the code a failure quarantines with."""

    name: str
    code: BatchReason

    def outcome(
        self,
        passed: bool,
        *,
        value: float | None = None,
        limit: float | None = None,
        column: str | None = None,
        message: str = "",
        columns: Sequence[ColumnFigures] = (),
    ) -> Check:
        return Check(
            name=self.name,
            code=self.code,
            passed=passed,
            value=rounded(value),
            limit=rounded(limit),
            column=column,
            message=message,
            columns=list(columns),
        )

    def skipped(self, why: str) -> Check:
        return Check(name=self.name, code=self.code, passed=True, skipped=True, message=why)


def figures(
    column: str,
    passed: bool,
    value: float | None,
    limit: float | None,
    *,
    reference: float | None = None,
    p_value: float | None = None,
    method: str | None = None,
) -> ColumnFigures:
    return ColumnFigures(
        column=column,
        passed=passed,
        value=rounded(value),
        limit=rounded(limit),
        reference=rounded(reference),
        p_value=rounded(p_value),
        method=method,
    )


def worst_column(
    rule: Rule, per_column: list[ColumnFigures], describe: str, empty_message: str
) -> Check:
    """One check from column figures: failed if any column failed, headlined by the
    column furthest over (or closest to) its limit."""
    if not per_column:
        return rule.skipped(empty_message)
    failing = [f for f in per_column if not f.passed]
    pool = failing or per_column
    worst = max(pool, key=lambda f: (f.value or 0.0) - (f.limit or 0.0))
    message = (
        f"{len(failing)} of {len(per_column)} column(s) {describe}: "
        + ", ".join(repr(f.column) for f in failing[:10])
        if failing
        else f"{len(per_column)} column(s) checked"
    )
    return rule.outcome(
        not failing,
        value=worst.value,
        limit=worst.limit,
        column=worst.column,
        message=message,
        columns=per_column,
    )


def summary(checks: Sequence[Check]) -> str:
    """The failed checks in one line: code, column, figures and message."""
    parts = []
    for check in checks:
        if check.passed:
            continue
        where = f" {check.column!r}" if check.column else ""
        numbers = f" value={check.value} limit={check.limit}" if check.value is not None else ""
        detail = f": {check.message}" if check.message else ""
        parts.append(f"{check.code}{where}{numbers}{detail}")
    return "; ".join(parts)
