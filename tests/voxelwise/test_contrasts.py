"""Subject contrast maps from stage 2's table: arithmetic, exclusions, normalisation, errors.

Stage 2's table is read with the data contract's reader (``io.derivatives.read_cbf_maps``,
merged from this stage's and stage 4's former readers); the tests of the merge check what it
now requires of stage 3's inputs (a ``run`` column, one row per scan, existing maps).
"""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io import derivatives
from ketamine_cbf.io.derivatives import read_cbf_maps
from ketamine_cbf.study import CONTRASTS
from ketamine_cbf.voxelwise import contrasts
from ketamine_cbf.voxelwise.group import analysis_mask
from ketamine_cbf.voxelwise.synthetic import write_normalisation_folder


@pytest.fixture(scope="module")
def norm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("deriv") / "normalisation"
    return write_normalisation_folder(
        d, n_subjects=6, resolution=6, seed=3,
        qc_fail=(("sub-03", "naltrexone", "during"),), missing=(("sub-05", "placebo", "pre"),))


def _scan(cm, pid, arm, tp, smooth=True):
    row = cm[(cm.participant_id == pid) & (cm.arm == arm) & (cm.timepoint == tp)].iloc[0]
    return nib.load(row["cbf_smooth_path" if smooth else "cbf_path"]).get_fdata(), float(row.global_gm_cbf)


def test_contrast_maps_are_the_crossover_differences(norm_dir, tmp_path):
    cm = read_cbf_maps(norm_dir)
    table = contrasts.compute_contrasts(cm, tmp_path, smoothed=True, global_normalise="none")
    assert list(pd.unique(table["contrast"])) == list(CONTRASTS)
    got = {(r.participant_id, r.contrast): nib.load(tmp_path / r.path).get_fdata()
           for r in table.itertuples()}
    pre_p, _ = _scan(cm, "sub-01", "placebo", "pre")
    dur_p, _ = _scan(cm, "sub-01", "placebo", "during")
    pre_n, _ = _scan(cm, "sub-01", "naltrexone", "pre")
    dur_n, _ = _scan(cm, "sub-01", "naltrexone", "during")
    inside = (pre_p != 0)
    kp, kn = (dur_p - pre_p)[inside], (dur_n - pre_n)[inside]
    np.testing.assert_allclose(got[("sub-01", "ket_placebo")][inside], kp, atol=1e-4)
    np.testing.assert_allclose(got[("sub-01", "ket_naltrexone")][inside], kn, atol=1e-4)
    np.testing.assert_allclose(got[("sub-01", "ket_pooled")][inside], (kp + kn) / 2, atol=1e-4)
    np.testing.assert_allclose(got[("sub-01", "interaction")][inside], kn - kp, atol=1e-4)
    assert np.isnan(got[("sub-01", "ket_placebo")][~inside]).all()   # no coverage outside the brain
    # the global GM contrasts follow the same arithmetic, and are tested against zero
    g = table.pivot(index="participant_id", columns="contrast", values="global_gm_deltacbf")
    np.testing.assert_allclose(g["ket_pooled"], (g["ket_placebo"] + g["ket_naltrexone"]) / 2)
    change = contrasts.global_change_table(table).set_index("contrast")
    assert change.loc["interaction", "n"] == len(g["interaction"].dropna())
    assert change.loc["ket_placebo", "mean"] == pytest.approx(g["ket_placebo"].mean())
    assert set(table["global_normalisation"]) == {"none"}
    # the files are written beside contrasts.tsv, paths relative to it
    back = derivatives.read_contrasts(tmp_path, "interaction")
    assert all(p.endswith("_deltacbf.nii.gz") for p in back["path"])
    assert len(back) == (table["contrast"] == "interaction").sum()
    for r in back.itertuples():  # the contract's reader resolves the maps written here
        np.testing.assert_array_equal(nib.load(r.abspath).get_fdata(), got[(r.participant_id, "interaction")])


