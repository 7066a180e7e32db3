"""``python -m twingap`` runs the CLI."""

from twingap.cli import entry

entry()
