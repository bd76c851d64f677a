"""Benchmark: stage-5 null-model inference, ours vs running brainsmash / BrainSpace / neuromaps naively.

Workload (the stage's default): 2 group ΔCBF maps (contrasts) x 6 PET maps x
``--n-nulls`` (10,000) null maps x 2 null models (variogram, Moran) x 2 correlation
methods (Spearman, Pearson), on the default atlas (Schaefer 200 + 14 Harvard-Oxford
structures) on the 2 mm grid. The parcellated maps are synthetic (smooth random maps),
which does not change the cost.

* **ours**: :func:`ketamine_cbf.receptors.nulls.make_nulls` (vectorised brainsmash-equivalent
  variogram surrogates, BrainSpace Moran randomisation with a cached float64 eigenbasis)
  and :func:`ketamine_cbf.receptors.correlations.correlation_table` (all nulls x all PET maps in
  one matrix product). Repeated ``--repeats`` times; the median is reported.
* **naive baseline**: what a user of the packages would write: ``brainsmash.mapgen.Base
  (x, D)(n, 50)`` per contrast (neuromaps' ``burt2020`` settings for parcellated data),
  ``brainspace.null_models.MoranRandomization(...).fit(W).randomize(x)`` per contrast, then
  ``neuromaps.stats.compare_images(x, pet, metric, nulls=...)`` per contrast, PET map, model
  and method. brainsmash alone takes minutes for 10,000 nulls, so the baseline runs on
  ``--baseline-nulls`` (default 1,000) nulls and is extrapolated linearly to ``--n-nulls``
  (its cost is linear in the number of nulls: a per-surrogate Python loop).

Both use the same brainsmash parameters (brainsmash's defaults), so the surrogates are the
same random process (ours equals brainsmash draw for draw for the same seed and batch
size: tests/receptors/test_nulls.py).

The machine load (``uptime``) is printed before and after: run nice'd, repeat, and report
with the load.

Usage:  nice -n 5 .venv/bin/python benchmarks/bench_receptors.py [--n-nulls 10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import warnings

import numpy as np
import pandas as pd


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"loadavg {os.getloadavg()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-nulls", type=int, default=10000)
    ap.add_argument("--baseline-nulls", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=2)
    args = ap.parse_args()

    from ketamine_cbf.receptors import correlations, false_positives, maps, nulls, parcellate
    from ketamine_cbf.reference import templates

    print("load before:", uptime())
    mask = templates.template_brain_mask(args.resolution)
    atlas = parcellate.build_atlas(mask, mask_img=mask)
    pet = maps.parcellate_pet(maps.load_pet_maps(mask), atlas)
    D = parcellate.distance_matrix(atlas).to_numpy()
    sim, _ = false_positives.random_smooth_maps(atlas, 2, [2.0, 2.5], seed=1)
    group = pd.DataFrame(sim.T, index=pet.index, columns=["ket_pooled", "interaction"])
    print(f"parcels: {len(atlas)}; workload: {group.shape[1]} contrasts x {pet.shape[1]} PET maps x "
          f"{args.n_nulls} nulls x 2 models x 2 methods")

    times = []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        nl = nulls.make_nulls(group, D, ("variogram", "moran"), args.n_nulls, seed=rep, key="bench")
        t1 = time.perf_counter()
        table = correlations.correlation_table(group, pet, nl, methods=correlations.METHODS)
        t2 = time.perf_counter()
        times.append((t2 - t0, t1 - t0, t2 - t1))
        print(f"  ours, run {rep + 1}: total {t2 - t0:.1f} s (nulls {t1 - t0:.1f} s, correlations "
              f"{t2 - t1:.1f} s)")
    ours = float(np.median([t[0] for t in times]))

    # naive baseline on fewer nulls, extrapolated
    from brainsmash.mapgen.base import Base
    from brainspace.null_models.moran import MoranRandomization
    from neuromaps.stats import compare_images

    k = args.baseline_nulls
    t0 = time.perf_counter()
    base_nulls = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in group.columns:
            x = group[c].to_numpy()
            base_nulls[(c, "variogram")] = Base(x, D, seed=0)(k, 50)
            W = D.copy()
            np.fill_diagonal(W, 1)
            W = 1 / W
            np.fill_diagonal(W, 0)
            base_nulls[(c, "moran")] = MoranRandomization(n_rep=k, tol=1e-6, random_state=0).fit(W).randomize(x)
        t_gen = time.perf_counter() - t0
        t1 = time.perf_counter()
        for (c, m), v in base_nulls.items():
            for rec in pet.columns:
                for metric in ("spearmanr", "pearsonr"):
                    compare_images(group[c].to_numpy(), pet[rec].to_numpy(), metric=metric,
                                   nulls=np.asarray(v).T, ignore_zero=False)
        t_cmp = time.perf_counter() - t1
    scale = args.n_nulls / k
    baseline = (t_gen + t_cmp) * scale
    print(f"  naive baseline on {k} nulls: generation {t_gen:.1f} s, compare_images {t_cmp:.1f} s; "
          f"extrapolated to {args.n_nulls} nulls: {baseline:.0f} s")
    print(f"ours (median of {args.repeats}): {ours:.1f} s for {args.n_nulls} nulls; "
          f"naive brainsmash/BrainSpace/neuromaps: {baseline:.0f} s (extrapolated); "
          f"speed-up x{baseline / ours:.1f}")
    print(f"rows in the correlation table: {len(table)}")
    print("load after:", uptime())


if __name__ == "__main__":
    main()
