"""Tests of ketamine_cbf.receptors.maps: stage 3's maps found and checked, PET maps parcellated."""

import pandas as pd
import pytest

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io.derivatives import group_mean_maps, template_masks
from ketamine_cbf.receptors import maps
from ketamine_cbf.study import CONTRASTS, RECEPTORS


def test_read_inputs(study):
    n = study["n_subjects"]
    t = maps.subject_maps_table(study["vox"], ["interaction"])
    assert len(t) == n and set(t.contrast) == {"interaction"}
    assert all(p.startswith(str(study["vox"])) for p in t.path)
    assert "abspath" not in t.columns
    paths = group_mean_maps(study["vox"], ["ket_pooled", "interaction"])
    assert paths["interaction"].name == "contrast-interaction_desc-mean_deltacbf.nii.gz"
    assert template_masks(study["norm"])[0].name.endswith("desc-brain_mask.nii.gz")
    counts = maps.subject_map_counts(maps.subject_maps_table(study["vox"], list(CONTRASTS)))
    assert counts.to_dict("list") == {"contrast": ["ket_pooled", "interaction"],
                                      "subject_maps": [n, n]}


def test_read_inputs_errors(study, tmp_path):
    with pytest.raises(InputError, match="contrasts.tsv: not found"):
        maps.subject_maps_table(tmp_path, list(CONTRASTS))
    pd.DataFrame({"participant_id": ["sub-01"], "contrast": ["ket_pooled"]}).to_csv(
        tmp_path / "contrasts.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="contrasts.tsv: missing column 'path'"):
        maps.subject_maps_table(tmp_path, list(CONTRASTS))
    pd.DataFrame({"participant_id": ["sub-01"], "contrast": ["ket_pooled"], "path": ["x.nii.gz"]}).to_csv(
        tmp_path / "contrasts.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="column 'path' names 1 missing"):
        maps.subject_maps_table(tmp_path, list(CONTRASTS))
    (tmp_path / "x.nii.gz").write_bytes(b"")  # the table's own maps exist; none is asked for
    with pytest.raises(InputError, match="no rows"):
        maps.subject_maps_table(tmp_path, ["interaction"])
    with pytest.raises(UsageError, match="unknown contrast"):
        maps.subject_maps_table(study["vox"], ["ketamine"])
    with pytest.raises(InputError, match="group mean map not found"):
        group_mean_maps(tmp_path, ["ket_pooled"])
    pd.DataFrame({"participant_id": ["sub-01"], "contrast": ["ketamine"], "path": ["x.nii.gz"]}).to_csv(
        tmp_path / "contrasts.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="unknown contrast.*'contrast'"):
        maps.subject_maps_table(tmp_path, list(CONTRASTS))


def test_pet_maps(study):
    with pytest.raises(UsageError, match="unknown receptor"):
        maps.load_pet_maps(study["mask"], ["DAT"])
    pet = study["pet"]
    assert list(pet.columns) == list(RECEPTORS) and list(pet.index) == study["atlas"].names
    corr = maps.pet_correlations(pet.dropna())
    assert list(corr.columns) == ["receptor", *RECEPTORS]
    assert (corr.set_index("receptor").to_numpy().diagonal() == 1).all()


def test_subject_parcel_maps(study):
    subjects = maps.subject_maps_table(study["vox"], ["interaction"])
    parcels = study["atlas"].names[:5]
    m = maps.subject_parcel_maps(subjects, study["atlas"], parcels)
    assert m.index.names == ["participant_id", "contrast"] and list(m.columns) == parcels
    assert m.shape == (study["n_subjects"], 5) and m.notna().all().all()
