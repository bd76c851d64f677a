"""ketamine_cbf.normalisation.qc: registration error, Dice, GM correlation and flags."""

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import UsageError
from ketamine_cbf.normalisation import maps, qc, registration
from ketamine_cbf.reference import templates


def test_registration_error_uses_the_true_voxel_geometry(geometry):
    """Error = |T_est(M v) - A M_true v|: zero for the truth, the flip distance for a bad header."""
    a = geometry.pose([5, 0, -10], [2, -20, 15])
    m = geometry.native_affine((20, 22, 18), (6.0, 6.0, 6.0))
    mask = np.zeros((20, 22, 18), np.uint8)
    mask[4:16, 5:17, 4:14] = 1
    img = nib.Nifti1Image(mask, m)
    reg = registration.Registration(affine=a)
    assert qc.registration_error(img, reg, a) == pytest.approx((0.0, 0.0), abs=1e-9)
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, 19
    broken = nib.Nifti1Image(mask, m @ flip)
    # the header alone is consistent with itself ...
    assert qc.registration_error(broken, reg, a)[0] == pytest.approx(0.0, abs=1e-9)
    # ... but not with the true geometry: voxel i lands at the mirror position
    mean, worst = qc.registration_error(broken, reg, a, true_voxel_to_scanner=m)
    ii = np.argwhere(mask)[:, 0]
    expected = np.abs(2 * 6.0 * (ii - 9.5))
    assert mean == pytest.approx(expected.mean()) and worst == pytest.approx(expected.max())


def _qc_row(scan, ants_seed=7):
    reg = registration.register_to_template(scan["m0"], scan["mask"], ants_seed=ants_seed)
    brain, gm = maps.template_grid_masks(2)
    warped = np.asarray(registration.apply_registration(scan["mask"], reg, 2).dataobj) > 0.5
    cbf = registration.apply_registration(scan["cbf"], reg, 2)
    sel = warped & (np.asarray(brain.dataobj) > 0)
    return {"dice": qc.dice(warped, brain), "gm_corr": qc.gm_correlation(cbf, gm, sel),
            "coverage": 1.0, **qc.affine_summary(reg.affine)}


def test_correct_registration_passes_qc(tilted_scan):
    row = _qc_row(tilted_scan[1])
    assert qc.flag_registration(row) == [], row


@pytest.mark.parametrize("axis, name", [(1, "anterior-posterior")])  # S-I: test_pipeline
def test_flipped_scan_fails_qc(tilted_scan, axis, name):
    """A flipped voxel axis (wrong header: anatomy mirrored in world space) is flagged.

    Depending on the local optimum the 12-parameter fit of a mirrored brain reaches, the
    mask Dice or the GM correlation of the CBF map (or both) falls below its threshold.
    """
    _, scan = tilted_scan
    flip = np.eye(4)
    flip[axis, axis], flip[axis, 3] = -1, scan["mask"].shape[axis] - 1
    broken = {k: nib.Nifti1Image(np.asarray(v.dataobj), v.affine @ flip) for k, v in scan.items()}
    row = _qc_row(broken)
    flags = qc.flag_registration(row)
    assert flags, (name, row)


def test_dice_of_shifted_cubes():
    a = np.zeros((20, 20, 20), bool)
    b = np.zeros_like(a)
    a[2:12, 2:12, 2:12] = True
    b[4:14, 2:12, 2:12] = True  # 8/10 overlap along one axis
    assert qc.dice(a, b) == pytest.approx(0.8)
    within = np.zeros_like(a)
    within[4:12] = True
    assert qc.dice(a, b, within=within) == pytest.approx(1.0)
    assert math.isnan(qc.dice(np.zeros_like(a), np.zeros_like(a)))


def test_gm_correlation_tells_a_placed_map_from_a_shifted_one():
    gm = templates.template_gm(4)
    brain = np.asarray(templates.template_brain_mask(4).dataobj) > 0
    p = gm.get_fdata()
    cbf = nib.Nifti1Image((20 + 40 * p).astype(np.float32), gm.affine)
    shifted = nib.Nifti1Image(np.roll(cbf.get_fdata(), 6, axis=2).astype(np.float32), gm.affine)
    assert qc.gm_correlation(cbf, gm, brain) > 0.9
    assert qc.gm_correlation(shifted, gm, brain) < qc.gm_correlation(cbf, gm, brain) - 0.3
    assert math.isnan(qc.gm_correlation(cbf, gm, np.zeros(brain.shape, bool)))


