"""The sniper agent: per symbol and closed bar, what the eight generators say (DESIGN §3).

Generators 1-4 and 8 come from candles, through the ``Sniper`` strategy -- the very code the
backtest runs, so a paper replay decides exactly as ``nettrace backtest`` does. Generators 5-7
(order-book imbalance, divergence, latency) are the scouts' pushes, read from the cross-region
store: only fresh signals of regions that are not stale count (``store.signals.live_signals``).
When scouts have spoken for the symbol their votes join the candle votes in the same
``signals.aggregate`` call; when none have, the bar's signals are the strategy's own. A scout's
HOLD (signal 7's risk-off: a venue answering far slower than usual) takes no side but opposes
buys there (``aggregate(risk_off=...)``): it lowers an entry's confidence, and a strong one
blocks an entry the candles alone would take. ``now`` is the moment the scouts are read at: the
wall clock live, the bar's scheduled time in a paced replay (``agents.scout_source``), so the
stored decision says which signals it heard and how old each was.

Candle signals are computed over the whole history each time a bar closes. For a replay the
history is known in advance, so they are computed once and read bar by bar: the look-ahead
truncation tests (``tests/unit/strategies``) show that bar ``t``'s signals depend on bars up
to ``t`` only, which is what makes the shortcut honest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from nettrace.market.candles import Candles
from nettrace.signals.aggregate import aggregate
from nettrace.signals.base import GeneratorOutput
from nettrace.store.signals import SignalRecord
from nettrace.strategies.base import Strategy, StrategySignals
from nettrace.strategies.sniper import Sniper

__all__ = ["BarView", "ScoutSource", "SniperAgent"]

#: Reads the fresh scout signals for a symbol at a time (the primary's cross-region store).
ScoutSource = Callable[[str, datetime], Sequence[SignalRecord]]

_DIRECTION = {"BUY": 1, "SELL": -1}
_RISK_OFF = "HOLD"


@dataclass(frozen=True)
class BarView:
    """What the generators said about ``symbol`` at the close of the bar at ``row``.

    ``signals`` and ``row`` are what ``strategies.decision`` reads; ``votes`` (signed strength
    per generator) and ``scouts`` go into the decision's stored context for ``nettrace why``.
    """

    symbol: str
    row: int
    ts_ms: int
    close: float
    signals: StrategySignals
    votes: Mapping[str, float]
    scouts: tuple[SignalRecord, ...] = ()
    #: Each candle generator's weight at this bar (its track record); empty when fixed.
    weights: Mapping[str, float] = field(default_factory=dict)
    #: When the scouts were read (``None``: they were not).
    heard_at: datetime | None = None

    @property
    def wants_entry(self) -> bool:
        return bool(self.signals.entry[self.row])

    @property
    def wants_exit(self) -> bool:
        return bool(self.signals.exit[self.row])

    def context(self) -> dict[str, object]:
        context: dict[str, object] = {
            "bar_ts_ms": self.ts_ms,
            "price": self.close,
            "votes": {name: round(v, 6) for name, v in self.votes.items()},
            "weights": {name: round(w, 4) for name, w in self.weights.items()},
            "scouts": [
                {
                    "id": s.id,
                    "source": s.source,
                    "region": s.source_region,
                    "exchange": s.exchange,
                    "side": s.side,
                    "confidence": s.confidence,
                    "ts": s.ts.isoformat(timespec="milliseconds"),
                    "age_s": (
                        None
                        if self.heard_at is None
                        else round((self.heard_at - s.ts).total_seconds(), 3)
                    ),
                }
                for s in self.scouts
            ],
        }
        if self.heard_at is not None:
            context["scouts_heard_at"] = self.heard_at.isoformat(timespec="milliseconds")
        return context


class SniperAgent:
    """Keeps each symbol's candles and signals and answers ``view(symbol, ts_ms)``."""

    def __init__(self, strategy: Strategy | None = None, scouts: ScoutSource | None = None) -> None:
        self.strategy: Strategy = strategy or Sniper()
        self._scouts = scouts
        self._candles: dict[str, Candles] = {}
        self._signals: dict[str, StrategySignals] = {}
        self._votes: dict[str, dict[str, np.ndarray]] = {}
        self._weights: dict[str, dict[str, np.ndarray]] = {}

    def load(self, candles: Candles) -> None:
        """Set a symbol's whole history (a replay file, or the warm-up before live bars)."""
        self._compute(candles)

    def append(self, candles: Candles) -> None:
        """A live bar closed: ``candles`` is the history including it; recompute."""
        self._compute(candles)

    def candles(self, symbol: str) -> Candles | None:
        return self._candles.get(symbol)

    def view(self, symbol: str, ts_ms: int, now: datetime | None = None) -> BarView | None:
        """The bar of ``symbol`` opening at ``ts_ms``; ``None`` if it is not in the history."""
        candles = self._candles.get(symbol)
        if candles is None or len(candles) == 0:
            return None
        row = int(np.searchsorted(candles.timestamp, ts_ms))
        if row >= len(candles) or int(candles.timestamp[row]) != ts_ms:
            return None
        votes = {name: float(col[row]) for name, col in self._votes[symbol].items()}
        weights = {name: float(col[row]) for name, col in self._weights[symbol].items()}
        signals = self._signals[symbol]
        records: tuple[SignalRecord, ...] = ()
        heard_at = None
        if self._scouts is not None and now is not None:
            heard_at = now
            records = _newest_opinions(self._scouts(symbol, now))
        view = BarView(
            symbol,
            row,
            ts_ms,
            float(candles.close[row]),
            signals,
            votes,
            records,
            weights,
            heard_at,
        )
        return self._with_scouts(view) if records else view

    def _compute(self, candles: Candles) -> None:
        symbol = candles.key.pair
        indicators = self.strategy.indicators(candles)
        self._candles[symbol] = candles
        self._signals[symbol] = self.strategy.signals(candles, indicators)
        self._votes[symbol] = {
            key.removeprefix("vote_"): value
            for key, value in indicators.items()
            if key.startswith("vote_")
        }
        self._weights[symbol] = {
            key.removeprefix("weight_"): value
            for key, value in indicators.items()
            if key.startswith("weight_")
        }

    def _with_scouts(self, view: BarView) -> BarView:
        """Re-aggregate the bar with the scouts' votes added (one output per scout signal)."""
        outputs = [
            GeneratorOutput(
                name,
                np.array([int(np.sign(vote))], dtype=np.int8),
                np.array([abs(vote)], dtype=np.float64),
            )
            for name, vote in view.votes.items()
        ]
        scout_votes, holds = _per_generator(view.scouts)
        outputs += [_one_bar(name, vote) for name, vote in scout_votes.items()]
        risk_off = [_one_bar(name, strength) for name, strength in holds.items()]
        weights: dict[str, float] = dict(getattr(self.strategy, "weights", {}) or {})
        weights.update(view.weights)  # this bar's track record, when the strategy keeps one
        agg = aggregate(outputs, weights, risk_off=risk_off)
        base, r = view.signals, view.row

        def one(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[r : r + 1]

        merged = StrategySignals(
            entry=agg.side == 1,
            exit=agg.side == -1,
            confidence=agg.confidence,
            signal_count=agg.signal_count,
            regime=one(base.regime),
            expected_move=one(base.expected_move),
            atr=one(base.atr),
        )
        return BarView(
            view.symbol,
            0,
            view.ts_ms,
            view.close,
            merged,
            {**view.votes, **scout_votes},  # the scouts' generators join the votes shown
            view.scouts,
            view.weights,
            view.heard_at,
        )


def _newest_opinions(signals: Sequence[SignalRecord]) -> tuple[SignalRecord, ...]:
    """Each scout generator's newest opinion per venue, oldest polls dropped.

    A scout re-polls every few seconds and each signal lives for its ttl, so one generator on
    one venue has many fresh signals at once; only its latest is what it thinks now (an
    older BUY the same generator has since turned into a SELL must not vote too). Ties on
    ``ts`` keep the lowest id, so the choice never depends on the order rows came back in.
    """
    newest: dict[tuple[str, str, str], SignalRecord] = {}
    for s in signals:
        if not (s.side in _DIRECTION or (s.side == _RISK_OFF and s.confidence > 0.0)):
            continue
        key = (s.source_region, s.exchange, s.source)
        held = newest.get(key)
        if held is None or (s.ts, held.id) > (held.ts, s.id):
            newest[key] = s
    return tuple(sorted(newest.values(), key=lambda s: (s.source_region, s.exchange, s.source)))


def _per_generator(
    signals: Sequence[SignalRecord],
) -> tuple[dict[str, float], dict[str, float]]:
    """One vote per scout generator, as signals 5-7 are one signal each (DESIGN §3).

    Every venue and region that runs a generator reports it, but they are one source of
    evidence: the vote is the mean of their signed strengths (two venues' BUY 0.9 and SELL 0.3
    make BUY 0.3), so ten venues cannot outvote the candles ten times over. A generator's
    risk-off (HOLD) strength is its most cautious venue's: one venue in trouble is reason
    enough not to open there.
    """
    signed: dict[str, list[float]] = {}
    holds: dict[str, float] = {}
    for s in signals:
        strength = min(max(s.confidence, 0.0), 1.0)
        if s.side in _DIRECTION:
            signed.setdefault(s.source, []).append(_DIRECTION[s.side] * strength)
        elif s.side == _RISK_OFF:
            holds[s.source] = max(holds.get(s.source, 0.0), strength)
    return {name: sum(v) / len(v) for name, v in signed.items()}, holds


def _one_bar(name: str, signed: float) -> GeneratorOutput:
    """A one-bar generator output from a signed strength (a hold's is its plain strength)."""
    return GeneratorOutput(
        name,
        np.array([int(np.sign(signed))], dtype=np.int8),
        np.array([min(abs(signed), 1.0)], dtype=np.float64),
    )
