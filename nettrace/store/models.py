"""SQLAlchemy 2 models: the durable state of a NetTrace process.

Changes to these classes need an Alembic migration (``alembic revision --autogenerate``); a test
compares the migrated schema with these models on SQLite and PostgreSQL and fails on drift.

Money and quantities are ``Float`` (double precision): ccxt hands us floats, and the rules work
in floats with explicit tolerances; the audit keeps the raw inputs as JSON beside them.
All timestamps are timezone-aware UTC (``UTCDateTime``), also on SQLite, which has no zone type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from nettrace.domain.types import OrderState, StrategyStage


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    Naive datetimes are refused on write: guessing their zone is how audit trails drift by hours.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: list[str]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


_ORDER_STATES = [s.value for s in OrderState]
_STAGES = [s.value for s in StrategyStage]

# Deterministic constraint names, so migrations can drop and alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class SignalRow(Base):
    """A signal pushed by a scout (or produced locally).

    ``id`` is the client's idempotency key, unique per ``source_region`` (each region's scout
    picks its own ids): the primary key is ``(source_region, id)``.
    """

    __tablename__ = "signals"
    __table_args__ = (
        PrimaryKeyConstraint("source_region", "id"),
        CheckConstraint("side IN ('BUY', 'SELL', 'HOLD')", name="side"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
        CheckConstraint("ttl_s > 0", name="ttl"),
        Index("ix_signals_symbol_ts", "symbol", "ts"),
        Index("ix_signals_region_ts", "source_region", "ts"),
    )

    id: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(64))
    source_region: Mapped[str] = mapped_column(String(8))
    exchange: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    confidence: Mapped[float] = mapped_column(Float)
    ts: Mapped[datetime]
    ttl_s: Mapped[float] = mapped_column(Float)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiTokenRow(Base):
    """A region's bearer token for the signals API, stored only as its SHA-256 digest.

    Tokens are 256-bit random strings, so a fast unsalted hash is enough: there is no password
    to brute-force, and a slow KDF (bcrypt) would cost milliseconds on every request for nothing.
    A revoked token keeps its row (``revoked_at`` set) so ``nettrace tokens list`` shows history.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_region", "region"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(8))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class RegionHeartbeatRow(Base):
    """When the primary last heard from each region (a push or a heartbeat), one row per region.

    The cross-region view marks a region stale from this, so a scout that went silent stops
    counting towards the sniper's agreeing signals even while its last signals are within ttl.
    """

    __tablename__ = "region_heartbeats"

    region: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_heard_at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DecisionRow(Base):
    """The audit row of one GoalValidator call, taken or refused, with inputs and reasons.

    The typed columns are for querying ("why did BTC/USD not trade at 14:05?"); ``inputs``
    keeps the proposal exactly as the validator saw it, garbage included.
    """

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_symbol_decided_at", "symbol", "decided_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    decided_at: Mapped[datetime]
    region: Mapped[str] = mapped_column(String(8))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str | None] = mapped_column(String(8))
    regime: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    signal_count: Mapped[int | None] = mapped_column(Integer)
    approved: Mapped[bool] = mapped_column(Boolean)
    refusals: Mapped[list[Any]] = mapped_column(default=list)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    thresholds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fees: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: SELL only: signal, take_profit, stop_loss or hardstop.
    exit_reason: Mapped[str | None] = mapped_column(String(16))
    #: The price the approval binds (``TradeDecision.price_bound``): the order store refuses
    #: an order, a reprice or a retry outside it.
    price_bound: Mapped[float | None] = mapped_column(Float)
    #: BUY: the stop the risk controller set with the entry; stop-loss SELL: the stop judged.
    stop_price: Mapped[float | None] = mapped_column(Float)
    #: SELL: the entry decision whose position it closes (a stop must match its stop).
    entry_decision_id: Mapped[str | None] = mapped_column(String(32))


