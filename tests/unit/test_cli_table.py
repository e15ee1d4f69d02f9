"""The CLI's tables never cut a value, however narrow the terminal."""

from __future__ import annotations

import io

from rich.console import Console

from nettrace.cli.context import PIPE_WIDTH, CliTable, make_console

LONG = "SYNTHETIC-BTC-USD-5m-" + "x" * 60 + "-END"


def _render(table: CliTable, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, soft_wrap=True)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "".join(ch for ch in text if ch.isalnum() or ch in "-")


def test_a_narrow_table_folds_long_values_instead_of_cutting_them() -> None:
    table = CliTable("setting", "value", title="narrow")
    table.add_row("Entry margin", LONG)
    shown = _render(table, 40)
    assert LONG in shown.replace("settingvalue", "")


def test_headerless_rows_fold_too() -> None:
    table = CliTable(show_header=False)
    table.add_row("key", LONG)
    assert all(column.overflow == "fold" for column in table.columns)
    assert LONG in _render(table, 30)


def test_output_into_a_pipe_is_wide() -> None:
    assert make_console().width >= PIPE_WIDTH  # pytest captures stdout: not a terminal
