"""``ketamine-cbf run``: execute the stage notebooks in order with a study configuration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ketamine_cbf.cli._options import add_book_dir, add_quiet, show_progress
from ketamine_cbf.errors import UsageError

__all__ = ["HELP", "add_arguments", "run"]

HELP = "execute the stage notebooks in order (papermill) with a YAML config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``run`` subcommand's arguments to ``parser``."""
    parser.description = (
        "Execute the stage notebooks (notebooks/NN_name.ipynb) in order through papermill. "
        "Parameters come from the YAML config, overridden by -p. A stage whose inputs, "
        "parameters and code are unchanged since its last run is skipped. Executed notebooks "
        "go to book/stages/ (what the book renders); results go to the derivatives directory. "
        "A failing stage stops the run and leaves earlier results intact.")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML study configuration (default: config/default.yml of the project)")
    parser.add_argument("--stage", metavar="NAME", action="append", default=None,
                        help="run only this stage (full name 03_voxelwise, number 03 or short name "
                             "voxelwise); repeatable (default: all stages)")
    parser.add_argument(
        "-p", "--parameter", metavar=("KEY", "VALUE"), nargs=2, action="append", default=[],
        help="override a parameter: a top-level key (seed, bids_dir, derivatives_dir), "
             "STAGE.PARAM for one stage (03_voxelwise.n_perm, or 03.n_perm), '*.PARAM' for every "
             "stage declaring it, or a bare PARAM that exactly one stage declares (a name several "
             "stages declare is an error naming them); VALUE is parsed as YAML; repeatable")
    parser.add_argument("--force", action="store_true", help="rerun selected stages even if unchanged")
    parser.add_argument("--no-simulate", action="store_true",
                        help="do not generate the config's simulated dataset when bids_dir is missing")
    add_book_dir(parser, "folder with the book sources (_config.yml, _toc.yml, book/); executed "
                         "notebooks are written to DIR/book/stages (default: the project root)")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``ketamine-cbf run``; return the exit status."""
    from ketamine_cbf.config import load_config
    from ketamine_cbf.runner import check_parameters, run as run_stages

    config = load_config(args.config, overrides=[tuple(kv) for kv in args.parameter])
    check_parameters(config)  # before simulating: a typo must not cost a simulation
    if not config.bids_dir.exists():
        if config.simulate is None or args.no_simulate:
            raise UsageError(f"dataset path does not exist: {config.bids_dir}")
        from ketamine_cbf.simulate import simulate_dataset

        print(f"[simulate] {config.bids_dir} is missing: generating the simulated dataset "
              f"(seed {config.seed}) ...", file=sys.stderr)
        simulate_dataset(config.bids_dir, seed=config.seed, **config.simulate)
    summaries = run_stages(config, stage_names=args.stage, force=args.force,
                           log=lambda m: print(m, file=sys.stderr),
                           book_root=Path(args.book_dir) if args.book_dir else None,
                           progress=show_progress(args))
    ran = sum(s["status"] == "ran" for s in summaries)
    print(f"{ran} stage(s) ran, {len(summaries) - ran} skipped; results in {config.derivatives_dir}",
          file=sys.stderr)
    return 0
