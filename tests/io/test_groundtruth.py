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
    f = folder / "sub-01_ses-1_run-1_from-scanner_to-MNI152NLin2009aSym_mode-image_xfm.txt"
    a = np.eye(4)
    a[:3, 3] = [1, 2, 3]
    np.savetxt(f, a)
    assert groundtruth.true_transform_path(tmp_path, "sub-01", "1", "1") == f
    np.testing.assert_array_equal(groundtruth.read_true_transform(f), a)
    np.savetxt(f, np.ones((4, 4)))
    with pytest.raises(InputError, match="last row 0 0 0 1"):
        groundtruth.read_true_transform(f)


def test_simulated_dataset_truth(tiny_dataset):
    assert groundtruth.is_simulated(tiny_dataset)
    truth = groundtruth.read_truth(tiny_dataset)
    assert truth["seed"] == groundtruth.load_truth(tiny_dataset)["seed"]
    assert groundtruth.true_map_paths(tiny_dataset, "ketamineEffect")
