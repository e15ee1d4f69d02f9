"""The order state machine (DESIGN §3, Orders): which move is legal, and the book that persists it.

States::

    pending_submit -> open -> partially_filled -> filled
         |              |            |
         |              +------------+--------> cancelled
         +--> rejected / cancelled (never sent) / unknown
    unknown -> open | partially_filled | filled | cancelled | rejected   (exchange answer only)

* ``unknown``: the submit's outcome was not confirmed (timeout, crash between submit and
  acknowledgement). Only an answer from the exchange (``TransitionSource.EXCHANGE``) moves it.
* Terminal states (filled, cancelled, rejected) are final; repeating the same answer is a no-op.
* ``filled`` is cumulative: it never decreases and never exceeds the amount; ``open`` and
  ``rejected`` have nothing filled, ``partially_filled`` something but not all, ``filled`` all.
* The exchange order id is set once; a different one later is refused.

``PrimaryOnly`` refuses, before anything is written, any order work outside the primary region,
whatever called it; ``OrderStore`` checks again underneath.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, NoReturn

from nettrace.config.settings import Settings
from nettrace.domain.types import OrderState
from nettrace.execution.client_ids import client_order_id
from nettrace.store.database import Database
from nettrace.store.models import OrderRow, OrderTransitionRow
from nettrace.store.orders import (
    NotPrimaryRegionError,
    OrderChange,
    OrderFacts,
    OrderIntent,
    OrderStore,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATES",
    "FillError",
    "IllegalTransitionError",
    "NotPrimaryRegionError",
    "OrderBook",
    "OrderIntent",
    "PrimaryOnly",
    "TransitionSource",
    "plan_transition",
]

S = OrderState

TERMINAL_STATES: frozenset[OrderState] = frozenset({S.FILLED, S.CANCELLED, S.REJECTED})

#: Which state may go to which (a self-loop only where the fill can grow).
ALLOWED_TRANSITIONS: Mapping[OrderState, frozenset[OrderState]] = {
    S.PENDING_SUBMIT: frozenset(
        {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.UNKNOWN}
    ),
    S.OPEN: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED}),
    S.UNKNOWN: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
}

#: Relative slack when comparing a reported fill with the amount (exchange float rounding).
FILL_TOLERANCE = 1e-9


class TransitionSource(StrEnum):
    """Who says the order changed: our own code, or an answer from the exchange."""

    LOCAL = "local"
    EXCHANGE = "exchange"


class IllegalTransitionError(Exception):
    """A move the state machine forbids; nothing was written."""

    def __init__(
        self, client_order_id: str, from_state: OrderState, to_state: OrderState, why: str
    ) -> None:
        super().__init__(
            f"order {client_order_id}: illegal move {from_state.value} -> {to_state.value}: {why}"
        )
        self.client_order_id = client_order_id
        self.from_state = from_state
        self.to_state = to_state


class FillError(IllegalTransitionError):
    """A fill amount that decreases, exceeds the order, or does not fit the target state."""


def plan_transition(
    order: OrderFacts,
    to_state: OrderState,
    *,
    filled: float | None = None,
    exchange_order_id: str | None = None,
    source: TransitionSource = TransitionSource.LOCAL,
    reason: str = "",
) -> OrderChange | None:
    """The change moving ``order`` to ``to_state``; ``None`` if it is already exactly there.

    ``filled`` is the cumulative filled amount (``None``: unchanged, or all of it for
    ``filled``). Raises ``IllegalTransitionError`` (``FillError`` for amounts) to refuse.
    """
    frm = order.state
    to_state = OrderState(to_state)

    def refuse(why: str, error: type[IllegalTransitionError] = IllegalTransitionError) -> NoReturn:
        raise error(order.client_order_id, frm, to_state, why)

    if to_state is not frm:
        if frm in TERMINAL_STATES:
            refuse(f"{frm.value} is terminal")
        if to_state not in ALLOWED_TRANSITIONS[frm]:
            refuse("not an allowed transition")
        if frm is S.UNKNOWN and source is not TransitionSource.EXCHANGE:
            refuse("an unknown order is resolved only by asking the exchange")

    new_filled = _target_fill(order, to_state, filled, refuse)
    new_exchange_id = order.exchange_order_id
    if exchange_order_id is not None:
        if not isinstance(exchange_order_id, str) or not exchange_order_id:
            refuse(f"exchange order id must be a non-empty string, got {exchange_order_id!r}")
        if order.exchange_order_id not in (None, exchange_order_id):
            refuse(
                f"exchange order id is {order.exchange_order_id!r}, "
                f"refusing to replace it with {exchange_order_id!r}"
            )
        new_exchange_id = exchange_order_id

    if (
        to_state is frm
        and new_filled == order.filled
        and new_exchange_id == order.exchange_order_id
    ):
        return None  # a repeated answer: nothing changes, nothing is written
    if to_state is frm and to_state not in ALLOWED_TRANSITIONS[frm]:
        if frm in TERMINAL_STATES:
            refuse(f"{frm.value} is terminal")
        refuse(f"only the fill may change in {frm.value}, and only by growing")

    detail: dict[str, Any] = {"reason": reason, "source": source.value}
    if new_exchange_id != order.exchange_order_id:
        detail["exchange_order_id"] = new_exchange_id
    return OrderChange(
        to_state=to_state, filled=new_filled, exchange_order_id=new_exchange_id, detail=detail
    )


def _target_fill(
    order: OrderFacts,
    to_state: OrderState,
    filled: float | None,
    refuse: Callable[..., NoReturn],
) -> float:
    amount = order.amount
    if filled is None:
        new = amount if to_state is S.FILLED else order.filled
    else:
        if isinstance(filled, bool) or not isinstance(filled, int | float):
            refuse(f"filled must be a number, got {filled!r}", FillError)
        new = float(filled)
        if not math.isfinite(new) or new < 0:
            refuse(f"filled must be a finite number >= 0, got {filled!r}", FillError)
    slack = amount * FILL_TOLERANCE
    if new < order.filled:
        refuse(f"filled would decrease from {order.filled} to {new}", FillError)
    if new > amount + slack:
        refuse(f"filled {new} exceeds the order amount {amount}", FillError)
    if to_state is S.FILLED:
        if new < amount - slack:
            refuse(f"filled {new} is less than the amount {amount}", FillError)
        return amount
    if to_state in (S.OPEN, S.REJECTED, S.PENDING_SUBMIT, S.UNKNOWN) and new > 0:
        refuse(f"{to_state.value} cannot have a fill ({new})", FillError)
    if to_state is S.PARTIALLY_FILLED and not 0 < new < amount - slack:
        refuse(f"partially filled needs 0 < filled < {amount}, got {new}", FillError)
    return min(new, amount)


class PrimaryOnly:
    """Refuses order work outside the primary region, before anything is created."""

    def __init__(self, region: str, primary_region: str) -> None:
        self.region = region
        self.primary_region = primary_region

    @classmethod
    def from_settings(cls, settings: Settings) -> PrimaryOnly:
        return cls(settings.region, settings.primary_region)

    @property
    def is_primary(self) -> bool:
        return self.region == self.primary_region

    def check(self, action: str) -> None:
        """Raise ``NotPrimaryRegionError`` unless this process runs in the primary region."""
        if not self.is_primary:
            raise NotPrimaryRegionError(self.region, self.primary_region, action)


class OrderBook:
    """The persisted order state machine: create orders from decisions, move them legally."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.guard = PrimaryOnly.from_settings(settings)
        self._store = OrderStore(database, settings.region, settings.primary_region)

    def prepare(self) -> None:
        """Make the first ``create`` as fast as the rest (``OrderStore.prepare``)."""
        self._store.prepare()

    def create(
        self,
        intent: OrderIntent,
        decision_id: str,
        attempt: int = 0,
        *,
        detail: dict[str, Any] | None = None,
        decisions: Sequence[Mapping[str, Any]] = (),
    ) -> OrderRow:
        """A ``pending_submit`` order for ``attempt`` of the approved ``decision_id``.

        Idempotent: the same decision and attempt return the order already stored. ``detail``
        goes into the creation transition (e.g. a bracket's parent order).
        """
        client_id = client_order_id(decision_id, attempt)
        self.guard.check(f"create order {client_id}")
        return self._store.create(
            intent,
            decision_id,
            client_id,
            detail={"attempt": attempt, **(detail or {})},
            decisions=decisions,
        )

    def transition(
        self,
        client_order_id: str,
        to_state: OrderState,
        *,
        filled: float | None = None,
        exchange_order_id: str | None = None,
        reason: str,
        source: TransitionSource = TransitionSource.LOCAL,
    ) -> OrderRow:
        """Move the order to ``to_state`` and store the transition, in one transaction."""
        self.guard.check(f"change order {client_order_id}")
        return self._store.apply(
            client_order_id,
            lambda facts: plan_transition(
                facts,
                to_state,
                filled=filled,
                exchange_order_id=exchange_order_id,
                source=source,
                reason=reason,
            ),
        )

    def get(self, client_order_id: str) -> OrderRow | None:
        return self._store.get(client_order_id)

    def open_orders(self) -> list[OrderRow]:
        """Orders live on the exchange: ``open`` and ``partially_filled``."""
        return self._store.in_states(S.OPEN, S.PARTIALLY_FILLED)

    def pending_orders(self) -> list[OrderRow]:
        """Orders not yet submitted; after a crash these may have reached the exchange."""
        return self._store.in_states(S.PENDING_SUBMIT)

    def in_states(self, *states: OrderState) -> list[OrderRow]:
        """Orders in any of ``states``, oldest first."""
        return self._store.in_states(*states)

    def creation_details(self) -> dict[str, dict[str, Any]]:
        """Each order's creation detail (its plan: bracket prices, parent), by client id."""
        return self._store.creation_details()

    def unknown_orders(self) -> list[OrderRow]:
        """Orders whose submit outcome must be asked of the exchange."""
        return self._store.in_states(S.UNKNOWN)

    def history(self, client_order_id: str) -> list[OrderTransitionRow]:
        return self._store.history(client_order_id)
