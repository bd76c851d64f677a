"""The one reader of the simulated truth (ketamine_cbf.io.groundtruth)."""

import numpy as np
import pytest

from ketamine_cbf.errors import InputError
from ketamine_cbf.io import groundtruth


def test_real_data_has_no_truth(tmp_path):
    assert not groundtruth.is_simulated(tmp_path)
    assert groundtruth.read_truth(tmp_path) is None
    assert groundtruth.true_transform_path(tmp_path, "sub-01", "1", "1") is None
    with pytest.raises(InputError, match="not a simulated dataset"):
        groundtruth.load_truth(tmp_path)


def test_malformed_truth_names_the_file(tmp_path):
    gt = groundtruth.groundtruth_dir(tmp_path)
    gt.mkdir(parents=True)
    (gt / "truth.json").write_text("{not json")
    with pytest.raises(InputError, match=r"truth\.json: not valid JSON"):
        groundtruth.read_truth(tmp_path)


def test_true_transform_round_trip_and_checks(tmp_path):
    folder = groundtruth.groundtruth_dir(tmp_path) / "sub-01" / "ses-1" / "perf"
    folder.mkdir(parents=True)
    f = folder / "sub-01_ses-1_run-1_from-scanner_to-subject_mode-image_xfm.txt"
    a = np.eye(4)
    a[:3, 3] = [1, 2, 3]
    np.savetxt(f, a)
    assert groundtruth.true_transform_path(tmp_path, "sub-01", "1", "1") == f
    np.testing.assert_array_equal(groundtruth.read_true_transform(f), a)
    np.savetxt(f, np.ones((4, 4)))
    with pytest.raises(InputError, match="last row 0 0 0 1"):
        groundtruth.read_true_transform(f)


def test_true_mapping_composes_pose_and_warp(tmp_path):
    """x_MNI = w(A x): a constant displacement of (0, 0, 2) mm on the grid adds to the pose;
    without a warp file the mapping is the pose alone; a bad field names the file."""
    import nibabel as nib

    pid_dir = groundtruth.groundtruth_dir(tmp_path) / "sub-01"
    (pid_dir / "ses-1" / "perf").mkdir(parents=True)
    a = np.eye(4)
    a[:3, 3] = [1, 2, 3]
    np.savetxt(pid_dir / "ses-1" / "perf" /
               "sub-01_ses-1_run-1_from-scanner_to-subject_mode-image_xfm.txt", a)
    pts = np.array([[0.0, 0.0, 0.0], [10.0, -5.0, 4.0]])
    pose_only = groundtruth.read_true_mapping(tmp_path, "sub-01", "ses-1", 1)
    np.testing.assert_allclose(pose_only(pts), pts + [1, 2, 3])
    grid = np.diag([4.0, 4.0, 4.0, 1.0])
    grid[:3, 3] = -40
    d = np.zeros((21, 21, 21, 1, 3), np.float32)
    d[..., 2] = 2.0
    (pid_dir / "anat").mkdir()
    warp = pid_dir / "anat" / "sub-01_from-subject_to-MNI152NLin2009aSym_mode-points_xfm.nii.gz"
    nib.save(nib.Nifti1Image(d, grid), warp)
    assert groundtruth.true_warp_path(tmp_path, "sub-01") == warp
    full = groundtruth.read_true_mapping(tmp_path, "sub-01", "ses-1", 1)
    np.testing.assert_allclose(full(pts), pts + [1, 2, 5], atol=1e-5)
    np.testing.assert_allclose(full.warp(np.array([[500.0, 0, 0]])), [[500.0, 0, 0]])  # off grid
    nib.save(nib.Nifti1Image(d[..., 0, :2], grid), warp)
    with pytest.raises(InputError, match="mode-points_xfm.nii.gz: not a finite"):
        groundtruth.read_true_mapping(tmp_path, "sub-01", "ses-1", 1)


def test_simulated_dataset_truth(tiny_dataset):
    assert groundtruth.is_simulated(tiny_dataset)
    truth = groundtruth.read_truth(tiny_dataset)
    assert truth["seed"] == groundtruth.load_truth(tiny_dataset)["seed"]
    assert groundtruth.true_map_paths(tiny_dataset, "ketamineEffect")
