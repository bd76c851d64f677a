"""``ketamine-cbf book``: build the website from the executed notebooks (never re-executes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ketamine_cbf.cli._options import add_book_dir

__all__ = ["HELP", "add_arguments", "run"]

HELP = "build the website (_build/html) from the executed notebooks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``book`` subcommand's arguments to ``parser``."""
    parser.description = ("Build the Jupyter Book (HTML, warnings are errors) from the prose pages "
                          "and the notebooks executed by `ketamine-cbf run`. Never re-executes.")
    parser.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    add_book_dir(parser, "folder with the book sources; the site goes to DIR/_build/html "
                         "(default: the project root)")


def run(args: argparse.Namespace) -> int:
    """Run ``ketamine-cbf book``; return the exit status."""
    from ketamine_cbf.runner import build_book

    build_book(root=Path(args.book_dir) if args.book_dir else None,
               strict=not args.no_strict, log=lambda m: print(m, file=sys.stderr))
    return 0
