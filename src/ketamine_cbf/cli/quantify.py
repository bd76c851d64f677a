"""``ketamine-cbf quantify BIDS_DIR OUT_DIR``: native-space CBF maps and QC from BIDS-ASL.

Every constant of the quantification is an option with a cited default (see
:mod:`ketamine_cbf.quantification.quantify`); every QC threshold too (:mod:`ketamine_cbf.quantification.qc`).
On any input error the command prints one line naming the file and field, exits 1
and adds nothing to OUT_DIR.
"""

from __future__ import annotations

import argparse
import sys

from ketamine_cbf.errors import UsageError
from ketamine_cbf.quantification.qc import QCParams
from ketamine_cbf.quantification.quantify import QuantParams


def _pair(text):
    try:
        lo, hi = (float(x) for x in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (got {text!r})") from None
    return (lo, hi)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``quantify`` arguments to ``parser``."""
    q, c = QuantParams(), QCParams()
    parser.add_argument("bids_dir", metavar="BIDS_DIR", help="BIDS dataset with perf/*_asl.nii.gz")
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="output folder (derivatives: *_cbf.nii.gz + .json, *_aslref, "
                             "*_desc-brain_mask, qc.tsv)")
    parser.add_argument("--participant-label", metavar="L", nargs="+", default=None,
                        help="process only these participants (with or without 'sub-')")
    g = parser.add_argument_group("quantification constants (defaults: Alsop et al. 2015)")
    g.add_argument("--partition-coefficient", type=float, default=q.partition_coefficient,
                   help="brain-blood partition coefficient lambda, ml/g (Herscovitch & Raichle 1985)")
    g.add_argument("--t1-blood", type=float, default=None,
                   help="T1 of arterial blood, s (default: 1.65 at 3 T, Lu et al. 2004; 1.35 at 1.5 T)")
    g.add_argument("--t1-tissue", type=float, default=q.t1_tissue,
                   help="tissue T1 for the M0 incomplete-recovery correction, s")
    g.add_argument("--labeling-efficiency", type=float, default=None,
                   help="labelling efficiency before background suppression (default: sidecar "
                        "LabelingEfficiency, else 0.85 PCASL / 0.68 CASL / 0.98 PASL)")
    g.add_argument("--bs-pulse-efficiency", type=float, default=q.bs_pulse_efficiency,
                   help="efficiency factor per background-suppression pulse (Garcia et al. 2005)")
    g.add_argument("--m0-scale", type=float, default=q.m0_scale,
                   help="multiply M0 by this factor (vendor scaling between M0 and ASL volumes)")
    g.add_argument("--m0-tr", type=float, default=None,
                   help="M0 repetition time, s, overriding RepetitionTimePreparation (default: "
                        "sidecar; a non-physical value falls back to RepetitionTime with a warning)")
    g.add_argument("--m0-fwhm", type=float, default=q.m0_fwhm,
                   help="Gaussian smoothing of M0 before division, mm FWHM (0 = none)")
    g.add_argument("--att-bounds", type=_pair, default=q.att_bounds, metavar="LOW,HIGH",
                   help="arterial transit time search interval of the multi-delay fit, s")
    g.add_argument("--plausible-cbf", type=_pair, default=q.plausible_cbf, metavar="LOW,HIGH",
                   help="a median brain CBF outside this range (ml/100 g/min) is an error")
    g.add_argument("--no-plausibility-check", action="store_true",
                   help="only warn (in the sidecar) when the median brain CBF is implausible")
    h = parser.add_argument_group("quality control (pragmatic screening thresholds)")
    h.add_argument("--tissue-threshold", type=float, default=c.tissue_threshold,
                   help="tissue probability defining GM / WM voxels")
    h.add_argument("--gm-cbf-range", type=_pair, default=c.gm_cbf_range, metavar="LOW,HIGH",
                   help="accepted mean GM CBF, ml/100 g/min")
    h.add_argument("--min-gm-wm-ratio", type=float, default=c.min_gm_wm_ratio,
                   help="minimum GM/WM CBF ratio")
    h.add_argument("--max-neg-gm-pct", type=float, default=c.max_neg_gm_pct,
                   help="maximum percentage of negative GM voxels")
    h.add_argument("--max-spatial-cov", type=float, default=c.max_spatial_cov,
                   help="maximum spatial coefficient of variation in GM (Mutsaerts et al. 2017)")
    h.add_argument("--min-qei", type=float, default=c.min_qei,
                   help="minimum quality evaluation index (Dolui et al. 2024)")
    h.add_argument("--min-mask-dice", type=float, default=c.min_mask_dice,
                   help="minimum Dice of the brain mask with the registered template mask")
    h.add_argument("--seed", type=int, default=c.seed, help="random seed of the template registration")
    h.add_argument("--cache-dir", default=None,
                   help="persistent cache of per-scan template registrations (default: a temp folder)")
    parser.add_argument("--arm-column", default="pretreatment",
                        help="column of sub-*_sessions.tsv naming the pre-treatment arm")
    parser.add_argument("--timepoint-column", default="timepoint",
                        help="column of sub-*_ses-*_scans.tsv naming the time point")
    parser.add_argument("--quiet", action="store_true", help="print no progress messages")


def params_from_args(args) -> tuple[QuantParams, QCParams]:
    """Build the parameter objects from parsed arguments (raises UsageError on bad values)."""
    q = QuantParams(partition_coefficient=args.partition_coefficient, t1_blood=args.t1_blood,
                    t1_tissue=args.t1_tissue, labeling_efficiency=args.labeling_efficiency,
                    bs_pulse_efficiency=args.bs_pulse_efficiency, m0_scale=args.m0_scale,
                    m0_tr=args.m0_tr, m0_fwhm=args.m0_fwhm, att_bounds=tuple(args.att_bounds),
                    plausible_cbf=tuple(args.plausible_cbf),
                    check_plausible=not args.no_plausibility_check)
    c = QCParams(tissue_threshold=args.tissue_threshold, gm_cbf_range=tuple(args.gm_cbf_range),
                 min_gm_wm_ratio=args.min_gm_wm_ratio, max_neg_gm_pct=args.max_neg_gm_pct,
                 max_spatial_cov=args.max_spatial_cov, min_qei=args.min_qei,
                 min_mask_dice=args.min_mask_dice, seed=args.seed)
    return q, c


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
                               log=log)
    n_pass = int((table["qc_pass"] == "true").sum())
    log(f"{len(table)} scan(s) quantified, {n_pass} passed QC; results in {args.out_dir}")
    return 0
