"""Everything the checks need to judge one batch, gathered once."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
from freshet_contract.run import RunValidation
from freshet_contract.vocabulary import ColumnType

from freshet_trainer.validation.columns import Kind, as_column_type, conforms, kind_of
from freshet_trainer.validation.reference import Reference

NO_REFERENCE = "no reference window yet (first run): nothing to compare with"
FIRST_BATCHES = "the reference is the first batches themselves: no distribution to compare with"


@dataclass(frozen=True)
class BatchUnderTest:
    """One batch with its label, the policy's rules and the reference (if any)."""

    frame: pd.DataFrame
    label: str
    classification: bool
    settings: RunValidation
    reference: Reference | None
    kinds: dict[str, tuple[Kind | None, str]] = field(init=False)

    def __post_init__(self) -> None:
        kinds = {name: kind_of(self.frame[name]) for name in self.frame.columns}
        object.__setattr__(self, "kinds", kinds)

    @property
    def strict(self) -> bool:
        return self.settings.schema_mode == "Strict"

    @property
    def features(self) -> list[str]:
        return [name for name in self.frame.columns if name != self.label]

    @cached_property
    def declared(self) -> dict[str, ColumnType]:
        return {column.name: column.type for column in self.settings.columns}

    def expected_type(self, name: str) -> ColumnType | None:
        """The declared type (Strict), else the reference's, else no expectation."""
        if self.strict:
            return self.declared.get(name)
        if self.reference is not None and name in self.reference.columns:
            return as_column_type(self.reference.columns[name].kind)
        return None

    def well_typed(self, name: str) -> bool:
        """Scalar values of the expected type: the column's figures mean something."""
        kind, _ = self.kinds[name]
        if kind == "mixed":
            return False
        expected = self.expected_type(name)
        return expected is None or conforms(self.frame[name], kind, expected)

    @property
    def all_scalar(self) -> bool:
        return all(kind != "mixed" for kind, _ in self.kinds.values())

    def comparable(self, names: list[str]) -> list[str]:
        """Columns present in the reference and well typed here, in `names` order."""
        if self.reference is None:
            return []
        return [n for n in names if n in self.reference.columns and self.well_typed(n)]

    def labeled(self) -> pd.Series:
        return self.frame[self.label].dropna()
