"""ketamine_cbf.normalisation.maps: smoothing, global GM CBF, template-grid masks."""

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.normalisation import maps
from ketamine_cbf.reference import templates


def test_smoothing_kernel_has_requested_fwhm():
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    data = np.zeros((41, 41, 41), np.float32)
    data[20, 20, 20] = 1.0
    out = np.asarray(maps.smooth_image(nib.Nifti1Image(data, aff), fwhm=8.0).dataobj, dtype=float)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)
    x = (np.arange(41) - 20) * 2.0
    profile = out.sum(axis=(1, 2))
    sigma = math.sqrt((profile * x**2).sum() / profile.sum())
    assert sigma * math.sqrt(8 * math.log(2)) == pytest.approx(8.0, rel=0.02)


def test_smoothing_matches_nilearn_inside_the_volume():
    from nilearn.image import smooth_img

    rng = np.random.default_rng(0)
    img = nib.Nifti1Image(rng.normal(size=(30, 32, 28)).astype(np.float32), np.diag([3, 3, 3, 1.0]))
    ours = np.asarray(maps.smooth_image(img, 6.0).dataobj)
    ref = np.asarray(smooth_img(img, 6.0).dataobj)
    core = (slice(8, -8),) * 3
    np.testing.assert_allclose(ours[core], ref[core], atol=1e-5)


def test_masked_smoothing_keeps_edge_values():
    """Normalised convolution: a constant inside the mask stays constant up to the edge."""
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    mask = np.zeros((30, 30, 30), bool)
    mask[8:22, 8:22, 8:22] = True
    data = np.where(mask, 50.0, 0.0).astype(np.float32)
    img, m = nib.Nifti1Image(data, aff), nib.Nifti1Image(mask.astype(np.uint8), aff)
    masked = np.asarray(maps.smooth_image(img, 8.0, mask=m).dataobj)
    plain = np.asarray(maps.smooth_image(img, 8.0).dataobj)
    np.testing.assert_allclose(masked[mask], 50.0, rtol=1e-5)
    assert np.all(masked[~mask] == 0)
    assert plain[8, 15, 15] < 40  # plain smoothing darkens the edge


def test_smoothing_rejects_bad_kernels_and_masks():
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    with pytest.raises(UsageError, match="fwhm"):
        maps.smooth_image(img, -1)
    np.testing.assert_array_equal(maps.smooth_image(img, 0).get_fdata(), 1.0)
    with pytest.raises(InputError, match="mask shape"):
        maps.smooth_image(img, 4.0, mask=nib.Nifti1Image(np.ones((4, 4, 5), np.uint8), np.eye(4)))


def test_global_gm_cbf_is_the_grey_matter_mean():
    gm = templates.template_gm(4)
    p = gm.get_fdata()
    cbf = nib.Nifti1Image(np.where(p >= 0.5, 60.0, 20.0).astype(np.float32), gm.affine)
    assert maps.global_gm_cbf(cbf, gm, 0.5) == pytest.approx(60.0)
    # restricted to a field of view: voxels outside it do not count
    c = cbf.get_fdata().copy()
    valid = np.zeros(c.shape, bool)
    valid[:, :, : c.shape[2] // 2] = True
    c[~valid] = 1000.0
    assert maps.global_gm_cbf(nib.Nifti1Image(c, gm.affine), gm, 0.5,
                              valid=nib.Nifti1Image(valid.astype(np.uint8), gm.affine)) == pytest.approx(60.0)


def test_unreadable_cbf_is_an_input_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="bad.nii.gz: CBF cannot be read"):
        maps.global_gm_cbf(bad, templates.template_gm(4))


def test_global_gm_threshold_is_the_parameter_name():
    """One name, one meaning: the GM threshold of the global CBF is global_gm_threshold."""
    import inspect

    gm = templates.template_gm(4)
    cbf = nib.Nifti1Image(np.where(gm.get_fdata() >= 0.9, 60.0, 20.0).astype(np.float32), gm.affine)
    assert "global_gm_threshold" in inspect.signature(maps.global_gm_cbf).parameters
    assert maps.global_gm_cbf(cbf, gm, global_gm_threshold=0.9) == pytest.approx(60.0)
    assert maps.global_gm_cbf(cbf, gm, global_gm_threshold=0.5) < 60.0


def test_template_grid_masks():
    brain, gm = maps.template_grid_masks(4)
    assert brain.get_data_dtype() == np.uint8 and gm.get_data_dtype() == np.float32
    assert brain.shape == gm.shape == templates.template_t1(4).shape
    np.testing.assert_allclose(brain.affine, templates.template_t1(4).affine)
    assert set(np.unique(np.asarray(brain.dataobj))) == {0, 1}


def test_global_cbf_summary_counts_passing_scans_only():
    t = pd.DataFrame({"arm": ["placebo", "placebo", "placebo", "naltrexone"],
                      "timepoint": ["pre", "pre", "during", "pre"],
                      "global_gm_cbf": [50.0, 60.0, 70.0, 40.0],
                      "qc_pass": [True, True, True, False]})
    s = maps.global_cbf_summary(t)
    assert list(s["arm"]) == ["placebo", "placebo"] and list(s["timepoint"]) == ["pre", "during"]
    assert list(s["count"]) == [2, 1] and list(s["mean"]) == [55.0, 70.0]
