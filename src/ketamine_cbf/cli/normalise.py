"""``ketamine-cbf normalise CBF_DIR OUT_DIR``: CBF maps to MNI, smoothing, global CBF, QC.

Registers each scan's aslref (stage-01 output) to nilearn's MNI152 2009a template with
ANTs, resamples the CBF map onto the template grid, smooths it and measures the mean
grey-matter CBF; writes ``cbf_maps.tsv`` (what the group stages read) and
``registration_qc.tsv`` (see :mod:`ketamine_cbf.normalisation.pipeline`). Already-normalised
maps (``space-MNI152...``, e.g. ASLPrep) are resampled only. On any input error the command
prints one line naming the file and field, exits 1 and writes nothing to OUT_DIR. Defaults
are those of the stage notebook's parameters cell (``notebooks/02_normalisation.ipynb``).
"""

from __future__ import annotations

import argparse
import sys

from ketamine_cbf.cli._options import (
    add_cache_dir,
    add_design_columns,
    add_participant_label,
    add_quiet,
    add_seed,
    show_progress,
)
from ketamine_cbf.errors import UsageError

#: One-line help of the subcommand.
HELP = "register native CBF maps to MNI, resample, smooth, global CBF, QC"


def _qc_pair(text):
    key, sep, value = str(text).partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (got {text!r})")
    try:
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: value must be a number (got {value!r})") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``normalise`` arguments to ``parser``."""
    from ketamine_cbf.normalisation.maps import DEFAULT_FWHM
    from ketamine_cbf.normalisation.qc import DEFAULT_QC_THRESHOLDS
    from ketamine_cbf.normalisation.registration import DEFAULT_REGISTRATION, TRANSFORMS

    parser.add_argument("cbf_dir", metavar="CBF_DIR",
                        help="stage-01 quantification folder (native *_cbf, *_aslref, "
                             "*_desc-brain_mask), or a folder of CBF maps already in an MNI "
                             "space (space-MNI152..., e.g. ASLPrep derivatives)")
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="output folder (normalisation/): *_space-MNI152NLin2009aSym_res-<r>_"
                             "[desc-smooth_]cbf.nii.gz, transforms, masks, cbf_maps.tsv, "
                             "registration_qc.tsv")
    parser.add_argument("--bids-dir", metavar="BIDS_DIR", default=None,
                        help="raw BIDS dataset: design (arm, time point), T1w images, and the "
                             "simulated ground-truth transforms for the error QC; without it the design "
                             "comes from CBF_DIR/qc.tsv, and there is no T1w and no error QC")
    add_participant_label(parser)
    g = parser.add_argument_group("normalisation")
    g.add_argument("--resolution", type=int, default=2, metavar="MM",
                   help="voxel size of the output MNI152NLin2009aSym grid, mm (1-8)")
    g.add_argument("--transform", choices=TRANSFORMS, default="affine",
                   help="registration model: rigid (6 dof), affine (rigid then 12 dof) or syn "
                        "(affine then symmetric diffeomorphic normalisation)")
    g.add_argument("--use-t1w", action="store_true",
                   help="register through the subject's T1w (aslref -> T1w rigid, T1w -> MNI with "
                        "--transform); needs --bids-dir")
    g.add_argument("--registration-resolution", type=int, metavar="MM",
                   default=DEFAULT_REGISTRATION["registration_resolution"],
                   help="grid of the template used as the fixed image during registration, mm")
    g.add_argument("--fwhm", type=float, default=DEFAULT_FWHM, metavar="MM",
                   help="Gaussian smoothing kernel of the desc-smooth maps, mm FWHM (0 = none)")
    g.add_argument("--global-gm-threshold", type=float, default=0.5,
                   help="template grey-matter probability threshold of the global (mean GM) CBF")
    g.add_argument("--cbf-desc", default=None, metavar="DESC",
                   help="use input CBF files with this desc- entity (e.g. 'mean' for ASLPrep); "
                        "without it, files without desc")
    h = parser.add_argument_group("quality control")
    h.add_argument("--qc", type=_qc_pair, action="append", default=[], metavar="NAME=VALUE",
                   help="override a registration QC threshold; repeatable. Defaults: "
                        + ", ".join(f"{k}={v:g}" for k, v in DEFAULT_QC_THRESHOLDS.items()))
    r = parser.add_argument_group("execution")
    r.add_argument("--n-jobs", type=int, default=0, metavar="N",
                   help="scans registered in parallel (processes, each single-threaded: results "
                        "do not depend on N); 0 = all CPUs")
    add_seed(r, "master seed (the ANTs sampling seed derives from it)")
    add_cache_dir(r, "persistent per-scan cache (keyed by input hashes, parameters and code): a "
                     "rerun skips finished scans; without it, nothing is cached")
    add_design_columns(r)
    add_quiet(r)


def run(args) -> int:
    """Run ``ketamine-cbf normalise``; return the exit status (0 on success)."""
    from pathlib import Path

    from ketamine_cbf.normalisation.pipeline import normalise_dataset

    cbf_dir = Path(args.cbf_dir)
    if not cbf_dir.is_dir():
        raise UsageError(f"CBF_DIR does not exist: {cbf_dir}")
    if args.bids_dir is not None and not Path(args.bids_dir).is_dir():
        raise UsageError(f"--bids-dir does not exist: {args.bids_dir}")
    if args.n_jobs < 0:
        raise UsageError(f"--n-jobs must be >= 0 (got {args.n_jobs})")
    design = None
    if args.bids_dir is not None:
        from ketamine_cbf.io.design import read_design

        design = read_design(args.bids_dir, arm_column=args.arm_column,
                             timepoint_column=args.timepoint_column,
                             participant_label=args.participant_label)
    result = normalise_dataset(
        cbf_dir, args.out_dir, bids_dir=args.bids_dir, design=design,
        resolution=args.resolution, transform=args.transform, use_t1w=args.use_t1w,
        fwhm=args.fwhm, global_gm_threshold=args.global_gm_threshold, cache_dir=args.cache_dir,
        n_jobs=args.n_jobs, seed=args.seed, qc_thresholds=dict(args.qc),
        registration={"registration_resolution": args.registration_resolution},
        participant_label=args.participant_label, cbf_desc=args.cbf_desc,
        progress=show_progress(args))
    if not args.quiet:
        qc = result.qc
        n_fail = int((~qc["registration_qc_pass"]).sum())
        print(f"{len(qc)} scan(s) normalised ({result.timing['n_cached']} from cache) in "
              f"{result.timing['wall_seconds']:.1f} s; {n_fail} flagged by the registration QC; "
              f"results in {args.out_dir}", file=sys.stderr)
        for r in qc[~qc["registration_qc_pass"]].itertuples():
            print(f"  flagged: {r.participant_id} {r.session_id} run-{r.run}: {r.flags}",
                  file=sys.stderr)
    return 0
