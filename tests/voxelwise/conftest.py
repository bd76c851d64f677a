"""Stage-3 fixtures: a small masked grid with smooth data, and a synthetic study run end to end."""

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiMasker
from scipy import ndimage

from ketamine_cbf.io.derivatives import read_cbf_maps, read_contrasts
from ketamine_cbf.study import CONTRASTS
from ketamine_cbf.voxelwise import contrasts, group
from ketamine_cbf.voxelwise.connectivity import grid_neighbours
from ketamine_cbf.voxelwise.synthetic import write_normalisation_folder

SHAPE = (14, 16, 12)


@pytest.fixture(scope="module")
def grid():
    """(mask, affine, fitted NiftiMasker, 6-neighbour table) of a box with a hole."""
    mask = np.zeros(SHAPE, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    mask[5:8, 5:8, 1:4] = False  # a hole
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    masker = NiftiMasker(nib.Nifti1Image(mask.astype(np.uint8), aff)).fit()
    return mask, aff, masker, grid_neighbours(mask)


def _smooth_data(rng, mask, n=14, effect=0.8):
    vols = np.stack([ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.2) for _ in range(n)])
    vols /= vols.std()
    vols[:, 3:7, 8:12, 4:8] += effect  # a weak positive blob: p-values spread over (0, 1)
    vols[:, 9:12, 2:5, 6:9] -= effect  # and a negative one
    return vols[:, mask]


@pytest.fixture(scope="module")
def smooth_data():
    """Builder: ``smooth_data(rng, mask, n=14, effect=0.8)`` -> subjects x in-mask voxels."""
    return _smooth_data


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """A 12-subject synthetic study with planted ACC effects, inferred for every contrast.

    Returns ``(root, contrasts table, analysis mask, {contrast: GroupResult})``.
    """
    root = tmp_path_factory.mktemp("study")
    write_normalisation_folder(root / "normalisation", n_subjects=12, resolution=4, seed=11,
                               effect_amplitude=25.0, interaction_amplitude=0.0, noise_sd=5.0)
    cm = read_cbf_maps(root / "normalisation")
    contrasts.compute_contrasts(cm, root / "voxelwise", global_normalise="proportional")
    table = read_contrasts(root / "voxelwise")
    mask = group.analysis_mask(root / "normalisation", list(table["abspath"]), 0.3)
    results = group.infer_contrasts(table, mask, contrasts=tuple(CONTRASTS), n_perm=300, seed=4)
    return root, table, mask, results


def _random_field(rng, shape=(18, 20, 16), sigma=1.5, scale=6.0, offset=0.3):
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return f / f.std() * scale / 3 + offset


def _random_mask(rng, shape=(18, 20, 16)):
    """An irregular mask touching the grid border (tests edge handling)."""
    m = ndimage.gaussian_filter(rng.standard_normal(shape), 2) > -0.05
    m[:, :, 0] = True
    return m


@pytest.fixture(scope="module")
def random_field():
    """Builder: ``random_field(rng, shape=(18, 20, 16), sigma=1.5, scale=6.0, offset=0.3)``."""
    return _random_field


@pytest.fixture(scope="module")
def random_mask():
    """Builder: ``random_mask(rng, shape=(18, 20, 16))``, an irregular mask touching the border."""
    return _random_mask
