"""The growth plan, ``agents/growth_batch_config.json`` (DESIGN §2, §3 "Strategy pipeline").

Which strategies get how much capital: the capital allocator reads it, this model validates it.
A plan that does not validate is refused as a whole (the allocator keeps what it had), never
read in part. The minimal plan is the one in the checkout: paper mode, nothing allocated.

Fields:

- ``version`` -- the schema version (1).
- ``mode`` -- ``paper`` or ``live``; a live plan still needs the process's explicit live mode.
- ``note`` -- free text for the operator.
- ``allocations`` -- one entry per funded strategy: its ``strategy`` id and the ``fraction``
  of equity it may use, in (0, 1]; ids are unique and the fractions sum to at most 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nettrace.agents.agent_goals import FLOAT_TOLERANCE

#: Where the plan lives in the checkout, relative to the working directory.
DEFAULT_GROWTH_PLAN_PATH = Path("agents") / "growth_batch_config.json"


class GrowthPlanError(Exception):
    """A growth plan that cannot be read or does not validate (one line)."""


class Allocation(BaseModel):
    """One strategy's share of equity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = Field(min_length=1, max_length=200)
    fraction: float = Field(gt=0.0, le=1.0, allow_inf_nan=False)


class GrowthBatchConfig(BaseModel):
    """The whole growth plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    mode: Literal["paper", "live"] = "paper"
    note: str = ""
    allocations: tuple[Allocation, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> GrowthBatchConfig:
        ids = [a.strategy for a in self.allocations]
        if len(set(ids)) != len(ids):
            raise ValueError("each strategy may appear once in allocations")
        total = sum(a.fraction for a in self.allocations)
        if total > 1.0 + FLOAT_TOLERANCE:
            raise ValueError(f"allocations sum to {total:.6g} of equity, more than 1")
        return self


def load_growth_plan(path: Path = DEFAULT_GROWTH_PLAN_PATH) -> GrowthBatchConfig:
    """The validated plan at ``path``; ``GrowthPlanError`` naming the path otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GrowthPlanError(f"growth plan {path} is unreadable: {exc}") from None
    try:
        return GrowthBatchConfig.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise GrowthPlanError(f"growth plan {path}: {where}: {error['msg']}") from None
