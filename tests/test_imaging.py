"""The shared image helpers (ketamine_cbf.imaging): loading checks and NIfTI <-> ANTs geometry."""

import nibabel as nib
import numpy as np
import pytest

from ketamine_cbf import imaging
from ketamine_cbf.errors import InputError


def _oblique(shape=(10, 12, 8)):
    c, s = np.cos(0.3), np.sin(0.3)
    a = np.eye(4)
    a[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([2.0, 2.5, 3.0])
    a[:3, 3] = [-10.0, 20.0, 5.0]
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    return nib.Nifti1Image(data, a)


def test_to_ants_and_back_keeps_data_and_world_geometry():
    img = _oblique()
    back = imaging.from_ants(imaging.to_ants(img))
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-5)
    np.testing.assert_array_equal(back.get_fdata(), img.get_fdata())


def test_to_ants_world_coordinates_are_lps():
    img = _oblique()
    ai = imaging.to_ants(img)
    # voxel (1, 2, 3) in world: RAS from the NIfTI affine, LPS from ANTs
    ras = img.affine @ [1, 2, 3, 1]
    lps = np.asarray(ai.origin) + np.asarray(ai.direction) @ (np.asarray(ai.spacing) * [1, 2, 3])
    np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-5)


def test_sheared_image_is_refused_with_its_name():
    img = _oblique()
    a = img.affine.copy()
    a[0, 1] += 1.0
    with pytest.raises(InputError, match="aslref.*shear"):
        imaging.to_ants(nib.Nifti1Image(img.get_fdata(), a), what="aslref")


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"missing\.nii\.gz: M0 not found"):
        imaging.load_image(tmp_path / "missing.nii.gz", "M0")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not nifti")
    with pytest.raises(InputError, match="bad.nii.gz: M0 cannot be read"):
        imaging.load_image(bad, "M0")
    f4 = tmp_path / "four.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)), f4)
    with pytest.raises(InputError, match="four.nii.gz: M0 must be a 3D image"):
        imaging.load_image(f4, "M0")
    sing = np.eye(4)
    sing[2, 2] = 0  # nibabel cannot even build such an image: an image-like object stands in
    fake = type("Img", (), {"affine": sing, "dataobj": np.zeros((3, 3, 3), np.float32),
                            "shape": (3, 3, 3)})()
    with pytest.raises(InputError, match="M0 has a singular"):
        imaging.load_image(fake, "M0")


def test_load_image_options():
    data = np.arange(27, dtype=np.int16).reshape(3, 3, 3, 1)
    img = nib.Nifti1Image(data, np.eye(4))
    kept = imaging.load_image(img, dtype=None, nonfinite_to_zero=False)
    assert kept.shape == (3, 3, 3) and np.asarray(kept.dataobj).dtype == np.int16
    nan = np.ones((3, 3, 3), np.float32)
    nan[0, 0, 0] = np.nan
    assert imaging.load_image(nib.Nifti1Image(nan, np.eye(4))).get_fdata()[0, 0, 0] == 0
    kept_nan = imaging.load_image(nib.Nifti1Image(nan, np.eye(4)), dtype=None, nonfinite_to_zero=False)
    assert np.isnan(kept_nan.get_fdata()[0, 0, 0])


def test_fwhm_to_sigma():
    # a Gaussian's FWHM is 2 sqrt(2 ln 2) sigma
    assert imaging.FWHM_TO_SIGMA * 2 * np.sqrt(2 * np.log(2)) == pytest.approx(1.0)
