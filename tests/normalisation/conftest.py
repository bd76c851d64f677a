"""Fixtures of the stage-2 tests: synthetic scans with known poses, and the tiny dataset normalised.

Synthetic scans are built from the 2 mm template tissue maps pulled through a known scanner ->
MNI affine (the ground truth of the registration). The tiny dataset (participant 01, 4 scans)
is quantified (stage 1) and normalised once per test package run.
"""

import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ketamine_cbf.reference import templates

NATIVE_ZOOMS = (3.5, 3.5, 4.0)
NATIVE_SHAPE = (64, 64, 40)
RES = 4


def _pose(rot_deg, trans, scale=1.0):
    """Scanner -> MNI affine: rotation (xyz Euler, degrees), isotropic scale, translation."""
    a = np.eye(4)
    a[:3, :3] = Rotation.from_euler("xyz", rot_deg, degrees=True).as_matrix() * scale
    a[:3, 3] = trans
    return a


def _native_affine(shape=NATIVE_SHAPE, zooms=NATIVE_ZOOMS):
    """LAS grid centred on the scanner origin (as a dcm2niix axial acquisition)."""
    a = np.diag([-zooms[0], zooms[1], zooms[2], 1.0])
    a[:3, 3] = -a[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return a


def _synth_scan(a_true, seed=0, shape=NATIVE_SHAPE, zooms=NATIVE_ZOOMS):
    """M0-like (proton density: CSF > GM > WM), CBF-like and brain-mask images on a native grid.

    Built from the 2 mm template tissue maps, pulled through ``a_true`` (scanner -> MNI),
    blurred (PSF) and with noise; ``a_true`` is the ground truth of the registration.
    """
    rng = np.random.default_rng(seed)
    gm = templates.template_gm(2).get_fdata()
    wm = templates.template_wm(2).get_fdata()
    csf = templates.template_csf(2).get_fdata()
    brain = templates.template_brain_mask(2).get_fdata()
    tpl_aff = templates.template_gm(2).affine
    nat = _native_affine(shape, zooms)
    m = np.linalg.inv(tpl_aff) @ a_true @ nat
    out = {}
    for name, vol in (("m0", 0.85 * gm + 0.7 * wm + 1.0 * csf), ("cbf", 60 * gm + 20 * wm),
                      ("mask", brain)):
        out[name] = ndimage.affine_transform(vol, m[:3, :3], m[:3, 3], output_shape=shape, order=1)
    out["m0"] = ndimage.gaussian_filter(out["m0"], 0.6) * 1000 + rng.normal(0, 20, shape)
    out["m0"] *= out["mask"] > 0.05  # what a brain-extracted M0 looks like at the edge
    out["cbf"] = ndimage.gaussian_filter(out["cbf"], 0.6) + rng.normal(0, 25, shape)
    return {
        "m0": nib.Nifti1Image(out["m0"].astype(np.float32), nat),
        "cbf": nib.Nifti1Image(out["cbf"].astype(np.float32), nat),
        "mask": nib.Nifti1Image((out["mask"] > 0.5).astype(np.uint8), nat),
    }


@pytest.fixture(scope="session")
def geometry():
    """Builders: ``geometry.pose(rot_deg, trans, scale)``, ``geometry.native_affine(shape, zooms)``."""
    return SimpleNamespace(pose=_pose, native_affine=_native_affine)


@pytest.fixture(scope="package")
def tilted_scan():
    """A scan tilted, shifted and scaled 6 % with respect to the template, and its true pose."""
    a = _pose([8, -6, 12], [5, -25, 18], 1.06)
    return a, _synth_scan(a, seed=1)


# ---------------------------------------------------------------- the tiny dataset

@pytest.fixture(scope="package")
def quantified(tiny_dataset, tmp_path_factory):
    """Stage-01 outputs of participant 01 of the tiny dataset (read-only)."""
    from ketamine_cbf.quantification.pipeline import run_quantification

    out = tmp_path_factory.mktemp("norm") / "quantification"
    run_quantification(tiny_dataset, out, participant_label=["01"])
    return out


@pytest.fixture(scope="package")
def normalised(quantified, tiny_dataset, tmp_path_factory):
    """Stage 2 on ``quantified`` (2 workers, a cache): (root folder, NormalisationResult)."""
    from ketamine_cbf.normalisation.pipeline import normalise_dataset

    root = tmp_path_factory.mktemp("norm-out")
    res = normalise_dataset(quantified, root / "a", bids_dir=tiny_dataset, resolution=RES,
                            n_jobs=2, cache_dir=root / "cache", seed=5, progress=False)
    return root, res


@pytest.fixture
def session_copy(quantified):
    """Function: copy of the stage-01 folder with one session only (2 scans: keeps tests short)."""
    def copy(dest: Path, keep: str = "ses-1") -> Path:
        shutil.copytree(quantified, dest)
        for path in sorted(dest.glob("sub-01/ses-*/perf/*")):
            if keep not in path.parts:
                path.unlink()
        return dest

    return copy
