"""The ``nettrace`` command line.

Errors a user can cause (a bad option, an invalid setting, an unreachable database) print one
line on stderr and exit with code 2; a traceback on user input is a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from nettrace import __version__
from nettrace.cli import audit, backtest, cluster, data, db, hardstop, rules, serve, tokens, why
from nettrace.cli import run as run_cmd
from nettrace.cli.context import CliError, CliState, CliTable, state
from nettrace.config.settings import CONFIG_ENV_VAR, SettingsError

USAGE_ERROR = 2

app = typer.Typer(
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
app.add_typer(db.app, name="db")
app.add_typer(data.app, name="data")
app.add_typer(tokens.app, name="tokens")
app.add_typer(cluster.app, name="cluster")
app.add_typer(hardstop.app, name="hardstop")
app.command()(serve.serve)
app.command()(rules.rules)
app.command()(backtest.backtest)
app.command(name="run")(run_cmd.run)
app.command()(why.why)
app.command()(audit.audit)
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
