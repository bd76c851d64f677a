"""Native tissue maps by template registration: accuracy, cache, determinism, bad geometry."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from _synth_asl import phantom
from ketamine_cbf.errors import InputError
from ketamine_cbf.quantification import registration
from ketamine_cbf.quantification.qc import QCParams
from ketamine_cbf.quantification.registration import native_tissue_maps, register_template
from ketamine_cbf.reference import templates


def _rotated_phantom():
    """The phantom M0 with a known head pose: rotate 6 degrees about z and shift 8 mm."""
    affine, m0, cbf, brain = phantom(4)
    th = np.deg2rad(6.0)
    pose = np.eye(4)
    pose[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    pose[:3, 3] = [8.0, -5.0, 4.0]
    return nib.Nifti1Image(m0.astype(np.float32), pose @ affine), affine


def test_registration_recovers_a_known_pose_and_is_cached(tmp_path):
    img, _ = _rotated_phantom()
    xfm = register_template(img, cache_dir=tmp_path)
    t = native_tissue_maps(img, xfm)
    # the image voxels hold the template's anatomy: the warped GM must match it voxel-wise
    true_gm = templates.template_gm(4).get_fdata()
    brain = templates.template_brain_mask(4).get_fdata() > 0
    r = np.corrcoef(t["gm"][brain], true_gm[brain])[0, 1]
    assert r > 0.85
    dice = 2 * ((t["brain"] > 0.5) & brain).sum() / ((t["brain"] > 0.5).sum() + brain.sum())
    assert dice > 0.9
    # cached: same file, same bytes; a fresh run with the same seed gives the same transform
    assert register_template(img, cache_dir=tmp_path) == xfm
    xfm2 = register_template(img, cache_dir=tmp_path / "other")
    assert xfm2.read_bytes() == xfm.read_bytes()


def test_cache_key_holds_settings_and_the_packages_code(monkeypatch):
    img, _ = _rotated_phantom()
    key = registration._cache_key(img, QCParams())
    assert registration._cache_key(img, QCParams(seed=7)) != key
    calls = []

    def fake_digest(*packages):
        calls.append(packages)
        return "another version of the code"

    monkeypatch.setattr(registration, "code_digest", fake_digest)
    assert registration._cache_key(img, QCParams()) != key
    assert calls == [("quantification", "imaging")]


def test_ants_seed_keeps_the_master_seed_stream():
    """ANTsPy ignores a falsy seed: every master seed maps to 1..2**31-2, as before the split."""
    assert registration._ants_seed(0) == 1
    assert registration._ants_seed(20261126) == 20261127
    assert registration._ants_seed(2 ** 31 - 2) == 1
    assert all(1 <= registration._ants_seed(s) <= 2 ** 31 - 2 for s in (5, 2 ** 40, -3))


def test_sheared_aslref_is_an_input_error_naming_it(tmp_path):
    """The shared imaging.to_ants rejects shear (ITK images need orthogonal axes): stage 1 now
    rejects what stage 2 rejects, with the file in the message."""
    img, _ = _rotated_phantom()
    shear = img.affine.copy()
    shear[0, 1] += 0.8
    path = tmp_path / "sub-01_ses-1_run-1_aslref.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shear), str(path))
    with pytest.raises(InputError, match=r"sub-01_ses-1_run-1_aslref\.nii\.gz.*shear"):
        register_template(path, cache_dir=tmp_path / "c")
    with pytest.raises(InputError, match=r"sub-01_asl\.nii\.gz \(its aslref\).*shear"):
        register_template(nib.load(str(path)), cache_dir=tmp_path / "c",
                          what="sub-01_asl.nii.gz (its aslref)")
    assert not (tmp_path / "c").exists()


def test_registration_is_reproducible_when_ants_runs_before_our_helpers(tmp_path):
    """ITK fixes its thread count when ants first runs a filter: a caller that uses ants
    right after importing the package (before any helper of ours runs) must still get
    bit-identical transforms."""
    code = (
        "import os, sys; os.environ.pop('ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS', None)\n"
        "sys.path[:0] = [sys.argv[1], sys.argv[1] + '/..']\n"
        "import ketamine_cbf, ants, numpy as np\n"
        "ants.smooth_image(ants.from_numpy(np.ones((8, 8, 8), 'float32')), 1.0)\n"
        "from test_registration import _rotated_phantom\n"
        "from ketamine_cbf.quantification.registration import register_template\n"
        "img, _ = _rotated_phantom()\n"
        "a = register_template(img, cache_dir=sys.argv[2] + '/a').read_bytes()\n"
        "b = register_template(img, cache_dir=sys.argv[2] + '/b').read_bytes()\n"
        "print(a == b)\n")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]
