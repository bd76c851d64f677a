"""``ketamine-cbf simulate OUT_DIR [options]``: write the simulated BIDS-ASL dataset.

Every option of :data:`ketamine_cbf.simulate.params.OPTIONS` is a command-line option
(``--ketamine-pgacc 12``, ``--voxel-size 4 4 5``, ``--ketamine-receptor MOR=1.5``); the
help text shows each default. Invalid values exit with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import sys

from ketamine_cbf.errors import UsageError
from ketamine_cbf.cli._options import add_seed
from ketamine_cbf.simulate.params import OPTIONS
from ketamine_cbf.study import RECEPTORS

_RECEPTOR_FLAGS = {"ketamine_receptors": "--ketamine-receptor",
                   "interaction_receptors": "--interaction-receptor"}


#: One-line help of the subcommand.
HELP = "write a simulated BIDS-ASL crossover dataset with planted ground truth"

def _fmt_default(opt) -> str:
    d = opt.default
    if isinstance(d, bool):
        return "off"
    if isinstance(d, tuple):
        return " ".join(f"{v:g}" for v in d)
    if isinstance(d, dict):
        return ", ".join(f"{k}={v:g}" for k, v in d.items()) or "none"
    return f"{d:g}" if isinstance(d, float) else str(d)


def _receptor_pair(text: str) -> tuple[str, float]:
    if text.strip().lower() == "none":
        return "none", 0.0
    name, sep, amp = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=AMP (NAME one of {', '.join(RECEPTORS)}), "
                                         f"got {text!r}")
    try:
        return name.strip(), float(amp)
    except ValueError:
        raise argparse.ArgumentTypeError(f"amplitude of {name!r} is not a number: {amp!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` subcommand's arguments to ``parser``."""
    # every help text states its own default (argparse's automatic one would print None)
    parser.formatter_class = argparse.HelpFormatter
    parser.description = (
        "Write a simulated BIDS-ASL dataset of the ketamine x naltrexone crossover trial "
        "(3D pCASL; --preset ge: GE-style deltaM + M0, the study; --preset siemens-motion: "
        "label/control series with head motion) with the planted ground truth in "
        "OUT_DIR/derivatives/groundtruth. The same seed and options give a byte-identical "
        "dataset.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="dataset folder to create")
    add_seed(parser, "random seed (default: the study configurations' master seed, 20261126)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT_DIR if it exists and is not empty (default: refuse)")
    parser.add_argument("--n-jobs", dest="n_jobs", type=int, default=None, metavar="N",
                        help="participants simulated in parallel (default: all CPUs); the "
                             "dataset is the same for any N")
    groups = {}
    for opt in OPTIONS:
        group = groups.get(opt.group)
        if group is None:
            group = groups[opt.group] = parser.add_argument_group(f"{opt.group} options")
        helptext = f"{opt.help} (default: {_fmt_default(opt)})".replace("%", "%%")
        dest = opt.name
        if opt.kind == "bool":
            group.add_argument(f"--{dest.replace('_', '-')}", dest=dest, action="store_const",
                               const=True, default=None, help=helptext)
        elif opt.kind == "receptors":
            group.add_argument(_RECEPTOR_FLAGS[dest], dest=dest, metavar="NAME=AMP",
                               type=_receptor_pair, action="append", default=None,
                               help=helptext + "; repeatable; NAME=0 removes a default; "
                                               "use 'none' to plant no receptor component")
        elif opt.kind == "floats3":
            group.add_argument(f"--{dest.replace('_', '-')}", dest=dest, metavar=("X", "Y", "Z"),
                               nargs=3, type=float, default=None, help=helptext)
        else:
            kw = {"type": {"int": int, "float": float, "str": str}[opt.kind],
                  "metavar": {"int": "N", "float": "X", "str": "NAME"}[opt.kind]}
            if opt.choices:
                kw["choices"] = opt.choices
                kw["metavar"] = "{" + ",".join(opt.choices) + "}"
            group.add_argument(f"--{dest.replace('_', '-')}", dest=dest, default=None,
                               help=helptext, **kw)


def options_from_args(args: argparse.Namespace) -> dict:
    """Return the simulation options given on the command line (others keep defaults)."""
    out = {}
    for opt in OPTIONS:
        value = getattr(args, opt.name, None)
        if value is None:
            continue
        if opt.kind == "receptors":
            amps = dict(opt.default)
            for name, amp in value:
                if name.lower() == "none":
                    amps = {}
                    continue
                if name not in RECEPTORS:
                    raise UsageError(f"simulate: {_RECEPTOR_FLAGS[opt.name]}: unknown receptor map "
                                     f"{name!r}; choose from {', '.join(RECEPTORS)}")
                amps[name] = amp
            value = {k: v for k, v in amps.items() if v != 0}
        out[opt.name] = value
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``ketamine-cbf simulate``; return the exit status (errors raise UsageError)."""
    from ketamine_cbf.simulate.dataset import simulate_dataset

    if args.seed < 0:
        raise UsageError(f"simulate: --seed must be >= 0 (got {args.seed})")
    options = options_from_args(args)
    path = simulate_dataset(args.out_dir, seed=args.seed, overwrite=args.overwrite,
                            n_jobs=args.n_jobs, **options)
    print(f"simulated dataset written to {path} (ground truth in "
          f"{path / 'derivatives' / 'groundtruth'})", file=sys.stderr)
    return 0
