"""``nettrace rules``: the operator's rules and every threshold in force."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from nettrace.agents.agent_goals import HARDSTOP_DAILY_LOSS, LAW, RULES, required_entry_move
from nettrace.cli.context import CliTable, state
from nettrace.config.rules import RulesInForce


def rules(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON instead.")
    ] = False,
) -> None:
    """Print the three rules, the GoalValidator thresholds and the risk limits in force.

    'law' is the floor encoded in agent_goals; 'in force' is after configuration, which may only
    tighten it. This is the very object the engine, the backtest and the paper replay build
    (config.rules.RulesInForce), so what it prints is what decides.
    """
    st = state(ctx)
    settings = st.settings
    in_force = RulesInForce.from_settings(settings)
    thresholds = in_force.thresholds
    fees = settings.fees()
    limits = in_force.limits
    hurdle = required_entry_move(fees, thresholds)
    if as_json:
        typer.echo(json.dumps(in_force.to_json(fees), indent=2))
        return

    table = CliTable(title="The operator's rules (agent_goals)", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("Rule", style="bold")
    table.add_column("How it is enforced")
    for rule in RULES:
        table.add_row(str(rule.number), rule.name, rule.enforcement)
    st.out.print(table)

    gate = CliTable(title="GoalValidator thresholds")
    gate.add_column("Threshold")
    gate.add_column("Law", justify="right")
    gate.add_column("In force", justify="right")
    gate.add_row("min confidence", f"{LAW.min_confidence:.2f}", f"{thresholds.min_confidence:.2f}")
    gate.add_row(
        "min agreeing signals", str(LAW.min_signal_count), str(thresholds.min_signal_count)
    )
    gate.add_row("entry margin", f"{LAW.entry_margin:.2%}", f"{thresholds.entry_margin:.2%}")
    gate.add_row("buy in downtrend", "refused", "refused")
    gate.add_row("maker / taker fee", "", f"{fees.maker:.2%} / {fees.taker:.2%}")
    gate.add_row("min expected move (2 x maker + margin)", "", f"{hurdle:.2%}")
    st.out.print(gate)

    risk = CliTable(title="Risk limits (risk_controller)")
    risk.add_column("Limit")
    risk.add_column("Value", justify="right")
    risk.add_row("max position", f"{limits.max_position_fraction:.0%} of equity")
    risk.add_row("risk per trade", f"{limits.risk_per_trade:.2%} of equity")
    risk.add_row("stop distance", f"{limits.atr_stop_multiple:g} x ATR")
    risk.add_row("max open positions", str(limits.max_open_positions))
    risk.add_row("max total exposure", f"{limits.max_total_exposure:.0%} of equity")
    risk.add_row("size reaches zero at drawdown", f"{limits.max_drawdown:.0%}")
    risk.add_row("take-profit distance", f"{limits.take_profit_atr_multiple:g} x ATR")
    risk.add_row("exit reprices (never below break-even)", str(limits.max_exit_reprices))
    risk.add_row("entry time-to-live", f"{limits.entry_ttl_bars} bar(s)")
    risk.add_row("HARDSTOP (daily loss)", f"{HARDSTOP_DAILY_LOSS:.0%} below UTC day start")
    risk.add_row("HARDSTOP action", in_force.hardstop_action)
    st.out.print(risk)
