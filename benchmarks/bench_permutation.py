"""Benchmark: ketamine_cbf.voxelwise vs nilearn's non_parametric_inference (sign flipping).

Runs both implementations on the same 26-subject 2 mm data (synthetic ΔCBF maps on the
MNI152 2009a grey-matter mask: ACC blobs + smooth noise, or the subject contrast maps of
a finished stage 3 with --voxelwise-dir), with the same random_state and n_jobs, so the
sign flips are identical, and prints

* the maximum absolute difference of the t, TFCE, cluster and -log10 p maps (nilearn
  computes in the images' dtype: with float32 inputs (--float32, or stage-3 maps) its t
  maps carry float32 rounding, ~1e-7 relative; ours are float64);
* wall-clock times and the speed ratio nilearn / ours with --n-perm permutations
  (default 5000) for max-T, for TFCE, and for TFCE + cluster extent/mass (p < 0.001);
* the numba compile time of the kernels (empty cache) and their load time (cached).

nilearn's TFCE takes ~1.3 s per permutation on this grid, so it is timed on fewer
permutations (--nilearn-perm-tfce) and extrapolated linearly:
T(n) = T(0) + n * (T(k) - T(0)) / k, with T(0) the run without permutations
(masking + observed TFCE); nilearn cannot run n_perm=0, so T(0) is extrapolated back from
T(1) and T(k). The same is done for max-T with --nilearn-perm-maxt and for TFCE +
clusters with --nilearn-perm-cluster (set them equal to --n-perm to time nilearn in full). The machine load (uptime) is
printed before and after: run it nice'd on a quiet machine and repeat.

Usage:  nice -n 5 .venv/bin/python benchmarks/bench_permutation.py [--n-perm 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import nibabel as nib
import numpy as np
import pandas as pd


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def synthetic_inputs(n_subjects: int, resolution: int, seed: int, dtype=np.float64):
    from ketamine_cbf.stattools import rng as seeded_rng
    from ketamine_cbf.voxelwise.synthetic import acc_effect_map, analysis_grid, smooth_fields

    affine, brain, gm, wm, mask = analysis_grid(resolution, mask_gm_threshold=0.3)
    rng = seeded_rng(seed)
    effect = acc_effect_map(affine, mask.shape, 6.0)
    noise = 8.0 * smooth_fields(mask.shape, n_subjects, 8.0, float(resolution), rng)
    imgs = [nib.Nifti1Image(np.where(mask, effect + noise[i], 0).astype(dtype), affine)
            for i in range(n_subjects)]
    return imgs, nib.Nifti1Image(mask.astype(np.uint8), affine)


def stage_inputs(voxelwise_dir: str, contrast: str):
    from ketamine_cbf.io.derivatives import read_contrasts

    table = read_contrasts(voxelwise_dir, contrast)
    import glob

    mask = nib.load(sorted(glob.glob(os.path.join(voxelwise_dir, "*_desc-analysis_mask.nii.gz")))[0])
    imgs = []
    for p in table["abspath"]:  # in memory, so neither implementation is timed reading files
        img = nib.load(p)
        imgs.append(nib.Nifti1Image(np.asarray(img.dataobj), img.affine))
    return imgs, nib.Nifti1Image(np.asarray(mask.dataobj), mask.affine)


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


_WARMUP = """
import time, numpy as np
t0 = time.perf_counter()
from ketamine_cbf.voxelwise.permutation import sign_flip_test
sign_flip_test(np.linspace(-1, 1, 48).reshape(6, 8), np.ones((2, 6)),
               np.full((8, 6), -1, dtype=np.int32), tfce=True, cluster_threshold=1.0)
