"""The ``ketamine-cbf`` command: one subcommand per module of this package.

``simulate`` (:mod:`~ketamine_cbf.cli.simulate`), ``quantify``
(:mod:`~ketamine_cbf.cli.quantify`), ``normalise`` (:mod:`~ketamine_cbf.cli.normalise`),
``run`` (:mod:`~ketamine_cbf.cli.run`) and ``book`` (:mod:`~ketamine_cbf.cli.book`). Each
provides ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; options several
subcommands share are defined once in :mod:`~ketamine_cbf.cli._options`. Subcommand
modules are thin: they parse, call the stage package, and print.

Errors are printed as one line (``ketamine-cbf: error: ...``), never a traceback: usage
errors exit with status 2, input errors with 1. Set ``KETAMINE_CBF_DEBUG=1`` to see the
traceback. An ImportError inside a subcommand is a bug or a broken installation and is
shown as such (with its traceback), never hidden.
"""

from __future__ import annotations

import argparse
import os
import sys

from ketamine_cbf import __version__
from ketamine_cbf.cli import book, normalise, quantify, run, simulate
from ketamine_cbf.cli._options import Parser
from ketamine_cbf.errors import KetamineCBFError

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: subcommand name -> its module (``HELP``, ``add_arguments``, ``run``)
SUBCOMMANDS = {"simulate": simulate, "quantify": quantify, "normalise": normalise,
               "run": run, "book": book}


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``ketamine-cbf`` with every subcommand."""
    parser = Parser(
        prog="ketamine-cbf",
        description="ASL CBF analysis of the ketamine x naltrexone crossover study: simulate, "
                    "quantify, normalise, run every stage notebook, build the book.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ketamine-cbf``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KetamineCBFError as e:
        if os.environ.get("KETAMINE_CBF_DEBUG"):
            raise
        print(f"ketamine-cbf: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ketamine-cbf: interrupted", file=sys.stderr)
        return 130
