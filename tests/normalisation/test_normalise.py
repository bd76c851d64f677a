"""Unit tests of ketamine_cbf.normalisation.normalise on synthetic images with known transforms.

Conventions (RAS vs ANTs' LPS, direction of forward transforms) are checked against
independent references: scipy resampling, analytic Gaussians, blob centroids.
"""

import math

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ketamine_cbf.normalisation import normalise as N
from ketamine_cbf.reference import templates
from ketamine_cbf.errors import InputError, UsageError

NATIVE_ZOOMS = (3.5, 3.5, 4.0)
NATIVE_SHAPE = (64, 64, 40)


def pose(rot_deg, trans, scale=1.0):
    """Scanner -> MNI affine: rotation (xyz Euler, degrees), isotropic scale, translation."""
    a = np.eye(4)
    a[:3, :3] = Rotation.from_euler("xyz", rot_deg, degrees=True).as_matrix() * scale
    a[:3, 3] = trans
    return a


def native_affine(shape=NATIVE_SHAPE, zooms=NATIVE_ZOOMS):
    """LAS grid centred on the scanner origin (as a dcm2niix axial acquisition)."""
    a = np.diag([-zooms[0], zooms[1], zooms[2], 1.0])
    a[:3, 3] = -a[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return a


def synth_scan(a_true, seed=0, shape=NATIVE_SHAPE, zooms=NATIVE_ZOOMS):
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
    nat = native_affine(shape, zooms)
    m = np.linalg.inv(tpl_aff) @ a_true @ nat
    out = {}
    for name, vol in (("m0", 0.85 * gm + 0.7 * wm + 1.0 * csf), ("cbf", 60 * gm + 20 * wm),
                      ("mask", brain)):
        r = ndimage.affine_transform(vol, m[:3, :3], m[:3, 3], output_shape=shape, order=1)
        out[name] = r
    out["m0"] = ndimage.gaussian_filter(out["m0"], 0.6) * 1000 + rng.normal(0, 20, shape)
    out["m0"] *= out["mask"] > 0.05  # what a brain-extracted M0 looks like at the edge
    out["cbf"] = ndimage.gaussian_filter(out["cbf"], 0.6) + rng.normal(0, 25, shape)
    return {
        "m0": nib.Nifti1Image(out["m0"].astype(np.float32), nat),
        "cbf": nib.Nifti1Image(out["cbf"].astype(np.float32), nat),
        "mask": nib.Nifti1Image((out["mask"] > 0.5).astype(np.uint8), nat),
    }


# ---------------------------------------------------------------- transforms & conventions

def test_ants_affine_roundtrip(tmp_path):
    a = pose([10, -7, 25], [12, -30, 5], 1.07)
    a[0, 1] += 0.05  # a general affine, with shear
    f = N.write_ants_affine(a, tmp_path / "x.mat")
    np.testing.assert_allclose(N.read_ants_affine(f), a, atol=1e-9)


def test_apply_registration_matches_scipy_resampling():
    """ANTs resampling with our affine == scipy's affine_transform (independent reference)."""
    rng = np.random.default_rng(3)
    nat = native_affine((40, 44, 36), (4.0, 4.0, 4.0))
    data = ndimage.gaussian_filter(rng.normal(size=(40, 44, 36)), 2).astype(np.float32)
    img = nib.Nifti1Image(data, nat)
    a = pose([12, -5, 20], [4, -20, 10], 0.95)
    out = N.apply_registration(img, N.Registration(affine=a), resolution=4)
    tpl_aff = templates.template_t1(4).affine
    # template voxel -> template mm -> scanner mm (inverse pose) -> native voxel
    m = np.linalg.inv(nat) @ np.linalg.inv(a) @ tpl_aff
    ref = ndimage.affine_transform(data, m[:3, :3], m[:3, 3], output_shape=out.shape, order=1,
                                   mode="constant", cval=0.0)
    got = np.asarray(out.dataobj)
    inside = ndimage.binary_erosion(ref != 0, iterations=2)
    assert inside.sum() > 5000
    np.testing.assert_allclose(got[inside], ref[inside], atol=1e-4)
    np.testing.assert_allclose(out.affine, tpl_aff)


def test_displacement_field_convention(tmp_path):
    """Point mapping (our sampling of the inverse warp) agrees with ANTs' image warping."""
    import ants

    a = pose([0, 0, 15], [3, -4, 2])
    shift_lps = np.array([4.0, -3.0, 5.0])  # forward warp: template point p -> p + s (LPS)
    fixed = N.to_ants(templates.template_t1(4))
    fields = {}
    for name, vec in (("fwd", shift_lps), ("inv", -shift_lps)):
        arr = np.broadcast_to(vec, fixed.shape + (3,)).astype(np.float32).copy()
        f = ants.from_numpy(arr, origin=fixed.origin, spacing=fixed.spacing,
                            direction=fixed.direction, has_components=True)
        fields[name] = tmp_path / f"{name}.nii.gz"
        ants.image_write(f, str(fields[name]))
    reg = N.Registration(affine=a, warp=fields["fwd"], inverse_warp=fields["inv"])
    nat = native_affine((48, 56, 44), (4.0, 4.0, 4.0))
    ijk = np.indices((48, 56, 44)).reshape(3, -1).T
    xyz = (nat @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    q = np.array([20.0, -10.0, 15.0])
    blob = np.exp(-((xyz - q) ** 2).sum(1) / (2 * 4.0**2)).reshape(48, 56, 44)
    out = N.apply_registration(nib.Nifti1Image(blob.astype(np.float32), nat), reg, resolution=2)
    o = np.asarray(out.dataobj)
    sel = o > 0.05
    pts = (out.affine @ np.c_[np.argwhere(sel), np.ones(sel.sum())].T).T[:, :3]
    centroid = (pts * o[sel][:, None]).sum(0) / o[sel].sum()
    mapped = N.map_points_to_template(q[None], reg)[0]
    np.testing.assert_allclose(mapped, centroid, atol=0.3)
    # the shift is large enough that ignoring the warp (or its sign) would fail
    linear = N.map_points_to_template(q[None], N.Registration(affine=a))[0]
    assert np.linalg.norm(linear - centroid) > 5


def test_registration_error_uses_the_true_voxel_geometry():
    """Error = |T_est(M v) - A M_true v|: zero for the truth, the flip distance for a bad header."""
    a = pose([5, 0, -10], [2, -20, 15])
    m = native_affine((20, 22, 18), (6.0, 6.0, 6.0))
    mask = np.zeros((20, 22, 18), np.uint8)
    mask[4:16, 5:17, 4:14] = 1
    img = nib.Nifti1Image(mask, m)
    assert N.registration_error(img, N.Registration(affine=a), a) == pytest.approx((0.0, 0.0), abs=1e-9)
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, 19
    broken = nib.Nifti1Image(mask, m @ flip)
    # the header alone is consistent with itself ...
    assert N.registration_error(broken, N.Registration(affine=a), a)[0] == pytest.approx(0.0, abs=1e-9)
    # ... but not with the true geometry: voxel i lands at the mirror position
    mean, worst = N.registration_error(broken, N.Registration(affine=a), a, true_voxel_to_scanner=m)
    ii = np.argwhere(mask)[:, 0]
    expected = np.abs(2 * 6.0 * (ii - 9.5))
    assert mean == pytest.approx(expected.mean()) and worst == pytest.approx(expected.max())


@pytest.fixture(scope="module")
def tilted_scan():
    a = pose([8, -6, 12], [5, -25, 18], 1.06)
    return a, synth_scan(a, seed=1)


def test_affine_registration_recovers_known_pose(tilted_scan):
    a_true, scan = tilted_scan
    reg = N.register_to_template(scan["m0"], scan["mask"], transform="affine", seed=7)
    mean, worst = N.registration_error(scan["mask"], reg, a_true)
    voxel = np.prod(NATIVE_ZOOMS) ** (1 / 3)
    assert mean < 0.5 * voxel and worst < voxel, (mean, worst)
    s = N.affine_summary(reg.affine)
    assert s["scale"] == pytest.approx(1.06, abs=0.02)
    assert s["rotation_deg"] == pytest.approx(N.affine_summary(a_true)["rotation_deg"], abs=1.5)
    # the error measure can fail: the inverse (wrong direction) is far off
    bad = N.Registration(affine=np.linalg.inv(reg.affine))
    assert N.registration_error(scan["mask"], bad, a_true)[0] > 20
    # and the warped mask overlaps the template mask
    warped = np.asarray(N.apply_registration(scan["mask"], reg, 2).dataobj) > 0.5
    assert N.dice(warped, templates.template_brain_mask(2)) > 0.93


def test_rigid_cannot_absorb_scaling(tilted_scan):
    """A 6-dof model leaves the 6 % head-size difference as error (the affine does not)."""
    a_true, scan = tilted_scan
    reg = N.register_to_template(scan["m0"], scan["mask"], transform="rigid", seed=7)
    assert N.affine_summary(reg.affine)["scale"] == pytest.approx(1.0, abs=1e-6)
    assert N.registration_error(scan["mask"], reg, a_true)[0] > 1.5


def _qc_row(scan, seed=7):
    reg = N.register_to_template(scan["m0"], scan["mask"], seed=seed)
    brain, gm = N.template_masks(2)
    warped = np.asarray(N.apply_registration(scan["mask"], reg, 2).dataobj) > 0.5
    cbf = N.apply_registration(scan["cbf"], reg, 2)
    sel = warped & (np.asarray(brain.dataobj) > 0)
    return {"dice": N.dice(warped, brain), "gm_corr": N.gm_correlation(cbf, gm, sel),
            "coverage": 1.0, **N.affine_summary(reg.affine)}


def test_correct_registration_passes_qc(tilted_scan):
    row = _qc_row(tilted_scan[1])
    assert N.flag_registration(row) == [], row


@pytest.mark.parametrize("axis, name", [(1, "anterior-posterior")])  # S-I: test_normalise_dataset
def test_flipped_scan_fails_qc(tilted_scan, axis, name):
    """A flipped voxel axis (wrong header: anatomy mirrored in world space) is flagged.

    Depending on the local optimum the 12-parameter fit of a mirrored brain reaches, the
    mask Dice or the GM correlation of the CBF map (or both) falls below its threshold.
    """
    a_true, scan = tilted_scan
    flip = np.eye(4)
    flip[axis, axis], flip[axis, 3] = -1, NATIVE_SHAPE[axis] - 1
    broken = {k: nib.Nifti1Image(np.asarray(v.dataobj), v.affine @ flip) for k, v in scan.items()}
    row = _qc_row(broken)
    flags = N.flag_registration(row)
    assert flags, (name, row)


# ---------------------------------------------------------------- smoothing, global CBF, Dice

def test_smoothing_kernel_has_requested_fwhm():
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    data = np.zeros((41, 41, 41), np.float32)
    data[20, 20, 20] = 1.0
    out = np.asarray(N.smooth_image(nib.Nifti1Image(data, aff), fwhm=8.0).dataobj, dtype=float)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)
    x = (np.arange(41) - 20) * 2.0
    profile = out.sum(axis=(1, 2))
    sigma = math.sqrt((profile * x**2).sum() / profile.sum())
    assert sigma * math.sqrt(8 * math.log(2)) == pytest.approx(8.0, rel=0.02)


def test_smoothing_matches_nilearn_inside_the_volume():
    from nilearn.image import smooth_img

    rng = np.random.default_rng(0)
    img = nib.Nifti1Image(rng.normal(size=(30, 32, 28)).astype(np.float32), np.diag([3, 3, 3, 1.0]))
    ours = np.asarray(N.smooth_image(img, 6.0).dataobj)
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
    masked = np.asarray(N.smooth_image(img, 8.0, mask=m).dataobj)
    plain = np.asarray(N.smooth_image(img, 8.0).dataobj)
    np.testing.assert_allclose(masked[mask], 50.0, rtol=1e-5)
    assert np.all(masked[~mask] == 0)
    assert plain[8, 15, 15] < 40  # plain smoothing darkens the edge


def test_global_gm_cbf_is_the_grey_matter_mean():
    gm = templates.template_gm(4)
    p = gm.get_fdata()
    cbf = nib.Nifti1Image(np.where(p >= 0.5, 60.0, 20.0).astype(np.float32), gm.affine)
    assert N.global_gm_cbf(cbf, gm, 0.5) == pytest.approx(60.0)
    # restricted to a field of view: voxels outside it do not count
    c = cbf.get_fdata().copy()
    valid = np.zeros(c.shape, bool)
    valid[:, :, : c.shape[2] // 2] = True
    c[~valid] = 1000.0
    assert N.global_gm_cbf(nib.Nifti1Image(c, gm.affine), gm, 0.5,
                           valid=nib.Nifti1Image(valid.astype(np.uint8), gm.affine)) == pytest.approx(60.0)


def test_dice_of_shifted_cubes():
    a = np.zeros((20, 20, 20), bool)
    b = np.zeros_like(a)
    a[2:12, 2:12, 2:12] = True
    b[4:14, 2:12, 2:12] = True  # 8/10 overlap along one axis
    assert N.dice(a, b) == pytest.approx(0.8)
    within = np.zeros_like(a)
    within[4:12] = True
    assert N.dice(a, b, within=within) == pytest.approx(1.0)
    assert math.isnan(N.dice(np.zeros_like(a), np.zeros_like(a)))


def test_flag_registration_reasons():
    good = {"dice": 0.95, "gm_corr": 0.7, "coverage": 1.0, "scale": 1.0, "det_sign": 1,
            "error_mean_mm": 1.0, "voxel_size_mm": 3.6}
    assert N.flag_registration(good) == []
    assert any("dice" in f for f in N.flag_registration({**good, "dice": 0.6}))
    assert any("GM correlation" in f for f in N.flag_registration({**good, "gm_corr": 0.1}))
    assert any("coverage" in f for f in N.flag_registration({**good, "coverage": 0.3}))
    assert N.flag_registration({**good, "dice": float("nan")}) != []  # unknown Dice fails
    assert any("reflection" in f for f in N.flag_registration({**good, "det_sign": -1}))
    assert any("error" in f for f in N.flag_registration({**good, "error_mean_mm": 5.0}))
    assert any("scale" in f for f in N.flag_registration({**good, "scale": 1.5}))
    assert N.flag_registration({**good, "error_mean_mm": float("nan")}) == []
    assert N.flag_registration({**good, "dice": 0.8}, {"dice_min": 0.75}) == []
    assert N.flag_registration({**good, "gm_corr": 0.2}, {"gm_corr_min": 0.1}) == []
    with pytest.raises(UsageError, match="dice_max"):
        N.flag_registration(good, {"dice_max": 1})


# ---------------------------------------------------------------- bad input

def test_load_image_errors_name_file_and_field(tmp_path):
    with pytest.raises(InputError, match=r"nope\.nii\.gz: aslref not found"):
        N.load_image(tmp_path / "nope.nii.gz", "aslref")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="bad.nii.gz: CBF cannot be read"):
        N.load_image(bad, "CBF")
    f4 = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), f4)
    with pytest.raises(InputError, match="4d.nii.gz: aslref must be a 3D image"):
        N.load_image(f4, "aslref")
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    with pytest.raises(InputError, match="shear"):
        N.to_ants(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), sheared), "aslref")


