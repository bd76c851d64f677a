"""Benchmark of stage 02's registration: CPU time and accuracy vs a named ANTs baseline.

Baseline: ``ants.registration(type_of_transform="antsRegistrationSyNQuick[a]")`` of the
skull-stripped aslref to the 2 mm MNI152 2009a T1 template, i.e. what a user of antspyx
would run by default for a rigid + affine registration (the antsRegistrationSyNQuick.sh
recipe: MI, 25 % sampling, shrink 8x4x2x1). Ours:
:func:`ketamine_cbf.normalisation.registration.register_to_template` with the package
defaults (3 mm fixed grid, rigid at 50 % then affine at 10 % sampling). Both run
single-threaded in this process on the same scans; the accuracy is the mean displacement
over brain voxels against the simulated ground truth.

Optionally (``--stage``) also times the whole stage (registration, resampling, smoothing,
QC, writing) on all scans with ``--n-jobs`` workers and no cache, and prints the machine
load, since the wall time depends on what else runs.

Usage::

    .venv/bin/python benchmarks/bench_normalise.py --bids-dir datasets/simulated --n-scans 12
    .venv/bin/python benchmarks/bench_normalise.py --bids-dir datasets/simulated --stage --n-jobs 2

The BIDS dataset needs stage 01's outputs (``derivatives/ketamine-cbf/quantification``, or
``--cbf-dir``) and, for the accuracy, a simulation's ``derivatives/groundtruth``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"  # before ANTs loads


def _baseline(aslref, mask, seed):
    import ants
    import numpy as np

    from ketamine_cbf import imaging
    from ketamine_cbf.normalisation import registration
    from ketamine_cbf.reference import templates

    mov = registration.skull_strip(imaging.load_image(aslref), imaging.load_image(mask))
    fixed = imaging.to_ants(templates.template_t1(2))
    with tempfile.TemporaryDirectory() as tmp:
        r = ants.registration(fixed, imaging.to_ants(mov), "antsRegistrationSyNQuick[a]",
                              random_seed=seed, outprefix=str(Path(tmp) / "b_"))
        fwd = [f for f in r["fwdtransforms"] if f.endswith(".mat")][0]
        return registration.Registration(affine=np.linalg.inv(registration.read_ants_affine(fwd)))


def main(argv=None) -> int:
    import numpy as np
    import pandas as pd

    from ketamine_cbf.io.groundtruth import read_true_transform, true_transform_path
    from ketamine_cbf.normalisation import inputs, pipeline, qc, registration

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bids-dir", default="datasets/simulated")
    p.add_argument("--cbf-dir", default=None, help="stage-01 folder (default: <bids>/derivatives/"
                                                    "ketamine-cbf/quantification)")
    p.add_argument("--n-scans", type=int, default=12, help="scans for the method comparison")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stage", action="store_true", help="also time the whole stage on all scans")
    p.add_argument("--n-jobs", type=int, default=2)
    args = p.parse_args(argv)
    bids = Path(args.bids_dir)
    cbf_dir = Path(args.cbf_dir or bids / "derivatives" / "ketamine-cbf" / "quantification")
    found = inputs.find_inputs(cbf_dir)
    found = found[found["mode"] == "register"]
    step = max(1, len(found) // args.n_scans)
    sel = found.iloc[::step].head(args.n_scans)
    rows = []
    for r in sel.itertuples():
        truth = true_transform_path(bids, r.participant_id, r.session_id, r.run)
        a_true = read_true_transform(truth) if truth else None
        for name, fn in (("ours", lambda: registration.register_to_template(
                              r.aslref, r.mask, ants_seed=args.seed)),
                         ("baseline", lambda: _baseline(r.aslref, r.mask, args.seed))):
            t0 = time.process_time()
            reg = fn()
            cpu = time.process_time() - t0
            err = qc.registration_error(r.mask, reg, a_true) if a_true is not None else (np.nan, np.nan)
            rows.append({"scan": f"{r.participant_id}_{r.session_id}_run-{r.run}", "method": name,
                         "cpu_s": cpu, "error_mean_mm": err[0], "error_max_mm": err[1]})
        print(f"{rows[-2]['scan']}: ours {rows[-2]['cpu_s']:.2f} s / {rows[-2]['error_mean_mm']:.2f} mm, "
              f"baseline {rows[-1]['cpu_s']:.2f} s / {rows[-1]['error_mean_mm']:.2f} mm", flush=True)
    df = pd.DataFrame(rows)
    s = df.groupby("method").agg(cpu_s=("cpu_s", "median"), error_mean_mm=("error_mean_mm", "median"),
                                 worst_mean_error_mm=("error_mean_mm", "max"),
                                 worst_max_error_mm=("error_max_mm", "max"))
    print(s.to_string(float_format="%.2f"))
    ratio = s.loc["ours", "cpu_s"] / s.loc["baseline", "cpu_s"]
    print(f"CPU time per registration, ours / antsRegistrationSyNQuick[a] baseline: {ratio:.2f} "
          f"({len(sel)} scans, single thread)")
    if args.stage:
        load0 = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            res = pipeline.normalise_dataset(cbf_dir, Path(tmp) / "normalisation", bids_dir=bids,
                                      n_jobs=args.n_jobs, seed=args.seed, progress=True)
            wall = time.time() - t0
        cpu = np.array(res.timing["cpu_seconds_per_scan"])
        qc = res.qc
        print(f"whole stage: {len(qc)} scans in {wall:.0f} s wall with {args.n_jobs} worker(s) "
              f"(load average before {load0[0]:.1f}, after {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs); CPU per scan median {np.median(cpu):.2f} s, total "
              f"{cpu.sum():.0f} s; ideal wall on an idle machine ~ {cpu.sum() / args.n_jobs:.0f} s")
        if qc["error_mean_mm"].notna().any():
            print(f"error vs truth: median {qc['error_mean_mm'].median():.2f} mm, worst mean "
                  f"{qc['error_mean_mm'].max():.2f} mm, worst max {qc['error_max_mm'].max():.2f} mm; "
                  f"Dice min {qc['dice'].min():.3f}; flagged {int((~qc['registration_qc_pass']).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