def test_excluded_and_missing_scans_are_reported_by_id(norm_dir, tmp_path):
    cm = read_cbf_maps(norm_dir)
    incl = contrasts.contrast_inclusion(cm)
    table = contrasts.compute_contrasts(cm, tmp_path)
    out = incl[~incl["included"]]
    assert set(zip(out.participant_id, out.contrast)) == {
        ("sub-03", "ket_naltrexone"), ("sub-03", "ket_pooled"), ("sub-03", "interaction"),
        ("sub-05", "ket_placebo"), ("sub-05", "ket_pooled"), ("sub-05", "interaction")}
    r3 = out[(out.participant_id == "sub-03") & (out.contrast == "ket_naltrexone")].iloc[0]
    assert "failed QC" in r3.reason and "during" in r3.reason
    r5 = out[(out.participant_id == "sub-05") & (out.contrast == "ket_placebo")].iloc[0]
    assert "no pre scan" in r5.reason
    n = table.groupby("contrast").size()
    assert n["ket_placebo"] == 5 and n["ket_naltrexone"] == 5 and n["interaction"] == 4
    assert set(table["order"]) == {"PN", "NP"}
    assert (tmp_path / "contrast_inclusion.tsv").is_file()
    summary = contrasts.inclusion_summary(incl).set_index("contrast")
    assert summary.loc["interaction", "n_included"] == 4
    assert "sub-03 (" in summary.loc["interaction", "excluded"]
    r1 = incl[(incl.participant_id == "sub-01") & (incl.contrast == "ket_placebo")].iloc[0]
    assert r1.scans.count("run-") == 2 and r1.order in ("PN", "NP")


def _write_scaled_folder(folder, factor):
    """Two subjects whose 'during' scans are their 'pre' scans x factor (a purely global change)."""
    rng = np.random.default_rng(0)
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    brain = np.zeros((8, 8, 8), bool)
    brain[1:-1, 1:-1, 1:-1] = True
    folder.mkdir(parents=True)
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), aff),
             folder / "space-MNI152NLin2009aSym_res-4_desc-brain_mask.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.float32), aff),
             folder / "space-MNI152NLin2009aSym_res-4_label-GM_probseg.nii.gz")
    rows = []
    for s in (1, 2):
        for ses, arm in ((1, "placebo"), (2, "naltrexone")):
            pre = np.where(brain, 50 + 10 * rng.standard_normal(brain.shape), 0)
            for run, tp, m in ((1, "pre", pre), (2, "during", pre * factor)):
                name = f"sub-{s}_ses-{ses}_run-{run}_cbf.nii.gz"
                nib.save(nib.Nifti1Image(m, aff), folder / name)
                rows.append(dict(participant_id=f"sub-{s}", session_id=f"ses-{ses}", run=run, arm=arm,
                                 period=ses, timepoint=tp, cbf=name, cbf_smooth=name,
                                 global_gm_cbf=m[brain].mean(), qc_pass=True))
    pd.DataFrame(rows).to_csv(folder / "cbf_maps.tsv", sep="\t", index=False)


@pytest.mark.parametrize("method", ["proportional", "none"])
def test_global_normalisation_removes_a_global_change(tmp_path, method):
    _write_scaled_folder(tmp_path / "normalisation", 1.25)
    cm = read_cbf_maps(tmp_path / "normalisation")
    table = contrasts.compute_contrasts(cm, tmp_path / "voxelwise", global_normalise=method)
    d = nib.load(tmp_path / "voxelwise" / table["path"].iloc[0]).get_fdata()
    pre, _ = _scan(cm, "sub-1", "placebo", "pre")
    inside = pre != 0
    if method == "proportional":
        assert np.abs(d[inside]).max() < 1e-3           # only a global change: nothing regional
    else:
        np.testing.assert_allclose(d[inside], 0.25 * pre[inside], rtol=1e-5)


def test_read_cbf_maps_errors_name_file_and_field(tmp_path):
    _write_scaled_folder(tmp_path / "n", 1.0)
    f = tmp_path / "n" / "cbf_maps.tsv"
    df = pd.read_csv(f, sep="\t")
    df.drop(columns="global_gm_cbf").to_csv(f, sep="\t", index=False)
    with pytest.raises(InputError, match="cbf_maps.tsv: missing column 'global_gm_cbf'"):
        read_cbf_maps(tmp_path / "n")
    df.assign(qc_pass="maybe").to_csv(f, sep="\t", index=False)
    with pytest.raises(InputError, match="'qc_pass'"):
        read_cbf_maps(tmp_path / "n")
    df.assign(timepoint="post").to_csv(f, sep="\t", index=False)
    with pytest.raises(InputError, match="'timepoint'"):
        read_cbf_maps(tmp_path / "n")
    with pytest.raises(InputError, match="not found"):
        read_cbf_maps(tmp_path / "nowhere")
    df.to_csv(f, sep="\t", index=False)
    with pytest.raises(UsageError, match="global_normalise"):
        contrasts.compute_contrasts(read_cbf_maps(tmp_path / "n"), tmp_path / "v", global_normalise="ratio")


