"""The quant engine: the primary's trading loop, one tick per closed bar (DESIGN §3).

A tick, in this order, so that nothing is decided on stale books:

1. **sync** -- the exchange's answers for our working orders and any new fills are stored;
   the portfolio follows the fills;
2. **mark** -- equity at the bar's close (unrealised losses count);
3. **HARDSTOP** -- the daily-loss monitor and HANDOFF.md are checked on that equity *before*
   anything is placed; raised (by them or by the operator): the state is HALTED, every working
   entry and non-protective exit is cancelled, every position keeps (or gets back) its
   protective stop, and with the ``flatten`` action every position is sold at market
   (critical urgency, reason HARDSTOP); nothing new is opened until the operator clears it;
4. **manage** -- an entry not filled within ``entry_ttl_bars`` is cancelled (its signal has
   expired); an exit not filled is repriced at the new near touch, never below the break-even
   price its approval binds (a new client id, attempt + 1), up to ``max_exit_reprices`` times
   (both are risk-controller limits);
5. **decide** -- the sniper's view of the bar goes through ``strategies.decision`` (the
   GoalValidator, which records every decision, and the risk controller), and an approved
   entry becomes a post-only limit at the close with its stop-loss and take-profit bracket,
   each backed by its own recorded approval;
6. **snapshot** -- the equity snapshot is stored (the $0 guard refuses a faulty one).

The engine is the same in paper and live trading; only the ``Exchange`` differs. Orders are
only ever sent through ``OrderRouter``, which refuses outside the primary region and stores
each order before sending it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from nettrace.agents.agent_goals import TradeDecision, TradeProposal
from nettrace.agents.risk_controller import AccountState, RiskController
from nettrace.agents.sniper import BarView, SniperAgent
from nettrace.backtest.results import Trade
from nettrace.config.rules import RulesInForce
from nettrace.config.settings import Settings
from nettrace.domain.fees import FeeSchedule
from nettrace.domain.types import ExitReason, OrderState, Side, TradingState, Urgency
from nettrace.execution.client_ids import attempt_of
from nettrace.execution.exchange import (
    Exchange,
    ExchangeOrder,
    ExchangeTrade,
    ExchangeUnavailable,
    OrderNotFound,
)
from nettrace.execution.hardstop import DailyLossMonitor, HardstopGuard
from nettrace.execution.orders import TERMINAL_STATES, OrderBook, OrderIntent
from nettrace.execution.paper import Bar
from nettrace.execution.portfolio import Portfolio, RoundTrip
from nettrace.execution.reconcile import (
    ReconcileReport,
    cancel_orphans,
    compare_balances,
    import_fills,
    settle_orders,
)
from nettrace.execution.router import OrderRouter, state_of
from nettrace.observability.log import get_logger
from nettrace.store.adoptions import AdoptionStore
from nettrace.store.database import Database
from nettrace.store.decisions import DecisionStore, PendingDecisions, decision_values
from nettrace.store.fills import FillStore, fill_reason
from nettrace.store.hardstop import HardstopLatch
from nettrace.store.models import OrderRow
from nettrace.store.orders import HardstopActiveError, OrderType
from nettrace.store.snapshots import SnapshotStore
from nettrace.strategies.decision import decide_entry, decide_exit

__all__ = ["EngineConfig", "EngineEvent", "QuantEngine", "Tick"]

_log = get_logger(__name__)

#: The role of a working order, from its type and side.
ENTRY, EXIT, STOP, TARGET, FLATTEN = "entry", "exit", "stop_loss", "take_profit", "flatten"


@dataclass(frozen=True)
class EngineConfig:
    """Where and how often the engine works. Trading parameters are *not* here: sizes, stops,
    take-profits, thresholds, the entry time-to-live and the exit reprice limit come from the
    risk controller and the rules (``config.rules.RulesInForce``)."""

    symbols: tuple[str, ...]
    exchange: str = "paper"
    quote_currency: str = "USD"
    reconcile_every_bars: int = 12
    #: How often the engine checkpoints a SQLite WAL itself (see ``Database.checkpoint``).
    checkpoint_every_bars: int = 1000


@dataclass(frozen=True)
class EngineEvent:
    """Something an operator watching the run wants to see (an order, a fill, a halt)."""

    ts_ms: int
    kind: str
    symbol: str
    text: str


@dataclass
class Tick:
    """What one tick did."""

    ts_ms: int
    symbol: str
    equity: float
    state: TradingState
    events: list[EngineEvent] = field(default_factory=list)


@dataclass
class _Working:
    """A working order as the engine tracks it between ticks."""

    row: OrderRow
    role: str
    placed_ms: int
    reprices: int = 0
    #: Bars this order has waited unfilled (an entry expires after ``entry_ttl_bars``).
    bars: int = 0


@dataclass(frozen=True)
class _EntryFacts:
    """What a bracket's approval records of its entry."""

    symbol: str
    decision_id: str
    client_order_id: str


