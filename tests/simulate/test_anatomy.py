"""Each participant's own anatomy: the template deformed by a smooth random warp."""

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from ketamine_cbf.io.groundtruth import TrueMapping, read_displacement
from ketamine_cbf.simulate import anatomy, truth
from ketamine_cbf.simulate.params import DEFAULTS
from ketamine_cbf.stattools import rng

#: The simulation's anatomy options at their defaults (the one place they live: params).
DEFAULT = {k: DEFAULTS[k] for k in ("brain_size_sd", "warp_rms", "warp_fwhm", "ventricle_sd",
                                    "cortical_thickness_sd")}

ZERO = dict(brain_size_sd=0.0, warp_rms=0.0, warp_fwhm=30.0, ventricle_sd=0.0,
            cortical_thickness_sd=0.0)


@pytest.fixture(scope="module")
def anat4():
    return truth.load_anatomy(4)


@pytest.fixture(scope="module")
def defaults4(anat4):
    return [anatomy.draw_subject_anatomy(anat4, rng(7, "anatomy", i), **DEFAULT) for i in range(10)]


def _only(**kw):
    return {**ZERO, **kw}


def _first(anat, test, **kw):
    """The first draw (seeds 0, 1, ...) whose record satisfies ``test``."""
    for i in range(50):
        sa = anatomy.draw_subject_anatomy(anat, rng(3, "pick", i), **kw)
        if test(sa.record):
            return sa
    raise AssertionError("no draw satisfied the condition")


def test_zero_sds_give_the_identity(anat4):
    sa = anatomy.draw_subject_anatomy(anat4, rng(1, "zero"), **ZERO)
    assert sa.displacement.shape == anat4.shape + (3,) and sa.displacement.dtype == np.float32
    assert not sa.displacement.any()
    for name in ("gm", "wm", "csf"):
        np.testing.assert_array_equal(getattr(sa, name), getattr(anat4, name))
    np.testing.assert_array_equal(sa.to_subject(anat4.t1), anat4.t1.astype(np.float32))
    assert sa.record["brain_dice"] == 1.0 and sa.record["jacobian_min"] == pytest.approx(1.0)


def test_defaults_deform_the_brain_realistically(anat4, defaults4):
    dice = np.array([sa.record["brain_dice"] for sa in defaults4])
    assert 0.8 < np.median(dice) < 0.975
    for sa in defaults4:
        rec = sa.record
        json.dumps(rec)
        assert rec["smooth_rms_mm"] == pytest.approx(DEFAULT["warp_rms"], rel=1e-4)
        assert 0.9 * DEFAULT["warp_rms"] < rec["rms_displacement_mm"] < 1.7 * DEFAULT["warp_rms"]
        assert rec["max_displacement_mm"] < 20.0
        assert rec["jacobian_min"] > 0.1 and rec["jacobian_p1"] > rec["jacobian_min"]
        tissue = sa.gm + sa.wm + sa.csf
        assert tissue.max() <= 1.0 + 1e-5 and min(sa.gm.min(), sa.wm.min()) >= 0
    jac = anatomy.jacobian_determinant(defaults4[0].displacement, 4.0)[anat4.brain]
    assert float(jac.min()) == pytest.approx(defaults4[0].record["jacobian_min"], abs=1e-5)


def test_acceptance_median_brain_dice_below_095(defaults4):
    assert np.median([sa.record["brain_dice"] for sa in defaults4]) < 0.95


def test_defaults_are_invertible_at_2mm():
    anat = truth.load_anatomy(2)
    sa = anatomy.draw_subject_anatomy(anat, rng(7, "anatomy", 2), **DEFAULT)
    assert sa.record["jacobian_min"] > 0.1
    assert 0.8 < sa.record["brain_dice"] < 0.99


@pytest.mark.parametrize("bigger", [True, False])
def test_scale_changes_brain_volume_by_s_cubed(anat4, bigger):
    wanted = (lambda r: r["scale_factor"] > 1.05) if bigger else (lambda r: r["scale_factor"] < 0.95)
    sa = _first(anat4, wanted, **_only(brain_size_sd=0.05))
    s = sa.record["scale_factor"]
    ratio = (sa.to_subject(anat4.brain.astype(np.float32)) > 0.5).sum() / anat4.brain.sum()
    assert (ratio > 1) == bigger
    assert ratio == pytest.approx(s ** 3, abs=0.02)


