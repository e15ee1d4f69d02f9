"""The ``nettrace`` command line.

Errors a user can cause (a bad option, an invalid setting, an unreachable database) print one
line on stderr and exit with code 2; a traceback on user input is a bug.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import core as click  # Typer's own (vendored) click
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException

from nettrace import __version__
from nettrace.cli.context import CliError, CliState, CliTable, state
from nettrace.config.errors import SettingsError

USAGE_ERROR = 2
CONFIG_ENV_VAR = "NETTRACE_CONFIG"  # nettrace.config.settings.CONFIG_ENV_VAR (a test checks)

#: The commands, loaded only when run: each module (and what it imports: pandas, ccxt, flask,
#: SQLAlchemy...) is imported when its command is invoked, so `nettrace --help`, `rules` and
#: `--version` start fast. name: (module, attribute, the one line `nettrace --help` shows;
#: a test checks that line against the command's own help).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": (
        "nettrace.cli.serve",
        "serve",
        "Serve the signals API (push, cross-region, healthz, readyz, OpenAPI) until Ctrl-C.",
    ),
    "rules": (
        "nettrace.cli.rules",
        "rules",
        "Print the three rules, the GoalValidator thresholds and the risk limits in force.",
    ),
    "backtest": (
        "nettrace.cli.backtest",
        "backtest",
        "Backtest a strategy: decisions at bar close, fills at the next bar, fees on every fill.",
    ),
    "run": (
        "nettrace.cli.run",
        "run",
        "Run the trading engine: sniper decisions, GoalValidator approvals, maker orders.",
    ),
    "why": (
        "nettrace.cli.why",
        "why",
        "Why did (or didn't) NetTrace trade SYMBOL? Explains the last decision at or before --at.",
    ),
    "audit": (
        "nettrace.cli.audit",
        "audit",
        "Audit the ledger: does every stored order, fill and round trip keep the rules?",
    ),
    "db": (
        "nettrace.cli.db",
        "app",
        "Create, migrate and inspect the database (SQLite by default, or DATABASE_URL).",
    ),
    "data": (
        "nettrace.cli.data",
        "app",
        "Download, import and list candle data (Parquet per exchange/pair/timeframe).",
    ),
    "tokens": (
        "nettrace.cli.tokens",
        "app",
        "Issue, list and revoke per-region API tokens (stored hashed; shown once).",
    ),
    "cluster": (
        "nettrace.cli.cluster",
        "app",
        "Run the multi-region network locally: a primary (ewr) and scouts as separate "
        "processes on 127.0.0.1, scouts fed by replayed candles.",
    ),
    "hardstop": (
        "nettrace.cli.hardstop",
        "app",
        "Show, raise and clear the HARDSTOP trading halt.",
    ),
    "handoff": (
        "nettrace.cli.handoff",
        "app",
        "Append to and read the operator's HANDOFF.md.",
    ),
}


def load_command(name: str) -> click.Command:
    """The real click command ``name`` of ``LAZY_COMMANDS`` (imports its module)."""
    module_name, attribute, _ = LAZY_COMMANDS[name]
    target: Any = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer()
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: lists every lazy command by its one-line help, imports it when run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # As Typer lists them: commands, then groups; each in the order they were declared.
        eager = [name for name in super().list_commands(ctx) if name not in LAZY_COMMANDS]
        eager_groups = [name for name in eager if isinstance(self.commands[name], TyperGroup)]
        lazy_groups = [name for name, (_, attr, _) in LAZY_COMMANDS.items() if attr == "app"]
        lazy = [name for name in LAZY_COMMANDS if name not in lazy_groups]
        plain = [name for name in eager if name not in eager_groups]
        return [*lazy, *plain, *lazy_groups, *eager_groups]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            # A stand-in for the help listing; resolve_command loads the real one.
            return TyperCommand(cmd_name, help=LAZY_COMMANDS[cmd_name][2])
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in LAZY_COMMANDS and args[0] not in self.commands:
            self.add_command(load_command(args[0]), args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    name="nettrace",
    help=(
        "NetTrace Quant: a multi-region crypto trading system. Paper trading is the default; "
        "every order passes the GoalValidator.\n\n"
        "Settings come from NETTRACE_* environment variables (plus FLY_REGION, PRIMARY_REGION "
        "and DATABASE_URL) and an optional TOML file. Start with `nettrace db upgrade`, then "
        "`nettrace rules`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the settings in force.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help=f"TOML settings file (default: ${CONFIG_ENV_VAR}). Environment variables win.",
            dir_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the NetTrace version and exit.",
            is_eager=True,
            callback=lambda value: _print_version() if value else None,
        ),
    ] = False,
) -> None:
    ctx.obj = CliState(config_file=config)


def _print_version() -> None:
    typer.echo(version_line())
    raise typer.Exit()


def version_line() -> str:
    """What ``nettrace --version`` and ``nettrace version`` print."""
    return f"nettrace {__version__}"


@app.command()
def version() -> None:
    """Print the NetTrace version (the same line as `nettrace --version`)."""
    typer.echo(version_line())


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print every setting in force and the variable that sets it; secrets are masked."""
    from nettrace.config.settings import env_name

    st = state(ctx)
    table = CliTable(title="Settings in force")
    table.add_column("Setting")
    table.add_column("Variable")
    table.add_column("Value")
    for name, value in st.settings.safe_dump().items():
        table.add_row(name, env_name(name), "" if value is None else str(value))
    st.out.print(table)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn every user error into one line and exit code 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="nettrace", standalone_mode=False)
    except TyperException as exc:
        # Typer vendors click; its usage errors all derive from this public base.
        if type(exc).__name__ == "NoArgsIsHelpError":
            return USAGE_ERROR  # the help text was already printed
        ctx = getattr(exc, "ctx", None)
        hint = f" (try `{ctx.command_path} --help`)" if ctx is not None else ""
        return _fail(f"{exc.format_message()}{hint}")
    except (SettingsError, CliError) as exc:
        return _fail(str(exc))
    except typer.Abort:
        typer.echo("nettrace: aborted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def _fail(message: str) -> int:
    typer.echo(f"nettrace: error: {message}", err=True)
    return USAGE_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run() -> None:
    """Console-script entry point (``nettrace``)."""
    sys.exit(main())