print(time.perf_counter() - t0)
"""


def compile_seconds(cold: bool) -> float:
    """Import + first call of the numba kernels in a fresh interpreter (cold: empty cache)."""
    import subprocess
    import tempfile

    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            env["NUMBA_CACHE_DIR"] = tmp
        out = subprocess.run([sys.executable, "-c", _WARMUP], env=env, capture_output=True,
                             text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def extrapolate(t1: float, tk: float, k: int, n: int) -> float:
    """Linear model T(n) = T(0) + n c fitted through T(1) and T(k)."""
    c = (tk - t1) / (k - 1)
    return (t1 - c) + n * c


def maxdiff(a, b) -> float:
    a = np.asarray(a.get_fdata() if hasattr(a, "get_fdata") else a, dtype=float)
    b = np.asarray(b.get_fdata() if hasattr(b, "get_fdata") else b, dtype=float)
    return float(np.nanmax(np.abs(a - b)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-perm", type=int, default=5000, help="permutations of the timed runs")
    ap.add_argument("--nilearn-perm-maxt", type=int, default=500,
                    help="permutations nilearn max-T is timed on (extrapolated to --n-perm)")
    ap.add_argument("--nilearn-perm-tfce", type=int, default=50,
                    help="permutations nilearn TFCE is timed on (extrapolated to --n-perm)")
    ap.add_argument("--nilearn-perm-cluster", type=int, default=10,
                    help="permutations nilearn TFCE + cluster inference is timed on")
    ap.add_argument("--subjects", type=int, default=26)
    ap.add_argument("--resolution", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="data seed; random_state of both tests")
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    ap.add_argument("--voxelwise-dir", default=None,
                    help="use a finished stage 3's subject maps (contrasts.tsv) instead of synthetic data")
    ap.add_argument("--contrast", default="ket_pooled")
    ap.add_argument("--float32", action="store_true",
                    help="synthetic maps in float32 (as stage 3 stores them): nilearn then computes "
                         "t in float32 and differs from ours (float64) by float32 rounding")
    args = ap.parse_args(argv)

    import numba
    from nilearn.glm.second_level import non_parametric_inference as nl_npi

    from ketamine_cbf.voxelwise.nilearn_compat import non_parametric_inference as our_npi
    from ketamine_cbf.voxelwise.permutation import sign_flip_test

    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    print(f"load average at start: {load()}  (cores: {os.cpu_count()}, numba threads: {threads}, "
          f"nilearn n_jobs=1)")
    cold = compile_seconds(cold=True)
    warm = compile_seconds(cold=False)
    print(f"numba kernels: compile from scratch {cold:.1f} s (empty cache, first use in an environment); "
          f"load from cache {warm:.1f} s (cache=True); neither is included below")
    sign_flip_test(np.linspace(-1, 1, 48).reshape(6, 8), np.ones((2, 6)),
                   np.full((8, 6), -1, dtype=np.int32), tfce=True, cluster_threshold=1.0)

    if args.voxelwise_dir:
        imgs, mask = stage_inputs(args.voxelwise_dir, args.contrast)
        source = f"stage-3 maps of {args.contrast} in {args.voxelwise_dir}"
    else:
        dtype = np.float32 if args.float32 else np.float64
        imgs, mask = synthetic_inputs(args.subjects, args.resolution, args.seed, dtype)
        source = (f"synthetic ΔCBF maps (ACC blobs + 8 mm-FWHM noise), {args.resolution} mm, "
                  f"{np.dtype(dtype).name}")
    n_vox = int(np.asarray(mask.dataobj).astype(bool).sum())
    design = pd.DataFrame({"intercept": np.ones(len(imgs))})
    print(f"data: {len(imgs)} subjects x {n_vox} voxels; {source}")
    common = dict(design_matrix=design, mask=mask, two_sided_test=True, random_state=args.seed, n_jobs=1)
    ours_kw = dict(common, n_threads=threads)

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timed(nl_npi, imgs, n_perm=1, **common)  # warm-up (imports, caches) before timing
        # ---------------- max-T
        k = args.nilearn_perm_maxt
        nl1, t_nl1 = timed(nl_npi, imgs, n_perm=1, **common)
        nlk, t_nlk = timed(nl_npi, imgs, n_perm=k, **common)
        ok, _ = timed(our_npi, imgs, n_perm=k, **ours_kw)
        d_logp_maxt = maxdiff(nlk, ok)
        _, t_ours = timed(our_npi, imgs, n_perm=args.n_perm, **ours_kw)
        t_nl = t_nlk if k == args.n_perm else extrapolate(t_nl1, t_nlk, k, args.n_perm)
        rows.append(("max-T", args.n_perm, t_ours, t_nl, k, d_logp_maxt))

        # ---------------- TFCE
        k = args.nilearn_perm_tfce
        nl1, t_nl1 = timed(nl_npi, imgs, n_perm=1, tfce=True, **common)
        nlk, t_nlk = timed(nl_npi, imgs, n_perm=k, tfce=True, **common)
        ok, _ = timed(our_npi, imgs, n_perm=k, tfce=True, **ours_kw)
        diffs = {key: maxdiff(nlk[key], ok[key]) for key in nlk}
        tfce_max = float(np.abs(nlk["tfce"].get_fdata()).max())
        _, t_ours = timed(our_npi, imgs, n_perm=args.n_perm, tfce=True, **ours_kw)
        t_nl = t_nlk if k == args.n_perm else extrapolate(t_nl1, t_nlk, k, args.n_perm)
        rows.append(("TFCE", args.n_perm, t_ours, t_nl, k, diffs["logp_max_tfce"]))

        # ---------------- TFCE + cluster extent/mass at p < 0.001
        k = args.nilearn_perm_cluster
        tf = dict(tfce=True, threshold=0.001)
        nl1, t_nl1 = timed(nl_npi, imgs, n_perm=1, **tf, **common)
        nlk, t_nlk = timed(nl_npi, imgs, n_perm=k, **tf, **common)
        ok, _ = timed(our_npi, imgs, n_perm=k, **tf, **ours_kw)
        diffs_c = {key: maxdiff(nlk[key], ok[key]) for key in ("size", "logp_max_size", "mass",
                                                              "logp_max_mass")}
        _, t_ours = timed(our_npi, imgs, n_perm=args.n_perm, **tf, **ours_kw)
        t_nl = t_nlk if k == args.n_perm else extrapolate(t_nl1, t_nlk, k, args.n_perm)
        rows.append(("TFCE + cluster", args.n_perm, t_ours, t_nl, k, diffs_c["logp_max_mass"]))

    print("\nEquality with nilearn (same data, same random_state -> same sign flips):")
    print(f"  max-T run ({args.nilearn_perm_maxt} perms): max |Δ logp_max_t| = {d_logp_maxt:.3g}")
    for key, v in diffs.items():
        rel = f" (max |tfce| = {tfce_max:.4g})" if key == "tfce" else ""
        print(f"  TFCE run ({args.nilearn_perm_tfce} perms): max |Δ {key}| = {v:.3g}{rel}")
    for key, v in diffs_c.items():
        print(f"  TFCE + cluster run ({args.nilearn_perm_cluster} perms): max |Δ {key}| = {v:.3g}")
    print("\nTimes (wall clock, s):")
    print(f"  {'method':<16}{'n_perm':>7}{'ours':>10}{'nilearn':>12}  {'ratio':>7}   nilearn timed on")
    for name, n, t_o, t_n, k, _ in rows:
        how = "all (measured)" if k == n else f"{k} perms, extrapolated linearly to {n}"
        print(f"  {name:<16}{n:>7}{t_o:>10.1f}{t_n:>12.1f}  {t_n / t_o:>6.1f}x   {how}")
    goals = {"max-T": 5.0, "TFCE": 20.0, "TFCE + cluster": 20.0}
    print("\nGoals: max-T >= 5x, TFCE >= 20x faster than nilearn: " + ", ".join(
        f"{name} {'met' if t_n / t_o >= goals[name] else 'NOT met'}" for name, _, t_o, t_n, _, _ in rows))
    print(f"load average at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
