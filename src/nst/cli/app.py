"""The `nst` command line: parse (cli/options.py), run a command (cli/commands.py,
cli/studies.py, cli/serve.py), report.

Errors become exit codes in exactly one place, `main`: 2 for bad input (one
line, no traceback), 1 for a run that failed, 130 for Ctrl-C, 143 for SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nst.cli.commands import HANDLERS
from nst.cli.options import build_parser, config_from_args, parse_arguments, threads_from
from nst.cli.stop import sigterm_as_interrupt, stopped_status
from nst.cli.studies import COMMANDS as STUDY_COMMANDS
from nst.cli.studies import run_study_command
from nst.errors import NstError, NstRuntimeError, allocation_failure

# Nothing above imports torch: --help and every refusal that needs no network
# answer at once. The job layer (and torch) load inside the command handlers.

__all__ = ["build_parser", "config_from_args", "main"]


def _run(args: argparse.Namespace) -> int:
    threads = threads_from(args)
    if threads is None:
        return _dispatch(args)
    import torch  # noqa: PLC0415  (a thread count is for torch: it loads now)

    from nst.core.device import set_threads  # noqa: PLC0415

    before = torch.get_num_threads()
    set_threads(threads)  # before any work: torch's thread pools start with the first
    try:
        return _dispatch(args)
    finally:
        torch.set_num_threads(before)  # main may run again in this process (tests, the API)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in STUDY_COMMANDS:
        return run_study_command(args, config_from_args)
    return HANDLERS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line. Errors become exit codes here and only here: 2 for bad
    input (one line, no traceback), 1 for a run that failed, 130 for Ctrl-C and
    143 for SIGTERM (both keep finished work and release the folder's lock)."""
    try:
        args = parse_arguments(build_parser(), argv)
    except SystemExit as exit_request:  # --help, --version, usage errors (one line, status 2)
        return int(exit_request.code or 0)
    try:
        with sigterm_as_interrupt():
            return _run(args)
    except NstError as error:
        print(f"nst: error: {error}", file=sys.stderr)
        return 2
    except NstRuntimeError as error:
        print(f"nst: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        print("\nnst: interrupted; no output written", file=sys.stderr)
        return stopped_status(stop)
    except (RuntimeError, MemoryError) as error:
        message = allocation_failure(error)
        if message is None:
            raise
        print(f"nst: {message}", file=sys.stderr)
        return 1
