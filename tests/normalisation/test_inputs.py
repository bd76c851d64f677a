"""ketamine_cbf.normalisation.inputs: CBF maps, T1w, design and stage 1's verdict."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError
from ketamine_cbf.io import groundtruth
from ketamine_cbf.normalisation import inputs


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
    t = inputs.find_inputs(tmp_path)
    assert list(t["run"]) == ["1", "2", "3"]
    assert list(t["mode"]) == ["register", "register", "passthrough"]
    assert t.loc[0, "mask"] is not None and t.loc[1, "mask"] is None
    assert t.loc[2, "space"] == "MNI152NLin2009cAsym"


def test_find_inputs_errors(tmp_path):
    with pytest.raises(InputError, match="no CBF maps"):
        inputs.find_inputs(tmp_path)
    perf = tmp_path / "sub-01" / "perf"
    _touch_nii(perf / "sub-01_run-1_cbf.nii.gz")
    with pytest.raises(InputError, match=r"sub-01_run-1_cbf.nii.gz: no registration reference .*aslref"):
        inputs.find_inputs(tmp_path)
    (perf / "sub-01_run-1_cbf.nii.gz").unlink()
    _touch_nii(perf / "sub-01_run-1_space-T1w_cbf.nii.gz")
    with pytest.raises(InputError, match="space-T1w is not an MNI space"):
        inputs.find_inputs(tmp_path)


def test_find_t1w_prefers_the_subject_level_then_the_first_session(tmp_path):
    assert inputs.find_t1w(None, "sub-01") is None
    assert inputs.find_t1w(tmp_path, "sub-01") is None
    _touch_nii(tmp_path / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_T1w.nii.gz")
    _touch_nii(tmp_path / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.nii.gz")
    assert inputs.find_t1w(tmp_path, "sub-01").name == "sub-01_ses-1_T1w.nii.gz"
    _touch_nii(tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    assert inputs.find_t1w(tmp_path, "sub-01").name == "sub-01_T1w.nii.gz"


def test_true_transform_reader(tmp_path, geometry):
    """The ground truth is read by ketamine_cbf.io.groundtruth (no local copy in stage 2)."""
    f = tmp_path / "x.txt"
    np.savetxt(f, np.eye(3))
    with pytest.raises(InputError, match="x.txt: not a 4x4 affine"):
        groundtruth.read_true_transform(f)
    np.savetxt(f, geometry.pose([1, 2, 3], [4, 5, 6]))
    np.testing.assert_allclose(groundtruth.read_true_transform(f), geometry.pose([1, 2, 3], [4, 5, 6]))
    assert not hasattr(inputs, "read_true_transform") and not hasattr(inputs, "find_true_transform")


def _write_qc(folder, rows, columns=("participant_id", "session_id", "run", "arm", "qc_pass")):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(columns)).to_csv(folder / "qc.tsv", sep="\t", index=False)


def test_stage1_verdict_and_design_come_from_qc_tsv(tmp_path):
    """Without a BIDS dataset, qc.tsv (read by io.derivatives.read_qc_table) gives both."""
    _write_qc(tmp_path, [["sub-01", "ses-1", "1", "placebo", "true"],
                         ["sub-01", "n/a", "2", "n/a", "false"]])
    verdict = inputs.quantification_qc_pass(tmp_path)
    assert verdict == {("sub-01", "ses-1", "1"): True, ("sub-01", "n/a", "2"): False}
    design = inputs.design_table(None, None, tmp_path)
    table = pd.DataFrame({"participant_id": ["sub-01", "sub-01"], "session_id": ["ses-1", "n/a"],
                          "run": ["1", "2"]})
    merged = inputs.merge_design(table, design)
    assert list(merged["arm"]) == ["placebo", "n/a"] and set(merged["timepoint"]) == {"n/a"}
    # no qc.tsv (e.g. ASLPrep maps): every scan passes, the design is unknown
    assert inputs.quantification_qc_pass(tmp_path / "none") == {}
    assert inputs.design_table(None, None, tmp_path / "none") is None
    assert list(inputs.merge_design(table.copy(), None)["period"]) == ["n/a", "n/a"]


def test_a_qc_tsv_without_verdict_is_an_input_error(tmp_path):
    _write_qc(tmp_path, [["sub-01", "ses-1", "1", "placebo"]],
              ("participant_id", "session_id", "run", "arm"))
    with pytest.raises(InputError, match="qc.tsv: missing column 'qc_pass'"):
        inputs.quantification_qc_pass(tmp_path)


def test_raw_asl_geometry(tmp_path):
    aff = np.diag([3.0, 3.0, 4.0, 1.0])
    _touch_nii(tmp_path / "sub-01" / "perf" / "sub-01_asl.nii.gz", np.zeros((5, 6, 7, 2), np.float32), aff)
    design = pd.DataFrame({"participant_id": ["sub-01"], "session_id": ["n/a"], "run": ["n/a"],
                           "asl": ["sub-01/perf/sub-01_asl.nii.gz"]})
    g = inputs.raw_asl_geometry(tmp_path, design, "sub-01", "n/a", "n/a")
    assert g["shape"] == [5, 6, 7, 2] and np.allclose(g["affine"], aff)
    assert inputs.raw_asl_geometry(None, design, "sub-01", "n/a", "n/a") is None
    assert inputs.raw_asl_geometry(tmp_path, design, "sub-02", "n/a", "n/a") is None