def _decision_view(entry: OrderRow) -> _EntryFacts:
    return _EntryFacts(entry.symbol, entry.decision_id, entry.client_order_id)


def _role(row: OrderRow) -> str:
    if row.order_type in (STOP, TARGET):
        return row.order_type
    if row.order_type == "market" and row.urgency == Urgency.CRITICAL.value:
        return FLATTEN
    return ENTRY if row.side == Side.BUY.value else EXIT


def _unchanged(row: OrderRow, answer: ExchangeOrder) -> bool:
    """Does the exchange report exactly what we have stored (state, fill, exchange id)?"""
    return (
        state_of(answer).value == row.state
        and answer.filled == row.filled
        and answer.id == row.exchange_order_id
    )


def _utc(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


class QuantEngine:
    """The primary's trading loop (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        exchange: Exchange,
        sniper: SniperAgent,
        config: EngineConfig,
        risk: RiskController | None = None,
        rules: RulesInForce | None = None,
        fees: FeeSchedule | None = None,
        handoff_path: Path | None = None,
        replay_clock: bool = False,
    ) -> None:
        self.settings = settings
        self.config = config
        self.exchange = exchange
        self.sniper = sniper
        self.region = settings.region
        self.fees = fees or settings.fees(config.exchange)
        #: The rules in force: the same construction ``nettrace rules`` prints.
        self.rules = rules or RulesInForce.from_settings(settings)
        self.risk = risk or self.rules.risk()
        self.database = database
        self.book = OrderBook(database, settings)
        self.router = OrderRouter(self.book, exchange)
        self.fills = FillStore(database)
        self.adoptions = AdoptionStore(database)
        #: With ``replay_clock`` decisions are stamped with the bar's time, not the wall clock,
        #: so ``nettrace why --at`` finds a replayed decision at the time it was about.
        self._bar_time = datetime.now(UTC)
        self.decision_store = DecisionStore(database, self.region)
        self.decisions = PendingDecisions(self.decision_store)
        self.validator = self.rules.validator(
            self.fees,
            recorder=self.decisions,
            clock=(lambda: self._bar_time) if replay_clock else None,
        )
        #: Approved price bounds by decision id (read from the store after a restart).
        self._bounds: dict[str, float | None] = {}
        self.snapshots = SnapshotStore(database)
        self.latch = HardstopLatch(database)
        self.guard = HardstopGuard(self.latch, DailyLossMonitor(), handoff_path)
        self.state = TradingState.ACTIVE
        self.portfolio = Portfolio(config.quote_currency, 0.0)
        self.round_trips: list[RoundTrip] = []
        self.reconcile_report = ReconcileReport()
        self._working: dict[str, _Working] = {}
        #: Exits the exchange rejected or cancelled (post-only crossed at the open): repriced
        #: at this tick's close, as the backtest does.
        self._rejected_exits: dict[str, list[OrderRow]] = {}
        #: Exchange answers taken this tick, stored after its orders went out (write-behind).
        self._writes: list[Callable[[], object]] = []
        #: Exchange trade ids already applied to the portfolio (the fills table, in memory).
        self._trade_ids: set[str] = set()
        self._last_close: dict[str, float] = {}
        self._peak = 0.0
        self._bars = 0
        self._started = False
        #: HARDSTOP's protective pass (cancel the unprotective, re-arm the stops) is done.
        self._protected = False

    # --- Start: reconcile before trading ------------------------------------------------------

    def start(self, now_ms: int | None = None) -> ReconcileReport:
        """Reconcile orders, fills and balances with the exchange, rebuild the books."""
        self.book.guard.check("start the trading engine")
        report = ReconcileReport()
        settle_orders(self.router, report)
        known = self._known_orders()
        import_fills(
            self.fills,
            set(known),
            self.exchange.fetch_my_trades(),
            report,
            {cid: self._reason(row) for cid, row in known.items()},
        )
        cancel_orphans(self.router, report)
        stored = self.fills.all_fills()
        self._trade_ids = {f.id for f in stored}
        balances = self.exchange.fetch_balance()
        # The cash our fills moved, booked the one way the portfolio books them: what the
        # exchange holds beyond that is the cash the account started with.
        moved = Portfolio.from_fills(self.config.quote_currency, 0.0, stored)[0].cash
        cash_at_start = balances.get(self.config.quote_currency, 0.0) - moved
        self.portfolio, self.round_trips = Portfolio.from_fills(
            self.config.quote_currency, cash_at_start, stored
        )
        for adoption in self.adoptions.all(self.config.exchange):
            self.portfolio.adopt(adoption.symbol, adoption.amount, adoption.price, adoption.ts_ms)
        compare_balances(
            self.portfolio,
            balances,
            self.config.symbols,
            self._last_close,
            now_ms or 0,
            report,
            self.adoptions,
            self.config.exchange,
        )
        if report.short:
            self.state = TradingState.REDUCING
        self._working = {
            row.client_order_id: _Working(
                row, _role(row), now_ms or 0, attempt_of(row.client_order_id)
            )
            for row in self.book.in_states(OrderState.OPEN, OrderState.PARTIALLY_FILLED)
        }
        self._peak = max(self.snapshots.peak_equity(self.region) or 0.0, self._peak)
        halted = self.latch.state().active
        if halted:
            self.state = TradingState.HALTED
        if self.book.guard.is_primary:
            # Halted or not, every position keeps its protective stop (a restart while halted
            # re-arms it); a halted engine places no take-profit, which is no protection.
            kinds = (STOP,) if halted else (STOP, TARGET)
            report.brackets_restored = self._ensure_brackets(now_ms or 0, kinds)
            self.decisions.flush()
            self.book.prepare()
        self.reconcile_report = report
        self._started = True
        _log.info(
            "engine_started",
            clean=report.clean,
            resolved=len(report.resolved),
            fills_added=report.fills_added,
            orphans=len(report.orphans_cancelled),
            adopted=report.adopted,
            short=report.short,
            state=self.state.value,
        )
        return report

    def restore_day_start(self, ts_ms: int) -> None:
        """After a restart, the daily-loss line is the day's first stored equity, not now's."""
        day = _utc(ts_ms).date()
        first = self.snapshots.first_since(
            self.region, datetime(day.year, day.month, day.day, tzinfo=UTC)
        )
        if first is not None and first.total_equity > 0:
            self.guard.monitor.set_day_start(day, first.total_equity)

    # --- The tick -----------------------------------------------------------------------------

    def on_bar(self, bar: Bar, now: datetime | None = None) -> Tick:
        """One tick for ``bar`` (closed). The paper exchange has matched it already."""
        symbol = bar.symbol
        self._bar_time = _utc(bar.ts_ms)
        self._last_close[symbol] = bar.close  # before start: adopting a holding needs a price
        if not self._started:
            self.start(bar.ts_ms)
            self.restore_day_start(bar.ts_ms)
        tick = Tick(bar.ts_ms, symbol, math.nan, self.state)
        self._sync(symbol, tick)
        equity = self.portfolio.equity(self._prices())
        tick.equity = equity
        if math.isfinite(equity):
            self._peak = max(self._peak, equity)
        # A NaN (a held symbol without a price) or a non-positive equity is a breach, not a
        # data fault to step over: the monitor fails closed (``execution.hardstop``).
        hard = self.guard.tick(_utc(bar.ts_ms), equity)
        if hard.active:
            self._halt(tick, f"{hard.source}: {hard.reason}")
        else:
            if self.state is TradingState.HALTED:
                self.state = TradingState.ACTIVE  # the operator cleared it
                self._protected = False
                if self.book.guard.is_primary:  # the take-profits HARDSTOP cancelled return
                    self._ensure_brackets(bar.ts_ms, (STOP, TARGET), tick)
            self._manage(bar, tick)
            self._decide(bar, tick, now)
        self._bars += 1
        if self._bars % self.config.reconcile_every_bars == 0:
            self._periodic_reconcile(tick)
        self._write_behind()  # what the exchange told us this tick, after our orders went out
        self.decisions.flush()  # the tick's refusals, together, after any order went out
        # The latch as another process may have set it, read after the decision path: an
        # order is refused inside its own transaction while the latch is up anyway.
        latch = self.guard.refresh_latch()
        if latch.active and self.state is not TradingState.HALTED:
            self._halt(tick, f"{latch.source}: {latch.reason}")
        if math.isfinite(equity):
            self.snapshots.record(
                self.portfolio.snapshot(_utc(bar.ts_ms), self._prices(), self.region)
            )
        if self._bars % self.config.checkpoint_every_bars == 0:
            self.database.checkpoint()  # between ticks, never inside the decision path's commit
        tick.state = self.state
        return tick

    # --- 1. Sync ------------------------------------------------------------------------------

    def _sync(self, symbol: str, tick: Tick) -> None:
        mine = [w for w in self._working.values() if w.row.symbol == symbol]
        if not mine:
            return
        open_now = {o.client_order_id: o for o in self.exchange.fetch_open_orders(symbol)}
        for working in mine:
            cid = working.row.client_order_id
            answer = open_now.get(cid)
            if answer is not None and _unchanged(working.row, answer):
                continue  # still working as we have it: nothing to write
            try:
                if answer is None:
                    answer = self.exchange.fetch_order(cid, symbol)
                row = self._record_later(working.row, answer, "synced")
            except OrderNotFound:  # an order whose submit never arrived (it was ``unknown``)
                row = self.router.refresh(working.row)
            except ExchangeUnavailable as exc:  # no answer now: ask again next tick
                _log.warning("sync_deferred", client_order_id=cid, error=str(exc))
                continue
            working.row = row
            if OrderState(row.state) in TERMINAL_STATES:
                del self._working[cid]
                if row.state != OrderState.FILLED.value:
                    self._event(
                        tick,
                        "cancelled",
                        symbol,
                        f"{working.role} {cid} {row.state}: {answer.reason if answer else ''}",
                    )
                    if working.role == EXIT:
                        self._rejected_exits.setdefault(symbol, []).append(row)
        since = min(w.placed_ms for w in mine)
        known = {w.row.client_order_id: w for w in mine}
        fresh = [
            t for t in self.exchange.fetch_my_trades(symbol, since) if t.client_order_id in known
        ]
        for trade in fresh:
            if trade.id in self._trade_ids:
                continue
            reason = self._reason(known[trade.client_order_id].row)
            self._trade_ids.add(trade.id)
            self._apply_fill(trade, reason, tick)
            self._writes.append(partial(self.fills.record, trade.client_order_id, trade, reason))

    # --- Write-behind -------------------------------------------------------------------------

    def _record_later(self, row: OrderRow, answer: ExchangeOrder, reason: str) -> OrderRow:
        """Take the exchange's answer now, store it after this tick's orders went out.

        What the exchange reports (a fill, a cancel) is already true there, so storing it can
        wait until after the decision path -- which DESIGN §5 wants under a millisecond --
        without any risk: a crash before the write is repaired by reconciliation, which asks
        the exchange again. Orders *we* create are never deferred: they are stored before
        they are sent.
        """
        self._writes.append(partial(self.router.apply, row.client_order_id, answer, reason=reason))
        row.state = state_of(answer).value
        row.filled = answer.filled
        row.exchange_order_id = answer.id
        return row

    def _cancel_later(self, row: OrderRow, reason: str) -> OrderRow:
        """Cancel on the exchange now; store the answer after the tick's orders (see above)."""
        try:
            answer = self.exchange.cancel_order(row.client_order_id, row.symbol)
        except OrderNotFound:
            return self.router.refresh(row)
        return self._record_later(row, answer, reason)

    def _write_behind(self) -> None:
        writes, self._writes = self._writes, []
        for write in writes:
            write()

    def _apply_fill(self, trade: ExchangeTrade, reason: str, tick: Tick) -> None:
        closed = self.portfolio.apply_fill(trade, reason)
        self._event(
            tick,
            "fill",
            trade.symbol,
            f"{trade.side.value} {trade.amount:.8g} @ {trade.price:.8g} "
            f"fee {trade.fee:.4g} {trade.fee_currency} ({reason})",
        )
        if closed is not None:
            self.round_trips.append(closed)
            self._event(
                tick,
                "closed",
                trade.symbol,
                f"round trip {closed.profit:+.2f} {self.config.quote_currency} ({closed.reason})",
            )

    # --- 3. HARDSTOP --------------------------------------------------------------------------

    def _halt(self, tick: Tick, reason: str) -> None:
        """HARDSTOP protects: nothing new opens, entries and non-protective exits are
        cancelled, each position keeps (or gets back) its stop; ``flatten`` sells them all."""
        if self.state is not TradingState.HALTED:
            self._event(tick, "hardstop", tick.symbol, f"HARDSTOP: trading halted. {reason}")
        self.state = TradingState.HALTED
        if not self._protected:  # once per raise (and after a restart while halted)
            self.cancel_unprotective(tick, "HARDSTOP")
            if self.book.guard.is_primary:
                self._ensure_brackets(tick.ts_ms, (STOP,), tick)
            self._protected = True
        if not self.book.guard.is_primary:
            return
        latch = self.guard.latch_state()
        if self.rules.hardstop_action == "flatten" or latch.flatten:
            self._flatten(tick)

    def cancel_unprotective(self, tick: Tick, reason: str) -> None:
        """Cancel every working order but the positions' protective stops (and any flatten
        under way): entries, signal exits and take-profits."""
        rows = {w.row.client_order_id: w.row for w in self._working.values()}
        for row in self.book.in_states(OrderState.OPEN, OrderState.PARTIALLY_FILLED):
            rows.setdefault(row.client_order_id, row)
        for cid, row in rows.items():
            role = _role(row)
            held = self.portfolio.position(row.symbol)
            if role == FLATTEN or (role == STOP and held is not None and held.amount > 0):
                continue  # protects a position (a stop of an entry never filled protects none)
            after = self.router.cancel(row, reason)
            self._working.pop(cid, None)
            self._event(tick, "cancelled", row.symbol, f"{cid} {after.state} ({reason})")

    def _flatten(self, tick: Tick) -> None:
        """Sell every position at market, critical, with a HARDSTOP approval (the latch is up:
        the order store refuses a flatten otherwise)."""
        flattening = {w.row.symbol for w in self._working.values() if w.role == FLATTEN}
        for symbol, position in list(self.portfolio.positions.items()):
            if position.amount <= 0 or symbol in flattening:
                continue
            decision = self.validator.evaluate(
                TradeProposal(
                    side=Side.SELL, confidence=None, signal_count=None, regime=None,
                    symbol=symbol, entry_price=position.avg_entry_price,
                    exit_price=self._last_close.get(symbol), exit_reason=ExitReason.HARDSTOP,
                    hardstop_active=self.guard.latch_state().active,
                )
            )  # fmt: skip
            if not decision.approved:
                continue
            intent = OrderIntent(
                self.config.exchange, symbol, Side.SELL, position.amount, None, "market",
                post_only=False, urgency=Urgency.CRITICAL,
            )  # fmt: skip
            self._send(intent, decision.decision_id, 0, FLATTEN, tick.ts_ms, tick)

    # --- 4. Manage working orders -------------------------------------------------------------

    def _manage(self, bar: Bar, tick: Tick) -> None:
        ttl = self.risk.limits.entry_ttl_bars
        for cid, working in list(self._working.items()):
            if working.row.symbol != bar.symbol:
                continue
            if working.role == ENTRY and working.placed_ms < bar.ts_ms:
                working.bars += 1
                if working.bars < ttl:
                    continue
                # Unfilled after its time-to-live: the signal has expired.
                self._cancel_later(working.row, "entry signal expired")
                self._working.pop(cid, None)
                self._event(tick, "cancelled", bar.symbol, f"entry {cid} expired unfilled")
        exits = [w for w in self._working.values() if w.role == EXIT and w.row.symbol == bar.symbol]
        for working in exits:
            if working.placed_ms < bar.ts_ms:
                self._reprice_exit(working, bar, tick)
        self._reprice_rejected_exits(bar, tick)

    def _reprice_exit(self, working: _Working, bar: Bar, tick: Tick) -> None:
        cid = working.row.client_order_id
        after = self._cancel_later(working.row, "repricing at the new touch")
        self._working.pop(cid, None)
        if after.state == OrderState.FILLED.value:
            return
        self._place_exit_attempt(working.row, working.reprices + 1, bar, tick)

    def _reprice_rejected_exits(self, bar: Bar, tick: Tick) -> None:
        for row in self._rejected_exits.pop(bar.symbol, []):
            self._place_exit_attempt(row, attempt_of(row.client_order_id) + 1, bar, tick)

    def _place_exit_attempt(self, prior: OrderRow, attempt: int, bar: Bar, tick: Tick) -> None:
        position = self.portfolio.position(bar.symbol)
        if position is None or position.amount <= 0:
            return
        if attempt > self.risk.limits.max_exit_reprices:
            self._event(
                tick,
                "gave_up",
                bar.symbol,
                f"exit of decision {prior.decision_id} not filled after "
                f"{attempt - 1} reprices; waiting for a new exit signal",
            )
            return
        bound = self._bound_of(prior.decision_id)
        if bound is None:
            return  # an approval that binds no price can back no order (the store agrees)
        # The approval binds the exit: below its break-even a reprice would need a new
        # decision, which rule 1 refuses, so the exit waits at the bound instead.
        intent = OrderIntent(
            self.config.exchange,
            bar.symbol,
            Side.SELL,
            position.amount,
            max(bar.close, bound),
            "limit",
            post_only=True,
        )
        self._send(intent, prior.decision_id, attempt, EXIT, bar.ts_ms, tick)

    def _bound_of(self, decision_id: str) -> float | None:
        if decision_id not in self._bounds:
            self._bounds[decision_id] = self.decision_store.price_bound(decision_id)
        return self._bounds[decision_id]

    # --- 5. Decide ----------------------------------------------------------------------------

    def _decide(self, bar: Bar, tick: Tick, now: datetime | None) -> None:
        view = self.sniper.view(bar.symbol, bar.ts_ms, now)
        if view is None:
            return
        position = self.portfolio.position(bar.symbol)
        roles = {w.role for w in self._working.values() if w.row.symbol == bar.symbol}
        if position is not None and position.amount > 0:
            if view.wants_exit and EXIT not in roles:
                self._exit(
                    view,
                    position.avg_entry_price,
                    position.entry_fee_rate,
                    position.amount,
                    bar,
                    tick,
                )
        elif view.wants_entry and ENTRY not in roles and self.state is TradingState.ACTIVE:
            self._enter(view, bar, tick)

    def _account(self) -> AccountState:
        prices = self._prices()
        equity = self.portfolio.equity(prices)
        exposure = 0.0
        for symbol, position in self.portfolio.positions.items():
            price = prices.get(symbol)
            exposure += position.amount * (price if price is not None else math.nan)
        return AccountState(
            equity=equity,
            peak_equity=max(self._peak, equity),
            open_positions=len(self.portfolio.positions),
            exposure=exposure,
        )

    def _enter(self, view: BarView, bar: Bar, tick: Tick) -> None:
        account = self._account()
        if not account.equity > 0:
            return
        strategy = self.sniper.strategy
        plan = decide_entry(
            strategy,
            view.signals,
            view.row,
            bar.symbol,
            view.close,
            account,
            self.validator,
            self.risk,
            context=view.context(),
        )
        if not plan.place:
            return
        price = min(view.close, plan.price_bound)  # the approval binds the entry price
        budget = self.portfolio.cash / (1.0 + self.fees.maker)
        notional = min(budget, plan.size_fraction * account.equity)
        if not notional > 0:
            return
        amount = notional / price
        intent = OrderIntent(
            self.config.exchange, bar.symbol, Side.BUY, amount, price, "limit", post_only=True
        )
        plan_prices = {STOP: plan.stop_price} if plan.stop_price > 0 else {}
        if plan.take_profit_fraction > 0:
            plan_prices[TARGET] = price * (1.0 + plan.take_profit_fraction)
        entry = self._send(
            intent, plan.decision.decision_id, 0, ENTRY, bar.ts_ms, tick, detail=plan_prices
        )
        if entry is None or OrderState(entry.state) in (OrderState.REJECTED, OrderState.CANCELLED):
            return
        self._place_bracket(entry, plan_prices, bar.ts_ms, tick)

    def _place_bracket(
        self, entry: OrderRow, prices: dict[str, float], ts_ms: int, tick: Tick | None
    ) -> None:
        """The entry's stop-loss and take-profit, each with its own recorded approval, armed
        by the exchange once the entry fills (so they work from the entry's own bar). The
        stop is the one stored with the entry's approval, read back from the store: the
        validator and the order store never take a caller's word for where a stop is."""
        parent_decision = _decision_view(entry)
        for kind, planned in prices.items():
            reason = ExitReason.STOP_LOSS if kind == STOP else ExitReason.TAKE_PROFIT
            stop = self.decision_store.stop_price(entry.decision_id) if kind == STOP else None
            trigger = stop if stop is not None else planned
            decision = self._bracket_decision(
                parent_decision, reason, entry.price or 0.0, trigger, stop
            )
            if not decision.approved:
                continue
            order_type: OrderType = "stop_loss" if kind == STOP else "take_profit"
            urgency = Urgency.CRITICAL if kind == STOP else Urgency.NORMAL
            child = OrderIntent(self.config.exchange, entry.symbol, Side.SELL, entry.amount,
                                trigger, order_type, post_only=False, urgency=urgency)  # fmt: skip
            self._send(child, decision.decision_id, 0, kind, ts_ms, tick,
                       parent=entry.client_order_id)  # fmt: skip

    def _ensure_brackets(
        self, ts_ms: int, kinds: tuple[str, ...] = (STOP, TARGET), tick: Tick | None = None
    ) -> list[str]:
        """The newest entry of each symbol that is working or left a position open must have
        its bracket (``kinds`` of it) working: after a restart (a crash between the entry and
        its bracket would otherwise leave a position without a stop), and under HARDSTOP
        (the stop stays, also after a restart while halted). Returns the entries
        re-protected."""
        details = self.book.creation_details()
        children: dict[str, set[str]] = {}
        live_or_done = (OrderState.OPEN, OrderState.PARTIALLY_FILLED, OrderState.FILLED)
        newest: dict[str, OrderRow] = {}
        for row in self.book.in_states(*OrderState):
            role = _role(row)
            parent = details.get(row.client_order_id, {}).get("parent_client_order_id")
            if parent and OrderState(row.state) in live_or_done:
                children.setdefault(str(parent), set()).add(role)
            if role == ENTRY and OrderState(row.state) in live_or_done:
                newest[row.symbol] = row  # oldest first, so the last one wins
        repaired = []
        for symbol, entry in newest.items():
            position = self.portfolio.position(symbol)
            working = OrderState(entry.state) in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)
            if not working and (position is None or position.amount <= 0):
                continue
            planned = details.get(entry.client_order_id, {})
            missing = {
                kind: float(planned[kind])
                for kind in kinds
                if kind in planned and kind not in children.get(entry.client_order_id, set())
            }
            if missing:
                self._place_bracket(entry, missing, ts_ms, tick)
                repaired.append(entry.client_order_id)
                _log.warning("bracket_restored", entry=entry.client_order_id, kinds=sorted(missing))
        return repaired

    def _bracket_decision(
        self,
        entry: _EntryFacts,
        reason: ExitReason,
        price: float,
        trigger: float,
        stop: float | None,
    ) -> TradeDecision:
        return self.validator.evaluate(
            TradeProposal(
                side=Side.SELL,
                confidence=None,
                signal_count=None,
                regime=None,
                symbol=entry.symbol,
                entry_price=price,
                exit_price=trigger,
                entry_fee_rate=self.fees.maker,
                exit_fee_rate=self.fees.maker,
                exit_reason=reason,
                stop_price=stop,
                context={
                    "entry_decision_id": entry.decision_id,
                    "entry_client_order_id": entry.client_order_id,
                },
            )
        )

    def _exit(
        self,
        view: BarView,
        entry_price: float,
        entry_fee_rate: float,
        amount: float,
        bar: Bar,
        tick: Tick,
    ) -> None:
        decision = decide_exit(
            view.signals,
            view.row,
            bar.symbol,
            view.close,
            entry_price,
            entry_fee_rate,
            self.validator,
            context=view.context(),
        )
        if not decision.approved or decision.price_bound is None:
            return
        self._bounds[decision.decision_id] = decision.price_bound
        price = max(view.close, decision.price_bound)
        intent = OrderIntent(
            self.config.exchange, bar.symbol, Side.SELL, amount, price, "limit", post_only=True
        )
        self._send(intent, decision.decision_id, 0, EXIT, bar.ts_ms, tick)

    def _send(
        self,
        intent: OrderIntent,
        decision_id: str,
        attempt: int,
        role: str,
        ts_ms: int,
        tick: Tick | None,
        parent: str | None = None,
        detail: dict[str, float] | None = None,
    ) -> OrderRow | None:
        held = self.decisions.take()  # written with the order, in its transaction
        try:
            row = self.router.submit(
                intent, decision_id, attempt, parent_client_order_id=parent,
                detail=dict(detail or {}),
                decisions=[decision_values(d, self.region) for d in held],
            )  # fmt: skip
        except HardstopActiveError:
            # Raised by another process (the operator) since this loop last read the latch:
            # the order's own transaction refused it. Halt now, within this tick.
            self.decision_store.record_many(held)
            latch = self.guard.refresh_latch(force=True)
            if tick is not None:
                self._halt(tick, f"{latch.source}: {latch.reason}")
            else:
                self.state = TradingState.HALTED
            return None
        except Exception:
            self.decision_store.record_many(held)  # refused orders keep their decisions
            raise
        state = OrderState(row.state)
        if state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED, OrderState.UNKNOWN):
            self._working[row.client_order_id] = _Working(row, role, ts_ms, attempt)
        if tick is not None:
            price = f"{intent.price:.8g}" if intent.price is not None else "market"
            self._event(tick, "order", intent.symbol,
                        f"{role} {intent.side.value} {intent.amount:.8g} @ {price} "
                        f"[{row.client_order_id}] {row.state}")  # fmt: skip
        return row

    # --- Reconcile periodically ---------------------------------------------------------------

    def _periodic_reconcile(self, tick: Tick) -> None:
        report = ReconcileReport()
        settle_orders(self.router, report)
        cancel_orphans(self.router, report)
        if report.orphans_cancelled:
            self._event(
                tick,
                "reconcile",
                tick.symbol,
                f"cancelled orphan orders {report.orphans_cancelled}",
            )

    # --- Helpers ------------------------------------------------------------------------------

    def _known_orders(self) -> dict[str, OrderRow]:
        return {row.client_order_id: row for row in self.book.in_states(*(s for s in OrderState))}

    @staticmethod
    def _reason(row: OrderRow) -> str:
        return fill_reason(row)

    def _prices(self) -> dict[str, float | None]:
        return {s: self._last_close.get(s) for s in self.config.symbols}

    def _event(self, tick: Tick, kind: str, symbol: str, text: str) -> None:
        tick.events.append(EngineEvent(tick.ts_ms, kind, symbol, text))

    @property
    def trades(self) -> list[Trade]:
        """The closed round trips as the backtest reports them (same fingerprint function)."""
        return trades_of(self.round_trips)


def trades_of(round_trips: list[RoundTrip]) -> list[Trade]:
    """Round trips rebuilt from stored fills, in the backtest's trade terms."""
    return [
        Trade(
            t.symbol,
            _utc(t.entry_ms),
            _utc(t.exit_ms),
            t.entry_price,
            t.exit_price,
            t.amount,
            t.fee,
            t.profit,
            t.reason,
        )
        for t in round_trips
    ]
