"""``python -m nettrace`` runs the CLI."""

from nettrace.cli.main import run

run()
