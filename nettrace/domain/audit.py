"""What an audit of the money invariants reports: the breaches found and what was checked.

Two audits share these types: the ledger audit (``execution.audit``: the stored orders, fills
and decisions of a trading process) and the backtest audit (``backtest.audit``: a backtest's own
trade records). Living in ``domain`` they import nothing from above it, so either audit, the
CLI and the tests read one shape, and a report means the same thing wherever it comes from.

A *breach* is a fact that contradicts a rule the system promises to keep (DESIGN §3): an order
without an approval, a price outside the approval's bound, a loss realised by anything but a
stored stop or a HARDSTOP flatten. A *note* is the same finding where no rule was promised: an
ungated research baseline trades raw signals and can never reach an exchange, so its losing
signal exits are reported, but they are not breaches and do not fail the audit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["AuditReport", "Breach", "BreachKind", "Verdict"]


class BreachKind(StrEnum):
    """What rule a breach breaks; the value is the stable name scripts match on."""

    #: Invariant 1: an order must name a recorded decision ...
    ORDER_WITHOUT_DECISION = "order_without_decision"
    #: ... that approved it ...
    DECISION_REFUSED = "decision_refused"
    #: ... for the same side and symbol.
    DECISION_MISMATCH = "decision_mismatch"
    #: Invariant 2: the approval binds no price (or the order carries none) where one is needed.
    NO_PRICE_BOUND = "no_price_bound"
    #: Invariant 2: a BUY priced (or filled) above the highest entry price its approval allows.
    BUY_ABOVE_BOUND = "buy_above_bound"
    #: Invariant 2: a signal or take-profit SELL priced (or filled) below its break-even bound.
    SELL_BELOW_BOUND = "sell_below_bound"
    #: Invariant 2: a stop-loss that is not exactly the stop stored with its entry's approval.
    STOP_MISMATCH = "stop_mismatch"
    #: Invariant 2: an order type its decision cannot have placed (a stop order for a signal).
    WRONG_ORDER_TYPE = "wrong_order_type"
    #: A bracket child whose parent entry is missing or is not the entry its decision names.
    BRACKET_MISMATCH = "bracket_mismatch"
    #: Invariant 3: a signal or take-profit close with a loss after fees (rule 1).
    LOSING_SIGNAL_EXIT = "losing_signal_exit"
    #: Invariant 4: a loss realised by something other than a stored stop or a HARDSTOP flatten.
    LOSS_NOT_A_STOP = "loss_not_a_stop"
    #: Invariant 5: a market (taker) order without critical urgency.
    MARKET_NOT_CRITICAL = "market_not_critical"
    #: Invariant 5: a critical order that is not a stop-loss or a HARDSTOP flatten.
    CRITICAL_NOT_RISK_EXIT = "critical_not_risk_exit"
    #: Invariant 6: an order stored while HARDSTOP was up that is neither a stop nor a flatten.
    STORED_DURING_HARDSTOP = "stored_during_hardstop"
    #: Invariant 6: a HARDSTOP flatten stored while the latch was down.
    FLATTEN_WITHOUT_HARDSTOP = "flatten_without_hardstop"
    #: Invariant 7: an order stored by a region that is not the primary.
    OUTSIDE_PRIMARY_REGION = "outside_primary_region"
    #: A trade (backtest) whose entry no approved BUY decision accounts for.
    UNAPPROVED_ENTRY = "unapproved_entry"
    #: The records cannot be booked or read (a sell of more than is held, an unknown reason):
    #: the books disagree with themselves, so nothing derived from them can be trusted.
    LEDGER_INCONSISTENT = "ledger_inconsistent"


class Verdict(StrEnum):
    """The one-word answer: the rules held, they did not, or none were promised."""

    CLEAN = "clean"
    BREACHED = "breached"
    #: An ungated research baseline: findings are notes, never breaches (see module docstring).
    NOT_GATED = "not gated"


@dataclass(frozen=True, slots=True)
class Breach:
    """One broken invariant: which rule (``kind``), what broke it (``subject``: an order's client
    id, a decision id, a round trip or trade), and the numbers that show it (``message``)."""

    kind: BreachKind
    subject: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "subject": self.subject, "message": self.message}


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome of one audit.

    The counts say how much was checked, so "clean" on an empty ledger reads as what it is.
    ``notes`` are findings that are not breaches (an ungated baseline's), kept apart so that no
    caller can mistake one for the other; ``gated`` is False only for such a baseline.
    """

    breaches: tuple[Breach, ...]
    orders_checked: int = 0
    decisions_checked: int = 0
    round_trips_checked: int = 0
    fills_checked: int = 0
    #: What was audited: ``ledger`` or ``backtest <strategy>``.
    scope: str = "ledger"
    gated: bool = True
    notes: tuple[Breach, ...] = ()
    #: Why the verdict is what it is, when counts and breaches alone do not say it.
    explanation: str = ""

    @property
    def clean(self) -> bool:
        """No breach. An ungated baseline is clean by construction: it promised no rule."""
        return not self.breaches

    @property
    def verdict(self) -> Verdict:
        if self.breaches:
            return Verdict.BREACHED
        return Verdict.CLEAN if self.gated else Verdict.NOT_GATED

    def counts(self) -> str:
        """``"3 orders, 5 decisions, 1 round trip checked"``: the checked counts in words."""
        parts = [
            _plural(self.decisions_checked, "decision"),
            _plural(self.round_trips_checked, "round trip"),
        ]
        if self.scope == "ledger" or self.orders_checked:  # a backtest places no orders
            parts.insert(0, _plural(self.orders_checked, "order"))
        return f"{', '.join(parts)} checked"

    def summary(self) -> str:
        """One line for a terminal: the verdict, what was checked and the breach count."""
        if self.breaches:
            return (
                f"{self.scope} BREACHED: {_plural(len(self.breaches), 'breach', 'breaches')} "
                f"in {self.counts()}"
            )
        if not self.gated:
            return (
                f"{self.scope} not gated: {_plural(len(self.notes), 'finding')} noted, "
                f"not breaches ({self.counts()})"
            )
        return f"{self.scope} clean: {self.counts()}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form with stable keys, for ``--json`` and scripts."""
        return {
            "scope": self.scope,
            "verdict": self.verdict.value,
            "clean": self.clean,
            "gated": self.gated,
            "explanation": self.explanation,
            "checked": {
                "orders": self.orders_checked,
                "decisions": self.decisions_checked,
                "round_trips": self.round_trips_checked,
                "fills": self.fills_checked,
            },
            "breaches": [b.to_dict() for b in self.breaches],
            "notes": [n.to_dict() for n in self.notes],
        }

    def to_json(self) -> str:
        """``to_dict`` as a JSON document (sorted keys, so equal reports print equally)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"
