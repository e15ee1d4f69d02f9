"""``nettrace tokens``: issue, list and revoke the per-region bearer tokens of the signals API.

A token is printed exactly once, by ``issue``; the database keeps only its SHA-256 digest, so a
lost token is replaced (issue a new one, revoke the old), never recovered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from nettrace.cli.context import CliError, CliTable, open_database, state
from nettrace.store.tokens import TokenStore

app = typer.Typer(
    help="Issue, list and revoke per-region API tokens (stored hashed; shown once).",
    no_args_is_help=True,
)


@contextmanager
def _tokens(ctx: typer.Context) -> Iterator[TokenStore]:
    with open_database(ctx, "the token table") as database:
        yield TokenStore(database)


@app.command()
def issue(
    ctx: typer.Context,
    region: Annotated[str, typer.Option(help="The region this token may push for, e.g. lhr.")],
    label: Annotated[str, typer.Option(help="A note to recognise the token by.")] = "",
) -> None:
    """Create a token for REGION and print it once (store it in the scout's secrets).

    REGION must be one of the configured regions (``load_regions()``, with
    ``$NETTRACE_REGIONS_FILE``): a token for a region that does not exist is refused.
    """
    from nettrace.config.regions import RegionConfigError, load_regions

    try:
        codes = load_regions().codes()
    except RegionConfigError as exc:
        raise CliError(str(exc)) from None
    wanted = region.strip().lower()
    if len(wanted) == 3 and wanted.isalpha() and wanted not in codes:  # else: the store's message
        raise CliError(
            f"region {region!r} is not configured; configured regions: {', '.join(codes)}"
        )
    with _tokens(ctx) as tokens:
        try:
            token, info = tokens.issue(region, label)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    typer.echo(token)
    typer.echo(
        f"token {info.id} for region {info.region} (fingerprint {info.fingerprint}); "
        "it is shown only now",
        err=True,
    )


@app.command()
def revoke(
    ctx: typer.Context,
    region: Annotated[
        str | None, typer.Option(help="Revoke every active token of this region.")
    ] = None,
    token_id: Annotated[int | None, typer.Option("--id", help="Revoke this token id.")] = None,
) -> None:
    """Revoke tokens by region or by id; requests with them get 401 from then on."""
    if (region is None) == (token_id is None):
        raise CliError("give exactly one of --region or --id")
    with _tokens(ctx) as tokens:
        count = tokens.revoke(region=region, token_id=token_id)
    what = f"region {region}" if region is not None else f"id {token_id}"
    state(ctx).out.print(f"Revoked {count} active token(s) for {what}.")
    if count == 0:
        raise typer.Exit(1)


@app.command("list")
def list_tokens(ctx: typer.Context) -> None:
    """Every token issued: id, region, label, fingerprint, created, revoked. Never the token."""
    with _tokens(ctx) as tokens:
        infos = tokens.list()
    table = CliTable(title="API tokens")
    for column in ("id", "region", "label", "fingerprint", "created", "revoked"):
        table.add_column(column)
    for info in infos:
        table.add_row(
            str(info.id),
            info.region,
            info.label,
            info.fingerprint,
            info.created_at.isoformat(timespec="seconds"),
            info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else "active",
        )
    state(ctx).out.print(table)
