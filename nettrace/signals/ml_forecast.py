"""Signal 8, ML forecast: a gradient-boosted classifier of "will the close be higher in h bars?".

The model is fitted walk-forward and only ever on labels that were already known when it was
fitted, so its predictions obey the same no-look-ahead rule as the indicator generators:

* it is (re)fitted at the absolute bar indices ``0, retrain_every, 2 * retrain_every, ...``
  (skipping those with fewer than ``min_train`` usable rows). Fixed absolute indices, not
  "every N bars from wherever the data happens to end", make the schedule independent of the
  series length, so truncating the candles never changes an earlier prediction;
* a fit at bar ``k`` uses feature row ``i`` only if its label is known at ``k``'s close, that is
  ``i + horizon <= k``, and at most the latest ``max_train`` such rows (recent behaviour
  matters more than the distant past, and it bounds the cost of each fit);
* bars ``k .. k + retrain_every - 1`` are predicted by the model fitted at ``k``.

Features at bar ``t`` are TA-Lib indicators of bars ``0..t``: rates of change over several
windows, RSI, ADX, NATR (ATR as a percentage of the close), a Bollinger z-score and volume
relative to its recent average.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import talib
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from nettrace.market.candles import Candles
from nettrace.signals.base import FloatArray, GeneratorOutput
from nettrace.signals.trend import rescaled_prices

#: Windows (bars) of the rate-of-change features.
ROC_WINDOWS: tuple[int, ...] = (1, 3, 6, 12, 24, 48)


def forecast_features(candles: Candles) -> npt.NDArray[np.float64]:
    """The feature matrix, one row per bar, NaN during each indicator's warm-up.

    Every column at row ``t`` depends only on bars ``0..t``. Scale-free quantities only
    (percentages, ratios, oscillators), so one model transfers across price levels.
    """
    prices = rescaled_prices(candles)
    close, high, low = prices.close, prices.high, prices.low
    columns: list[FloatArray] = [talib.ROC(close, timeperiod=w) for w in ROC_WINDOWS]
    columns.append(talib.RSI(close, timeperiod=14))
    columns.append(talib.ADX(high, low, close, timeperiod=14))
    columns.append(talib.NATR(high, low, close, timeperiod=14))
    upper, middle, _ = talib.BBANDS(close, timeperiod=20, nbdevup=1.0, nbdevdn=1.0)
    sigma = upper - middle
    spread = np.isfinite(sigma) & (sigma > 1e-9 * np.abs(middle))
    columns.append(np.divide(close - middle, sigma, out=np.full_like(close, np.nan), where=spread))
    volume = candles.volume
    baseline = talib.SMA(volume, timeperiod=20)
    has_base = np.isfinite(baseline) & (baseline > 0.0)
    columns.append(np.divide(volume, baseline, out=np.full_like(volume, np.nan), where=has_base))
    return np.column_stack(columns).astype(np.float64)


@dataclass(frozen=True)
class MLForecastGenerator:
    """Walk-forward ``HistGradientBoostingClassifier`` (see the module docstring for the rules).

    The label of bar ``t`` is ``close[t + horizon] > close[t] * (1 + threshold)``. Direction is
    +1 when the predicted probability ``p`` exceeds ``0.5 + margin``, -1 below ``0.5 - margin``,
    else 0; strength is ``|p - 0.5| * 2`` where there is a direction.

    Defaults, for 5-minute bars: a 12-bar (1 h) horizon and threshold 0, so +1/-1 mean
    "up / not up in an hour" and the classes are roughly balanced (a positive threshold makes
    "not up by that much" the common class and the vote mostly -1, which is not a sell case).
    Refit every 2,500 bars (about 8.7 days) on at most the latest 6,000 labelled rows, once
    2,000 are available, with 60 boosting rounds of 15-leaf trees: 100,000 bars then cost
    40 fits, about 3 s on two cores. ``random_state`` is fixed, so runs repeat exactly.
    """

    # Not a dataclass field: the name is the generator's stable id, never a parameter.
    name = "ml_forecast"

    horizon: int = 12
    threshold: float = 0.0
    margin: float = 0.05
    min_train: int = 2_000
    retrain_every: int = 2_500
    max_train: int = 6_000
    max_iter: int = 60
    max_leaf_nodes: int = 15
    learning_rate: float = 0.1
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.retrain_every < 1:
            raise ValueError("ml_forecast needs horizon >= 1 and retrain_every >= 1")
        if not 2 <= self.min_train <= self.max_train:
            raise ValueError("ml_forecast needs 2 <= min_train <= max_train")
        if not 0.0 <= self.margin < 0.5:
            raise ValueError("ml_forecast needs 0 <= margin < 0.5")
        if self.threshold <= -1.0:
            raise ValueError("ml_forecast needs threshold > -1")

    def compute(self, candles: Candles) -> GeneratorOutput:
        probability = self.probabilities(candles)
        known = np.isfinite(probability)
        p = np.where(known, probability, 0.5)
        up = known & (p > 0.5 + self.margin)
        down = known & (p < 0.5 - self.margin)
        direction = np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
        strength = np.where(direction != 0, np.clip(np.abs(p - 0.5) * 2.0, 0.0, 1.0), 0.0)
        return GeneratorOutput(self.name, direction, strength.astype(np.float64))

    def probabilities(self, candles: Candles) -> FloatArray:
        """Walk-forward P(up) per bar; NaN before the first fit and where features are missing."""
        n = len(candles)
        probability = np.full(n, np.nan)
        if n == 0:
            return probability
        features = forecast_features(candles)
        valid = np.asarray(np.isfinite(features).all(axis=1), dtype=np.bool_)
        close = candles.close
        h = self.horizon
        labels = np.zeros(n, dtype=bool)
        labels[: n - h] = close[h:] > close[: n - h] * (1.0 + self.threshold)
        # One OpenMP thread: the fits are small (<= max_train rows), and scikit-learn's default
        # of one thread per core made a fit 20x slower whenever anything else kept a core busy
        # (measured: 0.13 s single-threaded vs 2.2 s next to a running benchmark).
        with threadpool_limits(limits=1, user_api="openmp"):
            self._walk_forward(features, valid, labels, probability)
        return probability

    def _walk_forward(
        self,
        features: npt.NDArray[np.float64],
        valid: npt.NDArray[np.bool_],
        labels: npt.NDArray[np.bool_],
        probability: FloatArray,
    ) -> None:
        """Fit at each scheduled bar and predict its segment into ``probability`` (in place)."""
        n, h = len(probability), self.horizon
        valid_rows = np.flatnonzero(valid)
        model: HistGradientBoostingClassifier | None = None
        for k in range(0, n, self.retrain_every):
            last_known = k - h  # row i has a known label at bar k iff i <= k - h
            usable = valid_rows[: np.searchsorted(valid_rows, last_known, side="right")]
            usable = usable[-self.max_train :]
            if usable.size >= self.min_train and np.unique(labels[usable]).size == 2:
                model = self._fit(features[usable], labels[usable])
            if model is None:
                continue
            segment = np.arange(k, min(k + self.retrain_every, n))
            segment = segment[valid[segment]]
            if segment.size:
                up_column = int(np.flatnonzero(model.classes_)[0])  # the True class
                probability[segment] = model.predict_proba(features[segment])[:, up_column]

    def _fit(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.bool_]
    ) -> HistGradientBoostingClassifier:
        # No early stopping: its validation split would make each fit depend on a random draw
        # and cost time; the small, fixed number of rounds is the regulariser instead.
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes,
            learning_rate=self.learning_rate,
            early_stopping=False,
            random_state=self.random_state,
        )
        model.fit(x, y)
        return model
