"""ketamine_cbf.normalisation.registration on synthetic images with known transforms.

Conventions (RAS vs ANTs' LPS, direction of forward transforms) are checked against
independent references: scipy resampling, analytic shifts, blob centroids.
"""

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from ketamine_cbf import imaging
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.normalisation import _ants, qc, registration
from ketamine_cbf.reference import templates


# ---------------------------------------------------------------- transforms & conventions

def test_ants_affine_roundtrip(tmp_path, geometry):
    a = geometry.pose([10, -7, 25], [12, -30, 5], 1.07)
    a[0, 1] += 0.05  # a general affine, with shear
    f = registration.write_ants_affine(a, tmp_path / "x.mat")
    np.testing.assert_allclose(registration.read_ants_affine(f), a, atol=1e-9)


def test_registration_dict_roundtrip(tmp_path, geometry):
    """What the T1w step hands to the scan workers (JSON) rebuilds the same Registration."""
    reg = registration.Registration(affine=geometry.pose([3, 2, 1], [4, 5, 6]),
                                    warp=tmp_path / "w.nii.gz", inverse_warp=tmp_path / "i.nii.gz",
                                    method="m")
    back = registration.Registration.from_dict(reg.as_dict())
    np.testing.assert_array_equal(back.affine, reg.affine)
    assert (back.warp, back.inverse_warp, back.method) == (reg.warp, reg.inverse_warp, "m")
    assert registration.Registration.from_dict(
        registration.Registration(affine=np.eye(4)).as_dict()).warp is None


def test_apply_registration_matches_scipy_resampling(geometry):
    """ANTs resampling with our affine == scipy's affine_transform (independent reference)."""
    rng = np.random.default_rng(3)
    nat = geometry.native_affine((40, 44, 36), (4.0, 4.0, 4.0))
    data = ndimage.gaussian_filter(rng.normal(size=(40, 44, 36)), 2).astype(np.float32)
    img = nib.Nifti1Image(data, nat)
    a = geometry.pose([12, -5, 20], [4, -20, 10], 0.95)
    out = registration.apply_registration(img, registration.Registration(affine=a), resolution=4)
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


