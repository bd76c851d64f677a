"""The head motion written to the truth is the motion in the images.

A rigid realignment of the written label/control series (``--preset siemens-motion``) to
its M0 volume recovers the per-volume traces of ``*_desc-headmotion_timeseries.tsv``;
the default GE-like data record the scanner's internal shots.
"""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.io import groundtruth
from ketamine_cbf.simulate import motion, simulate_dataset

PARAMS = list(motion.PARAM_NAMES)


@pytest.fixture(scope="module")
def siemens(tmp_path_factory):
    return simulate_dataset(tmp_path_factory.mktemp("siemens") / "ds", seed=4, subjects=4,
                            resolution=4, preset="siemens-motion", n_pairs=6,
                            mover_fraction=1.0)


def test_realignment_recovers_the_true_traces(siemens):
    """During the infusion (every participant a mover here), realigning each volume to the
    M0 recovers the truth within a few hundredths of a voxel."""
    errors_t, errors_r, spread = [], [], []
    for pid in ("sub-01", "sub-02"):
        asl = siemens / pid / "ses-1" / "perf" / f"{pid}_ses-1_run-2_asl.nii.gz"
        img = nib.load(asl)
        data = img.get_fdata(dtype=np.float32)
        types = pd.read_csv(str(asl).replace("_asl.nii.gz", "_aslcontext.tsv"), sep="\t")
        m0 = data[..., types["volume_type"].to_list().index("m0scan")]
        series = data[..., (types["volume_type"] != "m0scan").to_numpy()]
        true = pd.read_csv(groundtruth.true_motion_path(siemens, pid, "ses-1", 2), sep="\t")
        assert true["volume_type"].tolist() == types["volume_type"].tolist()[:-1]
        est = motion.realign_series(series, img.affine, reference=m0)
        diff = est - true[PARAMS].to_numpy()
        errors_t.append(np.sqrt((diff[:, :3] ** 2).mean()))
        errors_r.append(np.sqrt((diff[:, 3:] ** 2).mean()))
        spread.append(true[PARAMS].to_numpy().std(axis=0).max())
    assert max(spread) > 0.3  # there is motion to recover
    assert max(errors_t) < 0.15 and max(errors_r) < 0.15, (errors_t, errors_r)


def test_motion_is_larger_for_movers_during_the_infusion(siemens):
    doc = json.loads((siemens / "derivatives" / "groundtruth" / "truth.json").read_text())
    fd = {(s["participant_id"], s["timepoint"]): s["motion"]["mean_fd_mm"] for s in doc["scans"]}
    factor = doc["options"]["infusion_motion_factor"]
    during = np.mean([v for (p, tp), v in fd.items() if tp == "during"])
    pre = np.mean([v for (p, tp), v in fd.items() if tp == "pre"])
    assert during > 1.5 * pre and factor > 1.5


def test_ge_preset_records_the_internal_shots(tiny_dataset):
    doc = json.loads((tiny_dataset / "derivatives" / "groundtruth" / "truth.json").read_text())
    f = groundtruth.true_motion_path(tiny_dataset, "sub-01", "ses-1", 1)
    table = pd.read_csv(f, sep="\t")
    assert len(table) == 2 * doc["options"]["n_pairs"]
    assert table["volume_type"].tolist()[:2] == ["control", "label"]
    # the ASL file itself holds one averaged deltaM and the M0
    asl = tiny_dataset / "sub-01" / "ses-1" / "perf" / "sub-01_ses-1_run-1_asl.nii.gz"
    assert nib.load(asl).shape[-1] == 2