@pytest.mark.parametrize("sign", [1, -1])
def test_ventricle_shift_changes_deep_csf(anat4, sign):
    sa = _first(anat4, lambda r: sign * r["ventricle_shift_mm"] > 1.5, **_only(ventricle_sd=2.0))
    depth = ndimage.distance_transform_edt(anat4.brain, sampling=4.0)
    deep = anat4.brain & (depth > 20)
    before = anat4.csf[deep].sum()
    after = sa.to_subject(anat4.csf)[deep].sum()
    assert sign * (after - before) > 0.05 * before
    far = anat4.brain & (depth < 8)  # the cortex does not move
    assert np.abs(sa.displacement[far]).max() < 0.05


def test_large_ventricle_shifts_do_not_fold_space(anat4):
    for i in range(6):
        sa = anatomy.draw_subject_anatomy(anat4, rng(5, "ventricles", i), **_only(ventricle_sd=4.0))
        assert sa.record["jacobian_min"] > 0, sa.record["ventricle_shift_mm"]


def test_thickness_keeps_gm_plus_wm_and_thinning_lowers_gm(anat4):
    sa = anatomy.draw_subject_anatomy(anat4, rng(2, "thick"), **_only(cortical_thickness_sd=0.5))
    np.testing.assert_allclose(sa.gm + sa.wm, anat4.gm + anat4.wm, atol=1e-5)
    np.testing.assert_array_equal(sa.csf, anat4.csf)
    assert not sa.displacement.any() and not np.array_equal(sa.gm, anat4.gm)
    gm_thin, wm_thin = anatomy.thickness_change(anat4.gm, anat4.wm, -0.5, 4.0)
    gm_thick, _ = anatomy.thickness_change(anat4.gm, anat4.wm, 0.5, 4.0)
    assert gm_thin.sum() < 0.97 * anat4.gm.sum() < gm_thick.sum()
    assert wm_thin.sum() > anat4.wm.sum()
    np.testing.assert_allclose(gm_thin + wm_thin, anat4.gm + anat4.wm, atol=1e-5)


def test_to_mni_points_agrees_with_to_subject(anat4, defaults4):
    sa = defaults4[3]
    pulled = np.stack([sa.to_subject(anat4.coords[..., k]) for k in range(3)], axis=-1)
    pts = anat4.coords[anat4.brain]
    mni = sa.to_mni_points(pts)
    ijk = (mni - anat4.affine[:3, 3]) / 4.0
    inside = np.all((ijk >= 0) & (ijk <= np.array(anat4.shape) - 1), axis=1)  # else 0 (edge)
    assert inside.mean() > 0.99
    np.testing.assert_allclose(mni[inside], pulled[anat4.brain][inside], atol=1e-3)
    np.testing.assert_allclose(sa.to_mni_points(pts) - pts, sa.displacement[anat4.brain], atol=1e-3)
    outside = np.array([[500.0, 0.0, 0.0]])
    np.testing.assert_array_equal(sa.to_mni_points(outside), outside)


def test_displacement_image_round_trip(tmp_path, defaults4):
    sa = defaults4[0]
    img = anatomy.displacement_image(sa)
    path = tmp_path / "sub-01_desc-warp_xfm.nii.gz"
    nib.save(img, path)
    back = nib.load(path)
    assert back.shape == sa.control.shape[:3] + (1, 3)
    assert back.header.get_intent()[0] == "vector" and int(back.header["intent_code"]) == 1007
    assert int(back.header["sform_code"]) == 4 and int(back.header["qform_code"]) == 4
    assert b"x_MNI = x + d(x)" in back.header["descrip"].tobytes()
    disp, aff = read_displacement(path)
    step = anatomy.DISPLACEMENT_STEP  # int16: steps of at most 0.01 mm
    np.testing.assert_allclose(disp, sa.control, atol=step / 2 + 1e-6)
    np.testing.assert_array_equal(read_displacement(img)[0], sa.control)
    # the written control grid, read back and interpolated as the truth reader does, is the
    # field the simulation used at every truth-grid point inside the control grid
    mapping = TrueMapping(np.eye(4), disp, aff)
    inner = tuple(slice(0, (n - 1) // anatomy.CONTROL_STRIDE * anatomy.CONTROL_STRIDE + 1)
                  for n in sa.shape)
    pts = truth.world_coords(sa.shape, sa.affine)[inner].reshape(-1, 3)
    got = mapping.warp(pts) - pts
    np.testing.assert_allclose(got, sa.displacement[inner].reshape(-1, 3), atol=step)
    assert np.abs(sa.displacement).max() > 1.0


def test_same_stream_same_anatomy(anat4, defaults4):
    again = anatomy.draw_subject_anatomy(anat4, rng(7, "anatomy", 0), **DEFAULT)
    np.testing.assert_array_equal(again.displacement, defaults4[0].displacement)
    np.testing.assert_array_equal(again.gm, defaults4[0].gm)
    assert again.record == defaults4[0].record
    assert not np.array_equal(defaults4[1].displacement, defaults4[0].displacement)