class OrderRow(Base):
    """An order and its current state; every state change is also an ``OrderTransitionRow``.

    ``decision_id`` is NOT NULL: the database itself refuses an order with no recorded decision.
    """

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_one_of("state", _ORDER_STATES), name="state"),
        CheckConstraint("side IN ('BUY', 'SELL')", name="side"),
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("filled >= 0", name="filled"),
        CheckConstraint("urgency IN ('normal', 'critical')", name="urgency"),
        Index("ix_orders_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"))
    region: Mapped[str] = mapped_column(String(8))
    exchange: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(16))
    post_only: Mapped[bool] = mapped_column(Boolean, default=True)
    price: Mapped[float | None] = mapped_column(Float)
    amount: Mapped[float] = mapped_column(Float)
    filled: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(20), default=OrderState.PENDING_SUBMIT.value)
    exchange_order_id: Mapped[str | None] = mapped_column(String(128))
    #: ``critical`` only for a stop-loss or a HARDSTOP flatten; only critical may be market.
    urgency: Mapped[str] = mapped_column(String(8), default="normal", server_default="normal")
    #: Whether the HARDSTOP latch was up when the order was stored (read in its transaction).
    hardstop_active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    transitions: Mapped[list[OrderTransitionRow]] = relationship(
        back_populates="order", order_by="OrderTransitionRow.id"
    )
    fills: Mapped[list[FillRow]] = relationship(back_populates="order", order_by="FillRow.id")


class OrderTransitionRow(Base):
    """One state change of one order: the order's history, never updated or deleted."""

    __tablename__ = "order_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    order: Mapped[OrderRow] = relationship(back_populates="transitions")


class FillRow(Base):
    """A (partial) fill reported by the exchange; unique per order and exchange trade id."""

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("order_id", "exchange_trade_id", name="uq_fills_order_trade"),
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("price > 0", name="price"),
        CheckConstraint("fee >= 0", name="fee"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    exchange_trade_id: Mapped[str] = mapped_column(String(128))
    price: Mapped[float] = mapped_column(Float)
    amount: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    fee_currency: Mapped[str] = mapped_column(String(16))
    is_maker: Mapped[bool] = mapped_column(Boolean)
    ts: Mapped[datetime]

    order: Mapped[OrderRow] = relationship(back_populates="fills")


class PositionRow(Base):
    """An open (or flat) position per exchange and symbol, with its cost basis (quote/unit)."""

    __tablename__ = "positions"
    __table_args__ = (
        UniqueConstraint("exchange", "symbol", name="uq_positions_exchange_symbol"),
        CheckConstraint("amount >= 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    amount: Mapped[float] = mapped_column(Float, default=0.0)
    avg_entry_price: Mapped[float] = mapped_column(Float, default=0.0)
    realised_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    fees_paid: Mapped[float] = mapped_column(Float, default=0.0)
    opened_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AdoptionRow(Base):
    """A holding the exchange showed that no stored fill explained, taken on at reconciliation.

    Kept so that a restart rebuilds the same position (fills plus adoptions) instead of
    adopting it again, and so the operator can see what was adopted, when and at what price.
    """

    __tablename__ = "adoptions"
    __table_args__ = (CheckConstraint("amount > 0", name="amount"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    amount: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    ts: Mapped[datetime]


class PortfolioSnapshotRow(Base):
    """Mark-to-market equity at one instant (quote currency). Only positive totals are stored."""

    __tablename__ = "portfolio_snapshots"
    __table_args__ = (
        CheckConstraint("total_equity > 0", name="positive_total"),
        Index("ix_portfolio_snapshots_region_ts", "region", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime]
    region: Mapped[str] = mapped_column(String(8))
    quote_currency: Mapped[str] = mapped_column(String(16))
    total_equity: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)
    positions_value: Mapped[float] = mapped_column(Float)
    holdings: Mapped[list[Any]] = mapped_column(default=list)


class HardstopStateRow(Base):
    """The HARDSTOP latch: a single row (id 1) so every process reads the same answer."""

    __tablename__ = "hardstop_state"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(32))
    raised_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    cleared_by: Mapped[str | None] = mapped_column(String(64))
    #: This raise flattens every position at market (``nettrace hardstop raise --flatten``).
    flatten: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class HardstopEventRow(Base):
    """Every raise and clear of HARDSTOP, append-only, for the operator's post-mortem."""

    __tablename__ = "hardstop_events"
    __table_args__ = (CheckConstraint("action IN ('raise', 'clear')", name="action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)


class StrategyRow(Base):
    """A strategy variant and where it stands in the COLD -> WARM -> HOT pipeline."""

    __tablename__ = "strategies"
    __table_args__ = (CheckConstraint(_one_of("stage", _STAGES), name="stage"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stage: Mapped[str] = mapped_column(String(16), default=StrategyStage.COLD.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    transitions: Mapped[list[StrategyTransitionRow]] = relationship(
        back_populates="strategy", order_by="StrategyTransitionRow.id"
    )


class StrategyTransitionRow(Base):
    """One promotion or demotion of a strategy, with the evidence that justified it."""

    __tablename__ = "strategy_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id"), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)

    strategy: Mapped[StrategyRow] = relationship(back_populates="transitions")
