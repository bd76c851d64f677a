"""Validity check: the family-wise false-positive rate of stage 3's tests on null data.

Simulates many null crossover studies (no ketamine, naltrexone or interaction effect),
runs the stage's sign-flip inference on each of the four contrasts, and reports the
fraction of studies with at least one FWE-significant voxel (the family-wise error
rate, FWER) for max-T, TFCE, cluster extent and cluster mass, with Wilson 95 %
confidence intervals. A valid test has FWER <= the FWE level (``--fwe-alpha``); with
``n_perm`` random flips and the ``(1 + count) / (n_perm + 1)`` p-value its exact level is
``floor(fwe_alpha (n_perm + 1)) / (n_perm + 1)`` (5.0 % for n_perm = 199, 499, 999).

Level of simulation and why
---------------------------
Each null study is simulated at the level of the stage-2 CBF maps (template grid,
``--resolution`` mm, default 6: a coarse grid), not by running the full imaging pipeline (BIDS
simulation -> quantification -> registration) hundreds of times, which would take
days here. This is sufficient because the sign-flip test's validity depends only on
the null distribution of the subject contrast maps being symmetric about zero
(Winkler et al. 2014): the pipeline treats the pre and during scans of a session
identically, so under the null their difference is symmetric whatever the pipeline
does to each scan. The simulation is deliberately harder than Gaussian noise: per
scan, CBF = grey/white-matter baseline x subject and scan global factors (SD 15 % and
8 %: spatially global, strongly correlated noise) + a smooth subject pattern + smooth
heavy-tailed scan noise (Student t, ``--df`` degrees of freedom, ``--fwhm`` mm FWHM)
(:func:`ketamine_cbf.voxelwise.synthetic.scan_maps`). The contrasts are formed exactly as
in :mod:`ketamine_cbf.voxelwise.contrasts` (during - pre per session; pooled mean;
naltrexone - placebo). The interaction is also tested with the crossover order as a
nuisance covariate (Freedman-Lane, ``interaction+order``), which is approximately
rather than exactly exchangeable. Each study's data and sign flips come from the stream
``(seed, study index)`` (:func:`ketamine_cbf.stattools.rng`).

Usage:  nice -n 10 .venv/bin/python scripts/null_fwer.py [--datasets 1000] [--n-perm 199]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=int, default=1000, help="null studies (>= 200)")
    ap.add_argument("--subjects", type=int, default=26)
    ap.add_argument("--resolution", type=int, default=6, help="template grid (mm)")
    ap.add_argument("--n-perm", type=int, default=199, help="random sign flips per test")
    ap.add_argument("--fwe-alpha", type=float, default=0.05, help="FWE level")
    ap.add_argument("--cluster-p", type=float, default=0.001, help="cluster-forming p")
    ap.add_argument("--fwhm", type=float, default=10.0, help="scan-noise smoothness (mm FWHM)")
    ap.add_argument("--df", type=float, default=5.0, help="Student-t df of the scan noise (0: Gaussian)")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write per-study results to this TSV")
    args = ap.parse_args(argv)
    if args.datasets < 200:
        print("--datasets must be at least 200", file=sys.stderr)
        return 2

    from ketamine_cbf.stattools import rng as seeded_rng
    from ketamine_cbf.voxelwise.connectivity import grid_neighbours
    from ketamine_cbf.voxelwise.permutation import cluster_threshold_t, sign_flip_test
    from ketamine_cbf.voxelwise.signflips import nilearn_sign_flips
    from ketamine_cbf.voxelwise.synthetic import analysis_grid, scan_maps

    affine, brain, gm, wm, mask = analysis_grid(args.resolution, mask_gm_threshold=0.3)
    nb = grid_neighbours(mask)
    n = args.subjects
    order = np.where(np.arange(n) % 2 == 0, 0.5, -0.5)[:, None]  # PN / NP, effect-coded
    tests = {"ket_placebo": None, "ket_naltrexone": None, "ket_pooled": None,
             "interaction": None, "interaction+order": order}
    alpha_lp = -np.log10(args.fwe_alpha)
    print(f"{args.datasets} null studies x {len(tests)} tests; {n} subjects, {int(mask.sum())} GM voxels "
          f"at {args.resolution} mm, {args.n_perm} sign flips, two-sided, TFCE + clusters at "
          f"p < {args.cluster_p}; noise FWHM {args.fwhm} mm, t df {args.df or 'inf'}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    t0 = time.time()
    for d in range(args.datasets):
        rng = seeded_rng(args.seed, d)
        maps = scan_maps(gm, wm, brain, rng, n, noise_sd=8.0, subject_sd=6.0, fwhm_mm=args.fwhm,
                         voxel_mm=float(args.resolution), df=args.df or None)
        kp = np.stack([maps[(s, "placebo", "during")][mask] - maps[(s, "placebo", "pre")][mask]
                       for s in range(n)])
        kn = np.stack([maps[(s, "naltrexone", "during")][mask] - maps[(s, "naltrexone", "pre")][mask]
                       for s in range(n)])
        data = {"ket_placebo": kp, "ket_naltrexone": kn, "ket_pooled": (kp + kn) / 2,
                "interaction": kn - kp, "interaction+order": kn - kp}
        signs = nilearn_sign_flips(n, args.n_perm, random_state=int(rng.integers(1, 2 ** 31 - 2)))
        for name, z in tests.items():
            k = 0 if z is None else z.shape[1]
            thr = cluster_threshold_t(args.cluster_p, n - 1 - k, two_sided=True)
            r = sign_flip_test(data[name], signs, nb, confounds=z, two_sided=True, tfce=True,
                               cluster_threshold=thr, n_threads=args.threads)
            rows.append({"dataset": d, "test": name,
                         **{m: float(r[key].max()) for m, key in
                            (("maxT", "logp_max_t"), ("TFCE", "logp_max_tfce"),
                             ("cluster size", "logp_max_size"), ("cluster mass", "logp_max_mass"))}})
        if (d + 1) % 25 == 0 or d + 1 == args.datasets:
            el = time.time() - t0
            df = pd.DataFrame(rows)
            fw = (df[["maxT", "TFCE", "cluster size", "cluster mass"]] >= alpha_lp - 1e-12).mean()
            print(f"  {d + 1:5d} studies, {el / 60:5.1f} min, load {os.getloadavg()[0]:.2f}; FWER so far: "
                  + ", ".join(f"{m} {v:.3f}" for m, v in fw.items()), flush=True)
    df = pd.DataFrame(rows)
    if args.out:
        from ketamine_cbf.io.provenance import write_tsv

        write_tsv(args.out, df)
    exact = np.floor(args.fwe_alpha * (args.n_perm + 1) + 1e-9) / (args.n_perm + 1)
    print(f"\nFamily-wise error rate (fraction of {args.datasets} null studies with any voxel at FWE "
          f"p <= {args.fwe_alpha}); exact level of the test {exact:.4f}; Wilson 95% CI:")
    methods = ["maxT", "TFCE", "cluster size", "cluster mass"]
    print(f"  {'test':<20}" + "".join(f"{m:>26}" for m in methods))
    summary = []
    for name in tests:
        sub = df[df["test"] == name]
        cells = []
        for m in methods:
            k = int((sub[m] >= alpha_lp - 1e-12).sum())
            lo, hi = wilson(k, len(sub))
            cells.append(f"{k / len(sub):6.3f} [{lo:.3f}, {hi:.3f}]")
            summary.append({"test": name, "method": m, "fwer": k / len(sub), "ci_low": lo, "ci_high": hi})
        print(f"  {name:<20}" + "".join(f"{c:>26}" for c in cells))
    s = pd.DataFrame(summary)
    inside = s[(s["fwer"] >= 0.03) & (s["fwer"] <= 0.07)]
    print(f"\n{len(inside)} of {len(s)} (test, method) FWER estimates lie in [3%, 7%]; "
          f"all four no-covariate contrasts pooled (correlated within a study): "
          + ", ".join(f"{m} {s[(s['method'] == m) & (s['test'] != 'interaction+order')]['fwer'].mean():.3f}"
                      for m in methods))
    print(f"total {(time.time() - t0) / 60:.1f} min; load at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
