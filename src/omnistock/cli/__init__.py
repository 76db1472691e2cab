"""The ``omnistock`` command: commands.py parses and dispatches, admin.py runs the data commands
against the stores, demo.py loads the demo network."""

from omnistock.cli.commands import main

__all__ = ["main"]