def test_registration_errors_against_a_warped_truth_and_in_regions(geometry):
    """With a true mapping that adds 3 mm along z only for x > 0 (the participant's own
    anatomy), an affine that equals the rigid pose is 3 mm off there and exact elsewhere;
    the regional error is the mean over voxels truly within the radius of the centre."""
    a = geometry.pose([0, 0, 0], [0, 0, 0])
    m = geometry.native_affine((20, 20, 20), (4.0, 4.0, 4.0))
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[2:18, 2:18, 2:18] = 1
    img = nib.Nifti1Image(mask, m)
    reg = registration.Registration(affine=a)

    def warped(x):
        x = np.asarray(x, float)
        return x + np.where(x[:, :1] > 0, [0.0, 0.0, 3.0], 0.0)

    out = qc.registration_errors(img, reg, warped, regions={"right": (20.0, 0, 0),
                                                             "left": (-20.0, 0, 0),
                                                             "away": (500.0, 0, 0)})
    assert out["error_right_mm"] == pytest.approx(3.0)
    assert out["error_left_mm"] == pytest.approx(0.0)
    assert np.isnan(out["error_away_mm"])
    assert 0.5 < out["error_regions_mm"] < 2.5
    assert out["error_max_mm"] == pytest.approx(3.0)
    assert (out["error_mean_mm"], out["error_max_mm"]) == qc.registration_error(img, reg, warped)


def test_flag_registration_reasons():
    good = {"dice": 0.95, "gm_corr": 0.7, "coverage": 1.0, "scale": 1.0, "det_sign": 1,
            "error_mean_mm": 1.0, "voxel_size_mm": 3.6}
    assert qc.flag_registration(good) == []
    assert any("dice" in f for f in qc.flag_registration({**good, "dice": 0.6}))
    assert any("GM correlation" in f for f in qc.flag_registration({**good, "gm_corr": 0.1}))
    assert any("coverage" in f for f in qc.flag_registration({**good, "coverage": 0.3}))
    assert qc.flag_registration({**good, "dice": float("nan")}) != []  # unknown Dice fails
    assert any("reflection" in f for f in qc.flag_registration({**good, "det_sign": -1}))
    # the truth-based error is reported, never a reason (real data have no truth)
    assert qc.flag_registration({**good, "error_mean_mm": 50.0}) == []
    assert any("scale" in f for f in qc.flag_registration({**good, "scale": 1.5}))
    assert qc.flag_registration({**good, "error_mean_mm": float("nan")}) == []
    assert qc.flag_registration({**good, "dice": 0.8}, {"dice_min": 0.75}) == []
    assert qc.flag_registration({**good, "gm_corr": 0.2}, {"gm_corr_min": 0.1}) == []
    with pytest.raises(UsageError, match="dice_max"):
        qc.flag_registration(good, {"dice_max": 1})


def _qc_table():
    return pd.DataFrame({"error_mean_mm": [1.0, 2.0], "error_max_mm": [2.0, 5.0],
                         "voxel_size_mm": [3.6, 3.6], "dice": [0.95, 0.85],
                         "gm_corr": [0.6, 0.5], "coverage": [1.0, 0.9], "scale": [1.0, 1.1],
                         "rotation_deg": [3.0, 5.0], "registration_qc_pass": [True, False]})


def test_qc_summary_leaves_out_metrics_without_values():
    t = _qc_table()
    s = qc.qc_summary(t).set_index("metric")
    assert s.loc["dice", "min"] == 0.85 and s.loc["error_max_mm", "max"] == 5.0
    assert s.loc["dice", "n"] == 2
    t["error_mean_mm"] = t["error_max_mm"] = float("nan")  # real data: no truth
    assert "error_mean_mm" not in set(qc.qc_summary(t)["metric"])


def test_goal_report_says_which_goals_are_met():
    text = qc.goal_report(_qc_table(), {"n_computed": 2, "n_cached": 0}, 12.3)
    lines = text.splitlines()
    assert lines[0].startswith("* Wall time of the stage: 12 s for 2 scans (2 registered")
    assert "below 1 voxel for every scan: met" in lines[1]
    assert "lowest 0.850 (goal ≥ 0.9 for every scan: NOT met)" in lines[2]
    assert lines[3] == "* Scans flagged: 1 of 2."
    t = _qc_table()
    t["error_mean_mm"] = float("nan")
    assert len(qc.goal_report(t, {"n_computed": 0, "n_cached": 2}, 1.0).splitlines()) == 3
