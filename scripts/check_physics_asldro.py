#!/usr/bin/env python3
"""Compare ``ketamine_cbf.simulate.physics.gkm_pcasl`` with ASLDRO's general kinetic model.

ASLDRO (the ASL Digital Reference Object, PyPI ``asldro``) implements the Buxton et al.
(1998) general kinetic model for (p)CASL in ``asldro.filters.gkm_filter.GkmFilter``; it was
written by others, so it is an independent check of our formula. ASLDRO 2.2.0 (the newest
on PyPI) declares exact pins (numpy==1.19.0, nibabel==3.1.1, nilearn==0.6.2,
jsonschema==3.2.0) that conflict with this project's (numpy 2.4.6, nibabel 5.4.2), and
numpy 1.19 does not build on Python 3.11, so it cannot live in the project's venv. Its GKM
filter itself runs on current numpy, so this script runs in a throwaway venv where ASLDRO
is installed without its pins::

    python3.11 -m venv /tmp/asldro-venv
    /tmp/asldro-venv/bin/pip install --no-deps asldro==2.2.0
    /tmp/asldro-venv/bin/pip install numpy==2.4.6 nibabel==5.4.2 jsonschema
    /tmp/asldro-venv/bin/python scripts/check_physics_asldro.py

``physics.py`` is loaded from its file (it needs only numpy), so the project and its
dependencies need not be installed there. The script prints the voxel table, the largest
relative difference, and ASLDRO's 3 T ground-truth constants next to ours; it exits 1 if
the relative difference exceeds 1e-9 anywhere.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-9


def _load_physics():
    spec = importlib.util.spec_from_file_location(
        "physics", ROOT / "src" / "ketamine_cbf" / "simulate" / "physics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _asldro_gkm(cbf, att, t1_tissue, m0, t1_blood, alpha, pld, tau, lam):
    from asldro.containers.image import NumpyImageContainer
    from asldro.filters.gkm_filter import GkmFilter

    def img(a):
        return NumpyImageContainer(image=np.asarray(a, dtype=np.float64).reshape(-1, 1, 1))

    f = GkmFilter()
    f.add_inputs({
        "perfusion_rate": img(cbf), "transit_time": img(att), "t1_tissue": img(t1_tissue),
        "m0": float(m0), "label_type": "pcasl", "label_duration": float(tau),
        "signal_time": float(tau + pld), "label_efficiency": float(alpha),
        "lambda_blood_brain": float(lam), "t1_arterial_blood": float(t1_blood),
    })
    f.run()
    return f.outputs["delta_m"].image.reshape(-1)


def compare() -> float:
    phys = _load_physics()
    cbf = np.array([5.0, 20.0, 60.0, 120.0])
    att = np.array([0.5, 1.2, 1.9, 2.6, 3.4, 4.0])  # before, during and after the bolus
    t1t = np.array([phys.T1_WM, phys.T1_GM, 1.65])
    grid = np.array(list(itertools.product(cbf, att, t1t)))
    worst = 0.0
    print(f"{'lam':>5} {'T1b':>6} {'pld':>4} {'tau':>4} {'CBF':>6} {'ATT':>5} {'T1t':>5} "
          f"{'ours':>12} {'asldro':>12} {'rel.diff':>9}")
    for lam, t1b, pld, tau, alpha in [(0.9, 1.65, 2.0, 1.5, 0.85),
                                      (phys.LAMBDA_GM, phys.blood_t1(0.42), 1.8, 1.8, 0.72),
                                      (phys.LAMBDA_WM, phys.blood_t1(0.36), 1.5, 1.0, 1.0)]:
        m0 = 100.0
        theirs = _asldro_gkm(grid[:, 0], grid[:, 1], grid[:, 2], m0, t1b, alpha, pld, tau, lam)
        ours = phys.gkm_pcasl(grid[:, 0], m0 / lam, grid[:, 1], grid[:, 2], t1b, alpha, pld,
                              tau, lam=lam)
        scale = np.maximum(np.abs(theirs), 1e-300)
        rel = np.where((ours == 0) & (theirs == 0), 0.0, np.abs(ours - theirs) / scale)
        worst = max(worst, float(rel.max()))
        for row, o, t, r in list(zip(grid, ours, theirs, rel))[::7]:
            print(f"{lam:5.2f} {t1b:6.4f} {pld:4.1f} {tau:4.1f} {row[0]:6.1f} {row[1]:5.2f} "
                  f"{row[2]:5.2f} {o:12.6e} {t:12.6e} {r:9.1e}")
        print(f"  -> {len(grid)} voxels, {int(np.sum(theirs == 0))} with no label yet, "
              f"max relative difference {rel.max():.2e}")
    return worst


def asldro_constants() -> None:
    import asldro
    import nibabel as nib

    data = Path(asldro.__file__).parent / "data"
    meta = json.loads((data / "hrgt_icbm_2009a_nls_3t.json").read_text())
    vol = np.asanyarray(nib.load(data / "hrgt_icbm_2009a_nls_3t.nii.gz").dataobj)
    q = meta["quantities"]
    seg = vol[..., 0, q.index("seg_label")]
    phys = _load_physics()
    ours = {"grey_matter": (phys.T1_GM, 1.2), "white_matter": (phys.T1_WM, 1.6),
            "csf": (phys.T1_CSF, None)}
    print("\nASLDRO 3 T ground truth (hrgt_icbm_2009a_nls_3t) vs physics.py:")
    for tissue, label in meta["segmentation"].items():
        m = seg == label
        t1 = np.unique(vol[..., 0, q.index("t1")][m])
        tt = np.unique(vol[..., 0, q.index("transit_time")][m])
        cbf = np.unique(vol[..., 0, q.index("perfusion_rate")][m])
        print(f"  {tissue:13s} T1 {t1} s (ours {ours[tissue][0]}), transit {tt} s "
              f"(ours ~{ours[tissue][1]}), CBF {cbf}")
    print(f"  parameters: {meta['parameters']} (ours: blood T1 = 1/(0.52 Hct + 0.38) s, "
          f"{phys.blood_t1(0.42):.4f} s at Hct 0.42; lambda GM {phys.LAMBDA_GM}, "
          f"WM {phys.LAMBDA_WM})")


def main() -> int:
    try:
        import asldro  # noqa: F401
    except ImportError:
        print(__doc__)
        return 2
    worst = compare()
    asldro_constants()
    print(f"\nmax relative difference over all voxels: {worst:.2e} (tolerance {TOL:g})")
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    sys.exit(main())