def test_bad_parameters_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="transform"):
        N.register_to_template(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)),
                               transform="bspline")
    with pytest.raises(UsageError, match="registration setting"):
        N._settings({"metrik": "CC"})
    with pytest.raises(UsageError, match="fwhm"):
        N.smooth_image(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), -1)


def _touch_nii(path, data=None, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32) if data is None else data,
                             np.eye(4) if affine is None else affine), path)


def test_find_inputs_native_and_passthrough(tmp_path):
    perf = tmp_path / "sub-01" / "ses-1" / "perf"
    for run in (1, 2):
        _touch_nii(perf / f"sub-01_ses-1_run-{run}_cbf.nii.gz")
        _touch_nii(perf / f"sub-01_ses-1_run-{run}_aslref.nii.gz")
    _touch_nii(perf / "sub-01_ses-1_run-1_desc-brain_mask.nii.gz")
    # an MNI-space map of run 2 too (the native one wins) and an MNI-only scan 3
    _touch_nii(perf / "sub-01_ses-1_run-2_space-MNI152NLin2009cAsym_cbf.nii.gz")
    _touch_nii(perf / "sub-01_ses-1_run-3_space-MNI152NLin2009cAsym_cbf.nii.gz")
    t = N.find_inputs(tmp_path)
    assert list(t["run"]) == ["1", "2", "3"]
    assert list(t["mode"]) == ["register", "register", "passthrough"]
    assert t.loc[0, "mask"] is not None and t.loc[1, "mask"] is None
    assert t.loc[2, "space"] == "MNI152NLin2009cAsym"


def test_find_inputs_errors(tmp_path):
    with pytest.raises(InputError, match="no CBF maps"):
        N.find_inputs(tmp_path)
    perf = tmp_path / "sub-01" / "perf"
    _touch_nii(perf / "sub-01_run-1_cbf.nii.gz")
    with pytest.raises(InputError, match=r"sub-01_run-1_cbf.nii.gz: no registration reference .*aslref"):
        N.find_inputs(tmp_path)
    (perf / "sub-01_run-1_cbf.nii.gz").unlink()
    _touch_nii(perf / "sub-01_run-1_space-T1w_cbf.nii.gz")
    with pytest.raises(InputError, match="space-T1w is not an MNI space"):
        N.find_inputs(tmp_path)


def test_true_transform_reader(tmp_path):
    f = tmp_path / "x.txt"
    np.savetxt(f, np.eye(3))
    with pytest.raises(InputError, match="x.txt: not a 4x4 affine"):
        N.read_true_transform(f)
    np.savetxt(f, pose([1, 2, 3], [4, 5, 6]))
    np.testing.assert_allclose(N.read_true_transform(f), pose([1, 2, 3], [4, 5, 6]))