def test_merged_reader_requires_run_one_row_per_scan_and_the_maps(tmp_path):
    """What the merged reader adds to stage 3's former one: ``run``, no duplicates, files exist."""
    _write_scaled_folder(tmp_path / "n", 1.0)
    f = tmp_path / "n" / "cbf_maps.tsv"
    df = pd.read_csv(f, sep="\t")
    df.drop(columns="run").to_csv(f, sep="\t", index=False)
    with pytest.raises(InputError, match="cbf_maps.tsv: missing column 'run'"):
        read_cbf_maps(tmp_path / "n")
    pd.concat([df, df.iloc[[0]]]).to_csv(f, sep="\t", index=False)
    with pytest.raises(InputError, match="duplicate rows.*sub-1"):
        read_cbf_maps(tmp_path / "n")
    df.assign(cbf_smooth=["gone.nii.gz"] + list(df["cbf_smooth"].iloc[1:])).to_csv(f, sep="\t", index=False)
    with pytest.raises(InputError, match="'cbf_smooth' names a missing file gone.nii.gz"):
        read_cbf_maps(tmp_path / "n")
    # a failed scan without maps or global CBF ('n/a') is kept and simply not used
    df = df.astype({"global_gm_cbf": object, "qc_pass": object})
    df.loc[0, ["cbf", "cbf_smooth", "global_gm_cbf", "qc_pass"]] = ["n/a", "n/a", "n/a", False]
    df.to_csv(f, sep="\t", index=False)
    cm = read_cbf_maps(tmp_path / "n")
    assert cm.loc[0, "cbf_smooth_path"] == "" and np.isnan(cm.loc[0, "global_gm_cbf"])
    incl = contrasts.contrast_inclusion(cm).set_index(["participant_id", "contrast"])
    assert not incl.loc[("sub-1", "ket_placebo"), "included"]
    assert "failed QC: ses-1 run-1" in incl.loc[("sub-1", "ket_placebo"), "reason"]
    table = contrasts.compute_contrasts(cm, tmp_path / "v", global_normalise="proportional")
    assert set(table.loc[table.participant_id == "sub-1", "contrast"]) == {"ket_naltrexone"}


def test_scan_field_of_view_limits_the_contrast(tmp_path):
    """A scan's brain_mask (stage 2: its field of view) makes the contrast NaN outside it."""
    folder = tmp_path / "normalisation"
    _write_scaled_folder(folder, 1.1)
    df = pd.read_csv(folder / "cbf_maps.tsv", sep="\t")
    ref = nib.load(folder / df["cbf"].iloc[0])
    fov = np.asarray(ref.dataobj) != 0
    fov[:, :, 5:] = False  # the top of the brain was not imaged
    nib.save(nib.Nifti1Image(fov.astype(np.uint8), ref.affine), folder / "fov.nii.gz")
    df["brain_mask"] = ""
    df.loc[(df.participant_id == "sub-1") & (df.timepoint == "during"), "brain_mask"] = "fov.nii.gz"
    df.to_csv(folder / "cbf_maps.tsv", sep="\t", index=False)
    table = contrasts.compute_contrasts(read_cbf_maps(folder), tmp_path / "v")
    d1 = nib.load(tmp_path / "v" / table[table.participant_id == "sub-1"]["path"].iloc[0]).get_fdata()
    d2 = nib.load(tmp_path / "v" / table[table.participant_id == "sub-2"]["path"].iloc[0]).get_fdata()
    assert np.isnan(d1[:, :, 5:]).all() and np.isfinite(d1[fov]).all()
    assert np.isfinite(d2[1:-1, 1:-1, 5:-1]).all()
    m = analysis_mask(folder, [tmp_path / "v" / p for p in table["path"]], 0.3)
    assert not np.asarray(m.dataobj)[:, :, 5:].any() and np.asarray(m.dataobj)[fov].all()
