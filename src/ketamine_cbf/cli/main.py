"""The ``ketamine-cbf`` command line.

Subcommands::

    ketamine-cbf simulate OUT_DIR [--subjects N] [--seed S] [--null] ...
    ketamine-cbf quantify BIDS_DIR OUT_DIR [--participant-label L ...]
    ketamine-cbf normalise CBF_DIR OUT_DIR ...
    ketamine-cbf run [--config FILE] [--stage NAME ...] [-p KEY VALUE ...] [--force]
    ketamine-cbf book

Exit status: 0 success, 1 bad input data or a failed stage, 2 bad invocation.
Errors are printed as one line (``ketamine-cbf: error: ...``), never a traceback;
set ``KETAMINE_CBF_DEBUG=1`` to see the traceback.

Each data subcommand lives in its own module, which provides ``add_arguments(parser)``
and ``run(args) -> int``: ``ketamine_cbf.cli.simulate``, ``ketamine_cbf.cli.quantify``,
``ketamine_cbf.cli.normalise``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from ketamine_cbf import __version__
from ketamine_cbf.errors import KetamineCBFError, UsageError

#: subcommand -> (module providing add_arguments/run, one-line help)
DATA_COMMANDS = {
    "simulate": ("ketamine_cbf.cli.simulate",
                 "write a simulated BIDS-ASL crossover dataset with planted ground truth"),
    "quantify": ("ketamine_cbf.cli.quantify",
                 "quantify CBF (ml/100 g/min) from BIDS-ASL scans, with QC"),
    "normalise": ("ketamine_cbf.cli.normalise",
                  "register native CBF maps to MNI, resample, smooth, global CBF, QC"),
}


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line with exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_run(sub):
    p = sub.add_parser(
        "run", help="execute the stage notebooks in order (papermill) with a YAML config",
        description=(
            "Execute the stage notebooks (notebooks/NN_name.ipynb) in order through papermill. "
            "Parameters come from the YAML config, overridden by -p. A stage whose inputs, "
            "parameters and code are unchanged since its last run is skipped. Executed notebooks "
            "go to book/stages/ (what the book renders); results go to the derivatives directory. "
            "A failing stage stops the run and leaves earlier results intact."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML study configuration (default: config/default.yml of the project)")
    p.add_argument("--stage", metavar="NAME", action="append", default=None,
                   help="run only this stage (full name 03_voxelwise, number 03 or short name "
                        "voxelwise); repeatable (default: all stages)")
    p.add_argument("-p", "--parameter", metavar=("KEY", "VALUE"), nargs=2, action="append",
                   default=[], help="override a parameter: a top-level key (seed, bids_dir, "
                   "derivatives_dir), STAGE.PARAM, or PARAM for every stage declaring it; "
                   "VALUE is parsed as YAML; repeatable")
    p.add_argument("--force", action="store_true", help="rerun selected stages even if unchanged")
    p.add_argument("--no-simulate", action="store_true",
                   help="do not generate the config's simulated dataset when bids_dir is missing")
    p.add_argument("--book-dir", metavar="DIR", default=None,
                   help="folder with the book sources (_config.yml, _toc.yml, book/); executed "
                        "notebooks are written to DIR/book/stages (default: the project root)")


def _add_book(sub):
    p = sub.add_parser(
        "book", help="build the website (_build/html) from the executed notebooks",
        description="Build the Jupyter Book (HTML, warnings are errors) from the prose pages "
                    "and the notebooks executed by `ketamine-cbf run`. Never re-executes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    p.add_argument("--book-dir", metavar="DIR", default=None,
                   help="folder with the book sources; the site goes to DIR/_build/html "
                        "(default: the project root)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ketamine-cbf",
        description="ASL CBF analysis of the ketamine x naltrexone crossover study: simulate, "
                    "quantify, normalise, run every stage notebook, build the book.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_) in DATA_COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        try:
            mod = importlib.import_module(module)
        except ImportError:
            p.set_defaults(_unavailable=module)
            continue
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    _add_run(sub)
    _add_book(sub)
    return parser


def _cmd_run(args) -> int:
    from ketamine_cbf.config import load_config
    from ketamine_cbf.runner import run

    config = load_config(args.config, overrides=[tuple(kv) for kv in args.parameter])
    if not config.bids_dir.exists():
        if config.simulate is None or args.no_simulate:
            raise UsageError(f"dataset path does not exist: {config.bids_dir}")
        from ketamine_cbf.simulate import simulate_dataset

        print(f"[simulate] {config.bids_dir} is missing: generating the simulated dataset "
              f"(seed {config.seed}) ...", file=sys.stderr)
        simulate_dataset(config.bids_dir, seed=config.seed, **config.simulate)
    summaries = run(config, stage_names=args.stage, force=args.force,
                    log=lambda m: print(m, file=sys.stderr),
                    book_root=Path(args.book_dir) if args.book_dir else None)
    ran = sum(s["status"] == "ran" for s in summaries)
    print(f"{ran} stage(s) ran, {len(summaries) - ran} skipped; results in {config.derivatives_dir}",
          file=sys.stderr)
    return 0


def _cmd_book(args) -> int:
    from ketamine_cbf.runner import build_book

    build_book(root=Path(args.book_dir) if args.book_dir else None,
               strict=not args.no_strict, log=lambda m: print(m, file=sys.stderr))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ketamine-cbf``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if getattr(args, "_unavailable", None):
            raise UsageError(f"'{args.command}' is not available in this installation "
                             f"({args._unavailable} could not be imported)")
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "book":
            return _cmd_book(args)
        return int(args._run(args) or 0)
    except KetamineCBFError as e:
        if os.environ.get("KETAMINE_CBF_DEBUG"):
            raise
        print(f"ketamine-cbf: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ketamine-cbf: interrupted", file=sys.stderr)
        return 130

