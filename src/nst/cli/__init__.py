"""The command line: `nst COMMAND ...` (app.py builds the parser and runs the commands)."""

from nst.cli.app import main

__all__ = ["main"]