def test_displacement_field_convention(tmp_path, geometry):
    """Point mapping (our sampling of the inverse warp) agrees with ANTs' image warping."""
    import ants

    a = geometry.pose([0, 0, 15], [3, -4, 2])
    shift_lps = np.array([4.0, -3.0, 5.0])  # forward warp: template point p -> p + s (LPS)
    fixed = imaging.to_ants(templates.template_t1(4))
    fields = {}
    for name, vec in (("fwd", shift_lps), ("inv", -shift_lps)):
        arr = np.broadcast_to(vec, fixed.shape + (3,)).astype(np.float32).copy()
        f = ants.from_numpy(arr, origin=fixed.origin, spacing=fixed.spacing,
                            direction=fixed.direction, has_components=True)
        fields[name] = tmp_path / f"{name}.nii.gz"
        ants.image_write(f, str(fields[name]))
    reg = registration.Registration(affine=a, warp=fields["fwd"], inverse_warp=fields["inv"])
    nat = geometry.native_affine((48, 56, 44), (4.0, 4.0, 4.0))
    ijk = np.indices((48, 56, 44)).reshape(3, -1).T
    xyz = (nat @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    q = np.array([20.0, -10.0, 15.0])
    blob = np.exp(-((xyz - q) ** 2).sum(1) / (2 * 4.0**2)).reshape(48, 56, 44)
    out = registration.apply_registration(nib.Nifti1Image(blob.astype(np.float32), nat), reg,
                                          resolution=2)
    o = np.asarray(out.dataobj)
    sel = o > 0.05
    pts = (out.affine @ np.c_[np.argwhere(sel), np.ones(sel.sum())].T).T[:, :3]
    centroid = (pts * o[sel][:, None]).sum(0) / o[sel].sum()
    mapped = registration.map_points_to_template(q[None], reg)[0]
    np.testing.assert_allclose(mapped, centroid, atol=0.3)
    # the shift is large enough that ignoring the warp (or its sign) would fail
    linear = registration.map_points_to_template(q[None], registration.Registration(affine=a))[0]
    assert np.linalg.norm(linear - centroid) > 5


# ---------------------------------------------------------------- registrations

def test_affine_registration_recovers_known_pose(tilted_scan):
    a_true, scan = tilted_scan
    reg = registration.register_to_template(scan["m0"], scan["mask"], transform="affine",
                                            ants_seed=7)
    mean, worst = qc.registration_error(scan["mask"], reg, a_true)
    voxel = np.prod(scan["mask"].header.get_zooms()[:3]) ** (1 / 3)  # 3.5 x 3.5 x 4 mm
    assert mean < 0.5 * voxel and worst < voxel, (mean, worst)
    s = qc.affine_summary(reg.affine)
    assert s["scale"] == pytest.approx(1.06, abs=0.02)
    assert s["rotation_deg"] == pytest.approx(qc.affine_summary(a_true)["rotation_deg"], abs=1.5)
    # the error measure can fail: the inverse (wrong direction) is far off
    bad = registration.Registration(affine=np.linalg.inv(reg.affine))
    assert qc.registration_error(scan["mask"], bad, a_true)[0] > 20
    # and the warped mask overlaps the template mask
    warped = np.asarray(registration.apply_registration(scan["mask"], reg, 2).dataobj) > 0.5
    assert qc.dice(warped, templates.template_brain_mask(2)) > 0.93


def test_rigid_cannot_absorb_scaling(tilted_scan):
    """A 6-dof model leaves the 6 % head-size difference as error (the affine does not)."""
    a_true, scan = tilted_scan
    reg = registration.register_to_template(scan["m0"], scan["mask"], transform="rigid",
                                            ants_seed=7)
    assert qc.affine_summary(reg.affine)["scale"] == pytest.approx(1.0, abs=1e-6)
    assert qc.registration_error(scan["mask"], reg, a_true)[0] > 1.5


def test_antsreg_arguments_follow_the_settings():
    s = registration.registration_settings({"rigid": {"sampling": 0.25}})
    args = _ants.antsreg_args("F", "M", ("rigid", "affine"), s, 11, fixed_mask="FM")
    text = " ".join(args)
    assert "-r [F,M,1]" in text and "--random-seed 11" in text
    assert "MI[F,M,1,32,Regular,0.25]" in text      # the rigid stage's own sampling
    assert "MI[F,M,1,32,Regular,0.1]" in text       # the affine stage falls back to the default
    assert text.count("-x [FM,NA]") == 2
    assert registration.transform_stages("syn") == ("rigid", "affine", "syn")


# ---------------------------------------------------------------- bad input

def test_image_helpers_are_the_shared_ones():
    """Stage 2 loads and converts images with ketamine_cbf.imaging: no local copy anywhere."""
    import importlib
    import pkgutil

    import ketamine_cbf.normalisation as pkg

    shared = {"load_image": imaging.load_image, "to_ants": imaging.to_ants,
              "from_ants": imaging.from_ants, "LPS": imaging.LPS,
              "FWHM_TO_SIGMA": imaging.FWHM_TO_SIGMA}
    for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
        mod = importlib.import_module(info.name)
        for name, obj in shared.items():
            for local in (name, "_" + name):
                assert getattr(mod, local, obj) is obj, f"{info.name}.{local} is a local copy"


def test_bad_images_are_input_errors_naming_file_and_field(tmp_path):
    """What the shared loader checks (tests/test_imaging.py) reaches stage 2's callers."""
    with pytest.raises(InputError, match=r"nope\.nii\.gz: aslref not found"):
        registration.register_to_template(tmp_path / "nope.nii.gz")
    f4 = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), f4)
    with pytest.raises(InputError, match="4d.nii.gz: aslref must be a 3D image"):
        registration.register_to_template(f4)
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    with pytest.raises(InputError, match="image: affine .* has shear"):
        registration.apply_registration(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), sheared),
                                        registration.Registration(affine=np.eye(4)), resolution=4)
    with pytest.raises(InputError, match="empty after masking"):
        registration.register_to_template(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)),
                                          nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)))


def test_bad_parameters_are_usage_errors():
    with pytest.raises(UsageError, match="transform"):
        registration.register_to_template(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)),
                                          transform="bspline")
    with pytest.raises(UsageError, match="registration setting"):
        registration.registration_settings({"metrik": "CC"})
    with pytest.raises(UsageError, match="registration setting rigid.shrinks"):
        registration.registration_settings({"rigid": {"shrinks": "2x1"}})
