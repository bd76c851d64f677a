"""The data contract: one reader per stage output (ketamine_cbf.io.derivatives)."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io import derivatives
from ketamine_cbf.io.provenance import write_tsv


def _cbf_maps_folder(tmp_path, rows=None, **overrides):
    d = tmp_path / "normalisation"
    d.mkdir(exist_ok=True)
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    base = []
    for i, (arm, tp) in enumerate([("placebo", "pre"), ("placebo", "during"),
                                   ("naltrexone", "pre"), ("naltrexone", "during")]):
        name = f"sub-01_ses-{1 + i // 2}_run-{1 + i % 2}_cbf.nii.gz"
        nib.save(img, d / name)
        base.append({"participant_id": "sub-01", "session_id": f"ses-{1 + i // 2}",
                     "run": str(1 + i % 2), "arm": arm, "period": str(1 + i // 2),
                     "timepoint": tp, "cbf": name, "cbf_smooth": name, "global_gm_cbf": "50.5",
                     "qc_pass": "true"})
    table = pd.DataFrame(rows if rows is not None else base)
    for k, v in overrides.items():
        table[k] = v
    write_tsv(d / "cbf_maps.tsv", table)
    return d


def test_read_cbf_maps_types_and_paths(tmp_path):
    d = _cbf_maps_folder(tmp_path)
    t = derivatives.read_cbf_maps(d)
    assert t["qc_pass"].dtype == bool and t["qc_pass"].all()
    assert t["global_gm_cbf"].dtype == float and (t["global_gm_cbf"] == 50.5).all()
    assert all(p.startswith(str(d.resolve())) for p in t["cbf_path"])
    assert t.attrs["normalisation_dir"] == str(d.resolve())


@pytest.mark.parametrize("column,value,message", [
    ("qc_pass", "maybe", "column 'qc_pass' must be true/false"),
    ("arm", "ketamine", "column 'arm' has value(s) 'ketamine'"),
    ("timepoint", "after", "column 'timepoint' has value(s) 'after'"),
    ("global_gm_cbf", "high", "column 'global_gm_cbf' is not a number"),
    ("cbf", "missing.nii.gz", "column 'cbf' names a missing file missing.nii.gz"),
])
def test_read_cbf_maps_bad_values_name_file_and_column(tmp_path, column, value, message):
    d = _cbf_maps_folder(tmp_path, **{column: value})
    with pytest.raises(InputError) as e:
        derivatives.read_cbf_maps(d)
    assert "cbf_maps.tsv" in str(e.value) and message in str(e.value)


def test_read_cbf_maps_missing_column_and_duplicates(tmp_path):
    d = _cbf_maps_folder(tmp_path)
    t = pd.read_csv(d / "cbf_maps.tsv", sep="\t", dtype=str)
    write_tsv(d / "cbf_maps.tsv", t.drop(columns="run"))
    with pytest.raises(InputError, match="missing column 'run'"):
        derivatives.read_cbf_maps(d)
    write_tsv(d / "cbf_maps.tsv", pd.concat([t, t.iloc[:1]]))
    with pytest.raises(InputError, match="duplicate rows"):
        derivatives.read_cbf_maps(d)
    with pytest.raises(InputError, match="run stage 02_normalisation first"):
        derivatives.read_cbf_maps(tmp_path / "nowhere")


def test_failed_scan_may_lack_global_cbf_and_maps(tmp_path):
    d = _cbf_maps_folder(tmp_path)
    t = pd.read_csv(d / "cbf_maps.tsv", sep="\t", dtype=str, keep_default_na=False)
    t.loc[0, ["qc_pass", "global_gm_cbf", "cbf", "cbf_smooth"]] = ["false", "n/a", "n/a", "n/a"]
    write_tsv(d / "cbf_maps.tsv", t)
    out = derivatives.read_cbf_maps(d)
    assert not out["qc_pass"].iloc[0] and np.isnan(out["global_gm_cbf"].iloc[0])
    assert out["cbf_path"].iloc[0] == ""


def test_template_masks_picks_the_grid_of_the_maps(tmp_path):
    for res, shape in ((2, (5, 5, 5)), (4, (3, 3, 3))):
        a = np.diag([res, res, res, 1.0])
        for name in (f"space-MNI152NLin2009aSym_res-{res}_desc-brain_mask.nii.gz",
                     f"space-MNI152NLin2009aSym_res-{res}_label-GM_probseg.nii.gz"):
            nib.save(nib.Nifti1Image(np.ones(shape, np.float32), a), tmp_path / name)
    ref = nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.diag([4, 4, 4, 1.0]))
    brain, gm = derivatives.template_masks(tmp_path, ref)
    assert "res-4" in brain.name and "res-4_label-GM" in gm.name
    with pytest.raises(InputError, match="no brain mask on the grid"):
        derivatives.template_masks(tmp_path, nib.Nifti1Image(np.zeros((7, 7, 7)), np.eye(4)))
    with pytest.raises(InputError, match="no template brain mask"):
        derivatives.template_masks(tmp_path / "empty")


def test_read_contrasts_and_group_maps(tmp_path):
    table = pd.DataFrame({"participant_id": ["sub-01", "sub-01"],
                          "contrast": ["ket_placebo", "interaction"], "path": ["a.nii.gz", "b.nii.gz"]})
    write_tsv(tmp_path / "contrasts.tsv", table)
    with pytest.raises(InputError, match=r"contrasts.tsv: column 'path' names 2 missing file\(s\)"):
        derivatives.read_contrasts(tmp_path)
    for name in table["path"]:
        (tmp_path / name).write_bytes(b"")
    write_tsv(tmp_path / "contrasts.tsv", table.assign(contrast=["ket_placebo", "ketamine"]))
    with pytest.raises(InputError, match=r"unknown contrast\(s\) ketamine in column 'contrast'"):
        derivatives.read_contrasts(tmp_path)
    write_tsv(tmp_path / "contrasts.tsv", table)
    t = derivatives.read_contrasts(tmp_path, "interaction")
    assert list(t["path"]) == ["b.nii.gz"] and t["abspath"].iloc[0] == str(tmp_path / "b.nii.gz")
    with pytest.raises(UsageError, match="unknown contrast 'placebo'"):
        derivatives.read_contrasts(tmp_path, "placebo")
    assert derivatives.group_map_path(tmp_path, "ket_placebo", "logp_max_tfce").name == \
        "contrast-ket_placebo_stat-logpFWEtfce_statmap.nii.gz"
    with pytest.raises(InputError, match="group mean map not found"):
        derivatives.group_mean_maps(tmp_path, ["ket_placebo"])
    (tmp_path / "group").mkdir()
    p = derivatives.group_map_path(tmp_path / "group", "ket_placebo", "mean")
    p.write_bytes(b"")
    assert derivatives.group_mean_maps(tmp_path, ["ket_placebo"]) == {"ket_placebo": p}


def test_read_qc_table(tmp_path):
    write_tsv(tmp_path / "qc.tsv", pd.DataFrame({"participant_id": ["sub-01"], "session_id": ["1"],
                                                 "run": ["01"], "qc_pass": ["true"]}))
    t = derivatives.read_qc_table(tmp_path)
    assert t["qc_pass"].tolist() == [True] and t["run"].tolist() == ["01"]
    with pytest.raises(InputError, match="run stage 01_quantification first"):
        derivatives.read_qc_table(tmp_path / "x")
