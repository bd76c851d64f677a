"""Options shared by several subcommands, defined once (one name, one meaning, one default).

Each ``add_*`` function adds one option to a parser; subcommand modules call them instead
of repeating the ``add_argument`` lines.
"""

from __future__ import annotations

import argparse
import sys

from ketamine_cbf.config import DEFAULT_SEED

__all__ = ["Parser", "pair", "add_participant_label", "add_seed", "add_cache_dir",
           "add_design_columns", "add_quiet", "add_book_dir", "show_progress"]


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line with exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def pair(text):
    """Parse ``LOW,HIGH`` into a tuple of two floats (argparse ``type``)."""
    try:
        lo, hi = (float(x) for x in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (got {text!r})") from None
    return (lo, hi)


def add_participant_label(parser) -> None:
    """``--participant-label L [L ...]``: restrict to these participants (BIDS-App convention)."""
    parser.add_argument("--participant-label", metavar="L", nargs="+", default=None,
                        help="process only these participants (with or without 'sub-'; default: all)")


def add_seed(parser, what: str = "master seed: every random stream derives from it") -> None:
    """``--seed N``: the master seed (default: the study configuration's)."""
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=what)


def add_cache_dir(parser, what: str) -> None:
    """``--cache-dir DIR``: a persistent per-item cache (keyed by inputs, parameters and code)."""
    parser.add_argument("--cache-dir", default=None, metavar="DIR", help=what)


def add_design_columns(parser) -> None:
    """``--arm-column`` and ``--timepoint-column``: where the design's factors are read."""
    parser.add_argument("--arm-column", default="pretreatment",
                        help="column of sub-*_sessions.tsv naming the pre-treatment arm")
    parser.add_argument("--timepoint-column", default="timepoint",
                        help="column of sub-*_ses-*_scans.tsv naming the time point")


def add_quiet(parser) -> None:
    """``--quiet``: no progress messages or bars."""
    parser.add_argument("--quiet", action="store_true",
                        help="print no progress (progress is also off when stderr is not a terminal)")


def add_book_dir(parser, what: str) -> None:
    """``--book-dir DIR``: the folder with the book sources (_config.yml, _toc.yml, book/)."""
    parser.add_argument("--book-dir", metavar="DIR", default=None, help=what)


def show_progress(args) -> bool:
    """Return True when progress bars should be drawn: not ``--quiet`` and stderr is a terminal."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()
