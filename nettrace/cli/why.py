"""``nettrace why``: explain the stored GoalValidator decision for a symbol (DESIGN §3).

Every decision, taken or refused, is in the ``decisions`` table with the proposal exactly as the
validator saw it, the thresholds and fees in force, and every reason for refusal. This command
reads it back and answers "why did (or didn't) it trade?" in words, with the orders placed for
an approved decision. It only reads; it never changes anything.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from nettrace.cli.context import CliError, CliTable, open_database, state
from nettrace.domain.numbers import finite_float, strict_int
from nettrace.store.decisions import DecisionStore
from nettrace.store.models import DecisionRow, OrderRow

#: SELL exits that skip rule 3's signal gate, and what the validator checks instead.
_GATE_SKIPPED = {
    "stop_loss": "a risk exit closes the position whatever the signals say; no rule is checked.",
    "hardstop": "a risk exit closes the position whatever the signals say; no rule is checked.",
    "take_profit": "the entry's own target needs no fresh signals; only rule 1 (no loss) applies.",
}

_RISK_EXITS = frozenset({"stop_loss", "hardstop"})

#: What became of an approval's orders, in words (``outcome`` in the JSON form).
_OUTCOME_TEXT = {
    "filled": "filled",
    "partially_filled": "partly filled",
    "open": "working, not filled yet",
    "cancelled": "cancelled unfilled",
    "rejected": "rejected by the venue",
    "no_order": "no order placed",
}


def outcome(row: DecisionRow, orders: list[OrderRow]) -> str:
    """``refused``; or for an approval what its orders came to: ``filled`` (some order filled
    completely), ``partially_filled``, ``open`` (working or unconfirmed), ``cancelled`` (every
    order ended unfilled: expired, repriced away, halted), ``rejected`` or ``no_order``.

    Why not "TRADED" for every approval: an approval is permission, not a trade; an entry
    whose post-only order was cancelled on arrival traded nothing, and saying otherwise sends
    the operator looking for a position that does not exist.
    """
    if not row.approved:
        return "refused"
    if not orders:
        return "no_order"
    states = {o.state for o in orders}
    if "filled" in states:
        return "filled"
    if any(o.filled > 0 for o in orders):
        return "partially_filled"
    if states & {"open", "pending_submit", "unknown", "partially_filled"}:
        return "open"
    if "rejected" in states and "cancelled" not in states:
        return "rejected"
    return "cancelled"


def verdict(row: DecisionRow, orders: list[OrderRow]) -> str:
    """TRADED (an order filled, wholly or partly), APPROVED (nothing filled) or REFUSED."""
    result = outcome(row, orders)
    if result == "refused":
        return "REFUSED"
    return "TRADED" if result in ("filled", "partially_filled") else "APPROVED"


#: Exit code when the symbol has no decision at or before the time asked about.
NO_DECISION = 1

# ccxt unified symbols: BASE/QUOTE, optionally :SETTLE (derivatives) and -expiry parts.
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._-]*/[A-Z0-9][A-Z0-9._-]*(:[A-Z0-9._-]+)?$")


def why(
    ctx: typer.Context,
    symbol: Annotated[
        str, typer.Argument(help="The ccxt symbol to explain, e.g. BTC/USD.", show_default=False)
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Explain the decision in force at this time (ISO 8601; no zone means UTC). "
            "Default: now.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            max=1000,
            help="Show the N most recent decisions at or before --at as a table instead.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the decision(s) as JSON for scripts.")
    ] = False,
) -> int:
    """Why did (or didn't) NetTrace trade SYMBOL? Explains the last decision at or before --at.

    \b
    For that decision it shows:
      - the verdict (TRADED: an order filled; APPROVED: nothing filled, with what became
        of its order; REFUSED), side, time and region;
      - the scout votes it heard, each with its region and age;
      - confidence vs min_confidence, agreeing signals vs min_signal_count,
        the regime, and the expected move vs the fees;
      - every refusal, with the rule it protects;
      - the per-generator votes, when the caller recorded them;
      - the orders placed for an approved decision, with state and fill.

    Exit code 0 when a decision is shown, 1 when none is recorded, 2 on a bad option.

    \b
    Examples:
      nettrace why BTC/USD
      nettrace why BTC/USD --at 2026-11-25T14:05
      nettrace why ETH/USD --at 2026-11-25T14:05:00+01:00 --limit 10
      nettrace why BTC/USD --json | jq .refusals
    """
    wanted = parse_symbol(symbol)
    moment = parse_at(at)
    with open_database(ctx, "the decisions table") as database:
        store = DecisionStore(database, region="-")
        rows = store.at_or_before(wanted, moment, limit or 1)
        span = None if rows else store.span(wanted)
        orders = store.orders_for([row.id for row in rows]) if rows else {}
    if not rows:
        typer.echo(f"nettrace: {_none_found(wanted, moment, at is not None, span)}", err=True)
        return NO_DECISION
    out = state(ctx).out
    if as_json:
        if limit is None:
            payload: Any = decision_json(rows[0], orders.get(rows[0].id, []))
        else:
            payload = [decision_json(row, orders.get(row.id, [])) for row in rows]
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
        return 0
    if limit is not None:
        out.print(_summary_table(wanted, moment, rows, orders))
        return 0
    _explain(ctx, rows[0], orders.get(rows[0].id, []), moment if at is not None else None)
    return 0


# --- Parsing ------------------------------------------------------------------------------------


def parse_symbol(text: str) -> str:
    """``btc/usd`` -> ``BTC/USD``; anything not shaped like a ccxt symbol is a ``CliError``."""
    value = text.strip().upper()
    if not _SYMBOL.match(value):
        raise CliError(
            f"symbol {text!r} is not a ccxt symbol (use BASE/QUOTE, e.g. BTC/USD or ETH/USDT)"
        )
    return value


def parse_at(text: str | None) -> datetime:
    """``--at``: ISO 8601 (``2026-11-25``, ``2026-11-25T14:05``, ``...Z``, ``...+01:00``)."""
    if text is None:
        return datetime.now(UTC)
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "zZ" else value)
        if not value:
            raise ValueError("empty")
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise CliError(
            f"--at {text!r} is not an ISO 8601 time (use e.g. 2026-11-25T14:05, "
            "2026-11-25T14:05:00Z or 2026-11-25T14:05:00+01:00; no zone means UTC)"
        ) from None


def _none_found(
    symbol: str, moment: datetime, explicit: bool, span: tuple[datetime, datetime] | None
) -> str:
    if span is None:
        return f"no decision recorded for {symbol}"
    first, _ = span
    when = f" at or before {_when(moment)}" if explicit else ""
    return f"no decision recorded for {symbol}{when} (the first is at {_when(first)})"


# --- Machine form -------------------------------------------------------------------------------


def decision_json(row: DecisionRow, orders: list[OrderRow]) -> dict[str, Any]:
    """One decision and its orders as plain JSON values."""
    return {
        "id": row.id,
        "decided_at": row.decided_at.isoformat(),
        "region": row.region,
        "symbol": row.symbol,
        "side": row.side,
        "regime": row.regime,
        "confidence": row.confidence,
        "signal_count": row.signal_count,
        "approved": row.approved,
        "verdict": verdict(row, orders),
        "outcome": outcome(row, orders),
        "refusals": row.refusals,
        "inputs": row.inputs,
        "thresholds": row.thresholds,
        "fees": row.fees,
        "price_bound": row.price_bound,
        "stop_price": row.stop_price,
        "exit_reason": row.exit_reason,
        "orders": [
            {
                "client_order_id": order.client_order_id,
                "exchange": order.exchange,
                "side": order.side,
                "order_type": order.order_type,
                "post_only": order.post_only,
                "price": order.price,
                "amount": order.amount,
                "filled": order.filled,
                "state": order.state,
                "exchange_order_id": order.exchange_order_id,
                "created_at": order.created_at.isoformat(),
            }
            for order in orders
        ],
    }


# --- Human form ---------------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _text(value: object) -> str:
    return "-" if value is None else escape(str(value))


def _fraction(value: object, digits: int = 2) -> str:
    number = finite_float(value)
    return f"{number:.{digits}%}" if number is not None else _text(value)


def _number(value: object, spec: str = ".8g") -> str:
    number = finite_float(value)
    return format(number, spec) if number is not None else _text(value)


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "[yellow]?[/]"
    return "[green]ok[/]" if ok else "[red]FAIL[/]"


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _explain(
    ctx: typer.Context, row: DecisionRow, orders: list[OrderRow], asked: datetime | None
) -> None:
    out = state(ctx).out
    side = row.side or _text(row.inputs.get("side"))
    said = verdict(row, orders)
    colour = {"TRADED": "bold green", "APPROVED": "bold yellow"}.get(said, "bold red")
    headline = f"[{colour}]{said}[/] {side} {escape(row.symbol)}"
    result = outcome(row, orders)
    tail = f" (approved; {_OUTCOME_TEXT[result]})" if row.approved else ""
    out.print(f"{headline} at {_when(row.decided_at)} in region {escape(row.region)}{tail}")
    note = f"decision {row.id}"
    if asked is not None:
        note += f"; the latest at or before {_when(asked)}"
    out.print(f"[dim]{note}[/]")

    exit_reason = str(row.inputs.get("exit_reason") or "").lower()
    gate = not (str(row.side or "").upper() == "SELL" and exit_reason in _GATE_SKIPPED)
    if not gate:
        out.print(f"A {escape(exit_reason)} exit: {_GATE_SKIPPED[exit_reason]}")
    out.print(_inputs_table(row, gate=gate))

    refusals = [r for r in row.refusals if isinstance(r, dict)]
    if refusals:
        out.print("[bold]Why it was refused:[/]")
        for refusal in refusals:
            rule = refusal.get("rule")
            label = f"rule {rule}" if rule is not None else "no rule"
            out.print(
                f"  - {_text(refusal.get('message'))} "
                f"[dim]({label}, {_text(refusal.get('code'))})[/]"
            )
    elif row.approved:
        out.print("Every rule passed, so the GoalValidator approved the trade.")

    context = _mapping(row.inputs.get("context"))
    votes = _mapping(context.get("votes"))
    if votes:
        table = CliTable("generator", "vote", title="Per-generator votes")
        for name, vote in sorted(votes.items()):
            table.add_row(escape(name), _number(vote, "+.4f"))
        out.print(table)
    scouts = [s for s in context.get("scouts") or [] if isinstance(s, dict)]
    heard_at = context.get("scouts_heard_at")
    if scouts:
        title = "Scout votes heard" + (f" at {escape(str(heard_at))}" if heard_at else "")
        table = CliTable("region", "generator", "exchange", "side", "strength", "age", title=title)
        for scout in scouts:
            age = finite_float(scout.get("age_s"))
            table.add_row(
                _text(scout.get("region")),
                _text(scout.get("source")),
                _text(scout.get("exchange")),
                _text(scout.get("side")),
                _number(scout.get("confidence"), ".2f"),
                f"{age:.1f} s" if age is not None else "-",
            )
        out.print(table)
    elif heard_at:
        out.print(f"No scout spoke for {escape(row.symbol)} at {escape(str(heard_at))}.")
    extra = {
        key: value
        for key, value in context.items()
        if key not in ("votes", "scouts", "scouts_heard_at")
    }
    if extra:
        table = CliTable(show_header=False, title="What the caller saw")
        for key, value in sorted(extra.items()):
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            table.add_row(escape(key), escape(shown))
        out.print(table)

    if row.approved:
        if orders:
            out.print(_orders_table(orders))
        else:
            out.print("No order has been placed for this decision.")


def _inputs_table(row: DecisionRow, *, gate: bool = True) -> Table:
    """The proposal against the thresholds; ``gate`` False marks rule 3's gate as not applied."""
    inputs, thresholds, fees = row.inputs, row.thresholds, row.fees
    verdict = _verdict if gate else (lambda _ok: "[dim]n/a[/]")
    table = CliTable("input", "value", "needed", "", title="Inputs against the thresholds in force")

    confidence = finite_float(inputs.get("confidence"))
    min_conf = finite_float(thresholds.get("min_confidence"))
    table.add_row(
        "confidence",
        _number(inputs.get("confidence"), ".4f"),
        f">= {_number(thresholds.get('min_confidence'), '.2f')} (min_confidence)",
        verdict(None if confidence is None or min_conf is None else confidence >= min_conf),
    )
    count = strict_int(inputs.get("signal_count"))
    min_count = strict_int(thresholds.get("min_signal_count"))
    table.add_row(
        "agreeing signals",
        _text(inputs.get("signal_count")),
        f">= {_text(thresholds.get('min_signal_count'))} (min_signal_count)",
        verdict(None if count is None or min_count is None else count >= min_count),
    )
    side = str(row.side or inputs.get("side") or "").upper()
    regime = row.regime or inputs.get("regime")
    table.add_row(
        "regime",
        _text(regime),
        "not downtrend for a BUY" if side == "BUY" else "-",
        verdict(None if row.regime is None else not (side == "BUY" and regime == "downtrend")),
    )

    maker = finite_float(fees.get("maker"))
    if side == "BUY":
        margin = finite_float(thresholds.get("entry_margin")) or 0.0
        move = finite_float(inputs.get("expected_move"))
        hurdle = None if maker is None else 2.0 * maker + margin
        needed = (
            "-"
            if hurdle is None
            else f">= {hurdle:.4%} (2 x maker {maker:.2%} + margin {margin:.2%})"
        )
        table.add_row(
            "expected move",
            _fraction(inputs.get("expected_move"), 4),
            needed,
            _verdict(None if move is None or hurdle is None else move >= hurdle - 1e-12),
        )
    elif side == "SELL":
        entry = finite_float(inputs.get("entry_price"))
        exit_ = finite_float(inputs.get("exit_price"))
        entry_fee = finite_float(inputs.get("entry_fee_rate"))
        if entry_fee is None and inputs.get("entry_fee_rate") is None:
            entry_fee = maker
        breakeven = (
            None
            if entry is None or entry_fee is None or maker is None or maker >= 1.0
            else entry * (1.0 + entry_fee) / (1.0 - maker)
        )
        table.add_row("entry price", _number(inputs.get("entry_price")), "-", "")
        table.add_row(
            "exit price",
            _number(inputs.get("exit_price")),
            "-" if breakeven is None else f">= {breakeven:.8g} (break-even after fees)",
            _verdict(
                None if exit_ is None or breakeven is None else exit_ >= breakeven * (1 - 1e-9)
            )
            if str(inputs.get("exit_reason") or "").lower() not in _RISK_EXITS
            else "[dim]n/a[/]",
        )
        reason = inputs.get("exit_reason")
        if reason is not None:
            table.add_row("exit reason", _text(reason), "-", "")
    if maker is not None:
        table.add_row("maker fee", f"{maker:.2%}", "-", "")
    if row.price_bound is not None:  # what the approval lets an order (and its reprices) do
        side = "at or below" if row.side == "BUY" else "at or above"
        if row.exit_reason == "stop_loss":
            side = "exactly at (the stored stop)"
        table.add_row("approval binds the price", f"{side} {row.price_bound:.8g}", "-", "")
    if row.approved and row.side == "BUY" and row.stop_price is not None:
        table.add_row("stop stored with the entry", f"{row.stop_price:.8g}", "-", "")
    return table


def _orders_table(orders: list[OrderRow]) -> Table:
    table = CliTable(
        "client id", "type", "side", "price", "amount", "state", "filled", title="Orders placed"
    )
    for order in orders:
        kind = order.order_type + (" post-only" if order.post_only else "")
        table.add_row(
            escape(order.client_order_id),
            kind,
            order.side,
            "market" if order.price is None else f"{order.price:.8g}",
            f"{order.amount:.8g}",
            order.state,
            f"{order.filled:.8g}",
        )
    return table


def _summary_table(
    symbol: str, moment: datetime, rows: list[DecisionRow], orders: dict[str, list[OrderRow]]
) -> Table:
    table = CliTable(
        "decided at",
        "region",
        "side",
        "verdict",
        "confidence",
        "signals",
        "regime",
        "why / orders",
        title=f"{symbol}: the {len(rows)} latest decision(s) at or before {_when(moment)}",
    )
    for row in rows:
        placed = orders.get(row.id, [])
        said = verdict(row, placed)
        if row.approved:
            detail = (
                ", ".join(f"{escape(o.client_order_id)} {o.state}" for o in placed)
                or "no order placed"
            )
        else:
            messages = [_text(r.get("message")) for r in row.refusals if isinstance(r, dict)]
            detail = "; ".join(messages) or "-"
        shown = {"TRADED": "[green]TRADED[/]", "APPROVED": "[yellow]APPROVED[/]"}.get(
            said, "[red]REFUSED[/]"
        )
        table.add_row(
            _when(row.decided_at),
            escape(row.region),
            row.side or "-",
            shown,
            _number(row.confidence, ".4f"),
            _text(row.signal_count),
            row.regime or "-",
            detail,
        )
    return table
