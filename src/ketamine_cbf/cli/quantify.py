"""``ketamine-cbf quantify BIDS_DIR OUT_DIR``: native-space CBF maps and QC from BIDS-ASL.

Every constant of the quantification is an option with a cited default (see
:mod:`ketamine_cbf.quantification.constants` and :mod:`ketamine_cbf.quantification.models`);
every QC threshold too (:mod:`ketamine_cbf.quantification.qc`). The defaults are those of
:class:`~ketamine_cbf.quantification.constants.QuantParams` and
:class:`~ketamine_cbf.quantification.qc.QCParams`, which equal the parameters cell of
``notebooks/01_quantification.ipynb``. On any input error the command prints one line
naming the file and field, exits 1 and adds nothing to OUT_DIR.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from ketamine_cbf.cli._options import (
    add_cache_dir,
    add_design_columns,
    add_participant_label,
    add_quiet,
    add_seed,
    pair,
    show_progress,
)
from ketamine_cbf.errors import UsageError
from ketamine_cbf.quantification.constants import QuantParams
from ketamine_cbf.quantification.qc import QCParams

__all__ = ["HELP", "add_arguments", "params_from_args", "run"]

#: One-line help of the subcommand.
HELP = "quantify CBF (ml/100 g/min) from BIDS-ASL scans, with QC"


#: Options of the quantification constants: (option, help); type and default from QuantParams.
_CONSTANTS = (
    ("partition-coefficient", "brain-blood partition coefficient lambda, ml/g (Herscovitch & Raichle 1985)"),
    ("t1-blood", "T1 of arterial blood, s (default: 1.65 at 3 T, Lu et al. 2004; 1.35 at 1.5 T)"),
    ("t1-tissue", "tissue T1 for the M0 incomplete-recovery correction, s"),
    ("labeling-efficiency", "labelling efficiency before background suppression (default: sidecar "
                            "LabelingEfficiency, else 0.85 PCASL / 0.68 CASL / 0.98 PASL)"),
    ("bs-pulse-efficiency", "efficiency factor per background-suppression pulse (Garcia et al. 2005)"),
    ("m0-scale", "multiply M0 by this factor (vendor scaling between M0 and ASL volumes)"),
    ("m0-tr", "M0 repetition time, s, overriding RepetitionTimePreparation (default: sidecar; a "
              "non-physical value falls back to RepetitionTime with a warning)"),
    ("m0-fwhm", "Gaussian smoothing of M0 before division, mm FWHM (0 = none)"),
    ("att-bounds", "arterial transit time search interval of the multi-delay fit, s"),
    ("plausible-cbf", "a median brain CBF outside this range (ml/100 g/min) is an error"),
)
#: Options of the QC thresholds: (option, help); type and default from QCParams.
_QC = (
    ("tissue-threshold", "tissue probability defining GM / WM voxels"),
    ("gm-cbf-range", "accepted mean GM CBF, ml/100 g/min"),
    ("min-gm-wm-ratio", "minimum GM/WM CBF ratio"),
    ("max-neg-gm-pct", "maximum percentage of negative GM voxels"),
    ("max-spatial-cov", "maximum spatial coefficient of variation in GM (Mutsaerts et al. 2017)"),
    ("min-qei", "minimum quality evaluation index (Dolui et al. 2024)"),
    ("min-mask-dice", "minimum Dice of the brain mask with the registered template mask"),
)


def _add_options(group, options, defaults) -> None:
    """One option per (name, help): a LOW,HIGH pair where the default is a pair, else a float."""
    for name, text in options:
        default = getattr(defaults, name.replace("-", "_"))
        if isinstance(default, tuple):
            group.add_argument(f"--{name}", type=pair, default=default, metavar="LOW,HIGH", help=text)
        else:
            group.add_argument(f"--{name}", type=float, default=default, help=text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``quantify`` arguments to ``parser``."""
    parser.add_argument("bids_dir", metavar="BIDS_DIR", help="BIDS dataset with perf/*_asl.nii.gz")
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="output folder (derivatives: *_cbf.nii.gz + .json, *_aslref, "
                             "*_desc-brain_mask, qc.tsv)")
    add_participant_label(parser)
    g = parser.add_argument_group("quantification constants (defaults: Alsop et al. 2015)")
    _add_options(g, _CONSTANTS, QuantParams())
    g.add_argument("--no-plausibility-check", action="store_true",
                   help="only warn (in the sidecar) when the median brain CBF is implausible")
    h = parser.add_argument_group("quality control (pragmatic screening thresholds)")
    _add_options(h, _QC, QCParams())
    add_seed(h, "master seed (the template registration's sampling seed derives from it)")
    add_cache_dir(h, "persistent cache of per-scan template registrations (default: a temp folder)")
    add_design_columns(parser)
    add_quiet(parser)


def _from_args(cls, args, **extra):
    """``cls(**extra, field=args.field ...)`` for every dataclass field the parser has."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values, **extra)


def params_from_args(args) -> tuple[QuantParams, QCParams]:
    """Build the parameter objects from parsed arguments (raises UsageError on bad values)."""
    return (_from_args(QuantParams, args, check_plausible=not args.no_plausibility_check),
            _from_args(QCParams, args))


def run(args) -> int:
    """Run ``ketamine-cbf quantify``; return the exit status (0 on success)."""
    from pathlib import Path

    from ketamine_cbf.quantification.pipeline import run_quantification

    bids = Path(args.bids_dir)
    if not bids.is_dir():
        raise UsageError(f"BIDS_DIR does not exist: {bids}")
    q, c = params_from_args(args)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    table = run_quantification(bids, args.out_dir, participant_label=args.participant_label,
                               params=q, qc_params=c, cache_dir=args.cache_dir,
                               arm_column=args.arm_column, timepoint_column=args.timepoint_column,
                               log=log, progress=show_progress(args))
    n_pass = int((table["qc_pass"] == "true").sum())
    log(f"{len(table)} scan(s) quantified, {n_pass} passed QC; results in {args.out_dir}")
    return 0
