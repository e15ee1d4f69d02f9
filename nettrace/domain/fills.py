"""What a fill is to everything that books one: the portfolio (execution) and the fills table
(store) read the same fields, and neither may import the other, so the shape lives here."""

from __future__ import annotations

from typing import Protocol

from nettrace.domain.types import Side


class Fill(Protocol):
    """A fill as the portfolio needs it: ``ExchangeTrade`` and the store's ``StoredFill`` both
    have it. Read-only properties, so frozen dataclasses satisfy it. Units: price quote per
    base, amount base, fee in ``fee_currency``, time epoch ms (UTC)."""

    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def price(self) -> float: ...
    @property
    def amount(self) -> float: ...
    @property
    def fee(self) -> float: ...
    @property
    def fee_currency(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...


class ExchangeFill(Fill, Protocol):
    """A fill as the exchange reports it: also its trade id, our client order id, maker or not."""

    @property
    def id(self) -> str: ...
    @property
    def client_order_id(self) -> str: ...
    @property
    def is_maker(self) -> bool: ...
