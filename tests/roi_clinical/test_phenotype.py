"""Clinical scores matched to the imaging by ID (ketamine_cbf.roi_clinical.phenotype)."""

import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.provenance import write_tsv
from ketamine_cbf.roi_clinical import correlations, phenotype


def _write_phenotype(bids, sessions, drop=(), extra=(), shuffle=False):
    rng = np.random.default_rng(0)
    tables = {
        "psi": ["psi_delusional_thinking", "psi_perceptual_distortion"], "cadss": ["cadss_total"],
        "madrs": ["madrs_baseline", "madrs_day1"], "qids_sr": ["qids_sr_baseline", "qids_sr_day1"]}
    keys = [k for k in map(tuple, sessions[["participant_id", "session_id"]].to_numpy()) if k not in drop]
    keys += list(extra)
    out = {}
    for name, cols in tables.items():
        t = pd.DataFrame(keys, columns=["participant_id", "session_id"])
        for c in cols:
            t[c] = rng.integers(0, 30, len(t))
        if shuffle:
            t = t.sample(frac=1.0, random_state=3)
        write_tsv(bids / "phenotype" / f"{name}.tsv", t)
        out[name] = t
    return out


def _sessions(n=6):
    return pd.DataFrame([{"participant_id": f"sub-{i:02d}", "session_id": s, "arm": a, "period": s[-1]}
                         for i in range(1, n + 1) for s, a in (("ses-1", "placebo"), ("ses-2", "naltrexone"))])


def test_missing_and_extra_subjects_are_reported_by_id(tmp_path):
    sess = _sessions()
    _write_phenotype(tmp_path, sess, drop=[("sub-02", "ses-1"), ("sub-02", "ses-2")],
                     extra=[("sub-99", "ses-1")])
    ph = phenotype.read_phenotype(tmp_path)
    with pytest.warns(UserWarning, match=r"no imaging data: sub-99; no phenotype row: sub-02"):
        merged, report = phenotype.align_phenotype(sess, ph)
    assert set(report.loc[report["issue"] == "no imaging data", "participant_id"]) == {"sub-99"}
    assert set(report.loc[report["issue"] == "no phenotype row", "participant_id"]) == {"sub-02"}
    assert set(report["file"]) == {f"phenotype/{n}.tsv" for n in ("psi", "cadss", "madrs", "qids_sr")}
    assert "sub-99" not in set(merged["participant_id"])
    assert merged.loc[merged["participant_id"] == "sub-02", "cadss_total"].isna().all()
    # the missing participant is named in the tests that could not use them
    merged["pgACC_delta"] = np.arange(len(merged), dtype=float) % 5
    corr = correlations.brain_behaviour_correlations(merged, [("pgACC_delta", "cadss_total")], n_boot=0)
    assert (corr["excluded"] == "sub-02").all() and (corr["n"] == 5).all()


def test_clinical_scores_writes_the_report_and_does_not_warn(tmp_path):
    sess = _sessions(3)
    _write_phenotype(tmp_path, sess, drop=[("sub-03", "ses-2")])
    cbf_maps = pd.concat([sess.assign(run="1", timepoint="pre"), sess.assign(run="2", timepoint="during")])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merged, report = phenotype.clinical_scores(tmp_path, cbf_maps, tmp_path / "out")
    assert len(merged) == 6 and set(report["participant_id"]) == {"sub-03"}
    written = pd.read_csv(tmp_path / "out" / "phenotype_mismatches.tsv", sep="\t")
    assert len(written) == len(report) == 4
    assert phenotype.mismatch_summary(report).endswith("no phenotype row: sub-03")
    assert phenotype.mismatch_summary(report.iloc[:0]) is None


def test_alignment_uses_ids_not_row_order(tmp_path):
    sess = _sessions()
    written = _write_phenotype(tmp_path, sess, shuffle=True)
    merged, report = phenotype.align_phenotype(sess, phenotype.read_phenotype(tmp_path))
    assert report.empty
    ref = written["madrs"].set_index(["participant_id", "session_id"])
    for r in merged.itertuples():
        b, d = ref.loc[(r.participant_id, r.session_id), ["madrs_baseline", "madrs_day1"]]
        assert r.madrs_baseline == b and r.madrs_improvement == b - d  # baseline - day 1


def test_read_phenotype_errors_name_file_column_and_ids(tmp_path):
    sess = _sessions(3)
    written = _write_phenotype(tmp_path, sess)
    t = written["psi"].drop(columns="psi_perceptual_distortion")
    write_tsv(tmp_path / "phenotype" / "psi.tsv", t)
    with pytest.raises(InputError, match=r"psi.tsv: missing column 'psi_perceptual_distortion'"):
        phenotype.read_phenotype(tmp_path)
    t = written["psi"].astype({"psi_delusional_thinking": object})
    t.loc[t.index[1], "psi_delusional_thinking"] = "high"
    write_tsv(tmp_path / "phenotype" / "psi.tsv", t)
    with pytest.raises(InputError, match=r"psi.tsv: column 'psi_delusional_thinking' has non-numeric values for sub-01"):
        phenotype.read_phenotype(tmp_path)
    write_tsv(tmp_path / "phenotype" / "psi.tsv", pd.concat([written["psi"], written["psi"].iloc[:1]]))
    with pytest.raises(InputError, match=r"psi.tsv: duplicate rows.*sub-01"):
        phenotype.read_phenotype(tmp_path)
    (tmp_path / "phenotype" / "psi.tsv").unlink()
    with pytest.raises(InputError, match=r"psi.tsv: phenotype file not found"):
        phenotype.read_phenotype(tmp_path)


def test_subject_measures_delta_baseline_and_qc_exclusion(make_roi_values):
    rv = make_roi_values(n=4, seed=3, rois_=("pgACC", "sgACC"))
    bad = (rv["participant_id"] == "sub-02") & (rv["session_id"] == "ses-1") & (rv["run"] == "2")
    rv.loc[bad, "qc_pass"] = False
    m, excluded = phenotype.subject_measures(rv, value="cbf")
    assert list(excluded[["participant_id", "session_id", "run"]].iloc[0]) == ["sub-02", "ses-1", "2"]
    w = rv.set_index(["participant_id", "session_id", "roi", "timepoint"])["cbf"]
    for r in m.itertuples():
        pre = w[(r.participant_id, r.session_id, "pgACC", "pre")]
        assert r.pgACC_baseline == pytest.approx(pre)
        if r.participant_id == "sub-02" and r.session_id == "ses-1":
            assert np.isnan(r.pgACC_delta)
        else:
            assert r.pgACC_delta == pytest.approx(w[(r.participant_id, r.session_id, "pgACC", "during")] - pre)
    mr, _ = phenotype.subject_measures(rv, value="rcbf")
    assert not np.allclose(mr["pgACC_baseline"], m["pgACC_baseline"])


def test_brain_value_of_each_global_adjustment():
    assert phenotype.brain_value("ratio") == "rcbf" and phenotype.brain_value("none") == "cbf"
    with pytest.raises(InputError, match="global_adjustment must be 'ratio' or 'none'"):
        phenotype.brain_value("ancova")
