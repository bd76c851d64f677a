"""Tests of the simulated dataset: design, planted truth, forward model, determinism, errors.

Checks recompute everything from the written files with code independent of the
simulator where possible (ROI spheres, the white-paper formula, the pose convention).
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from ketamine_cbf.io import provenance
from ketamine_cbf.io.design import read_design
from ketamine_cbf.errors import UsageError
from ketamine_cbf.simulate import simulate_dataset
from ketamine_cbf.simulate.params import OPTIONS, validate

SMALL = {"subjects": 4, "resolution": 6, "voxel_size": [8.0, 8.0, 8.0],
         "anat_voxel_size": [6.0, 6.0, 6.0]}


def _truth(ds: Path) -> dict:
    return json.loads((ds / "derivatives" / "groundtruth" / "truth.json").read_text())


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


# ---------------------------------------------------------------------------- design
def test_design_table_arms_and_timepoints(tiny_dataset):
    design = read_design(tiny_dataset)
    parts = _tsv(tiny_dataset / "participants.tsv").set_index("participant_id")
    n = len(parts)
    assert len(design) == n * 4
    for _, row in design.iterrows():
        order = parts.at[row["participant_id"], "order"]
        first, second = ("placebo", "naltrexone") if order == "PN" else ("naltrexone", "placebo")
        expected_arm = first if row["session_id"] == "ses-1" else second
        assert row["arm"] == expected_arm
        assert row["period"] == ("1" if row["session_id"] == "ses-1" else "2")
        assert row["timepoint"] == {"1": "pre", "2": "during"}[row["run"]]
    # every participant has both arms and both time points
    counts = design.groupby(["participant_id", "arm", "timepoint"]).size()
    assert (counts == 1).all() and len(counts) == n * 4
    # counterbalanced order
    assert abs((parts["order"] == "PN").sum() - (parts["order"] == "NP").sum()) <= 1
    assert parts["age"].between(18, 50).all()


def test_scans_tsv_acq_time_order(tiny_dataset):
    for f in tiny_dataset.glob("sub-*/ses-*/*_scans.tsv"):
        scans = _tsv(f)
        t = pd.to_datetime(scans["acq_time"])
        pre = t[scans["timepoint"] == "pre"].iloc[0]
        during = t[scans["timepoint"] == "during"].iloc[0]
        assert pre < during, f


def test_phenotype_files_columns_and_ranges(tiny_dataset):
    parts = set(_tsv(tiny_dataset / "participants.tsv")["participant_id"])
    bounds = {"cadss": {"cadss_total": 92}, "madrs": {"madrs_baseline": 60, "madrs_day1": 60},
              "qids_sr": {"qids_sr_baseline": 27, "qids_sr_day1": 27},
              "psi": {"psi_delusional_thinking": None, "psi_perceptual_distortion": None,
                      "psi_total": None}}
    for name, cols in bounds.items():
        df = _tsv(tiny_dataset / "phenotype" / f"{name}.tsv")
        side = json.loads((tiny_dataset / "phenotype" / f"{name}.json").read_text())
        assert list(df.columns[:2]) == ["participant_id", "session_id"]
        assert set(df["participant_id"]) == parts
        assert set(df["session_id"]) == {"ses-1", "ses-2"}
        for col in df.columns:
            assert col in side, f"{name}.json does not describe {col}"
        for col, top in cols.items():
            assert pd.api.types.is_integer_dtype(df[col]), col
            assert df[col].min() >= 0
            top = side[col]["MaxValue"] if top is None else top
            assert df[col].max() <= top, col
    psi = _tsv(tiny_dataset / "phenotype" / "psi.tsv")
    sub = [c for c in psi.columns if c.startswith("psi_") and c != "psi_total"]
    assert (psi[sub].sum(axis=1) == psi["psi_total"]).all()
    madrs = _tsv(tiny_dataset / "phenotype" / "madrs.tsv")
    assert madrs["madrs_baseline"].mean() > 20  # TRD: moderate-severe at baseline


# ------------------------------------------------------------------- planted truth
def _independent_roi_values(ds: Path, truth: dict) -> pd.DataFrame:
    """ROI means recomputed from the written MNI truth maps with own sphere code."""
    from ketamine_cbf.reference.templates import template_gm

    res = truth["options"]["resolution"]
    gm = template_gm(res)
    gm_data = gm.get_fdata()
    ijk = np.indices(gm.shape).reshape(3, -1).T
    xyz = (ijk @ gm.affine[:3, :3].T + gm.affine[:3, 3]).reshape(gm.shape + (3,))
    gmm = gm_data > truth["model"]["gm_threshold"]
    masks = {}
    for name, r in truth["rois"].items():
        d = np.linalg.norm(xyz - np.array(r["centre_mni"]), axis=-1)
        masks[name] = (d <= r["radius_mm"]) & gmm
        assert masks[name].sum() == r["n_voxels"]
    rows = []
    for f in sorted((ds / "derivatives" / "groundtruth").glob("sub-*/ses-*/perf/*_space-*_desc-true_cbf.nii.gz")):
        data = nib.load(f).get_fdata()
        ent = f.name.split("_")
        row = {"participant_id": ent[0], "session_id": ent[1], "run": ent[2],
               "global": data[gmm].mean()}
        row.update({k: data[m].mean() for k, m in masks.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _score_table(ds: Path) -> pd.DataFrame:
    ph = [_tsv(ds / "phenotype" / f"{n}.tsv") for n in ("psi", "madrs", "qids_sr")]
    df = ph[0].merge(ph[1], on=["participant_id", "session_id"]).merge(
        ph[2], on=["participant_id", "session_id"])
    df["madrs_improvement"] = df["madrs_baseline"] - df["madrs_day1"]
    df["qids_sr_improvement"] = df["qids_sr_baseline"] - df["qids_sr_day1"]
    return df


def test_planted_correlations_recomputed_from_files(tiny_dataset):
    truth = _truth(tiny_dataset)
    roi = _independent_roi_values(tiny_dataset, truth)
    pre = roi[roi["run"] == "run-1"].set_index(["participant_id", "session_id"])
    dur = roi[roi["run"] == "run-2"].set_index(["participant_id", "session_id"])
    x = pd.DataFrame({
        "pgacc_delta_rcbf": dur["pgACC"] / dur["global"] - pre["pgACC"] / pre["global"],
        "sgacc_pre_rcbf": pre["sgACC"] / pre["global"]}).reset_index()
    arms = pd.concat([_tsv(p).assign(participant_id=p.name.split("_")[0])
                      for p in tiny_dataset.glob("sub-*/sub-*_sessions.tsv")])
    df = x.merge(arms, on=["participant_id", "session_id"]).merge(
        _score_table(tiny_dataset), on=["participant_id", "session_id"])
    # the simulator's own record of the imaging values agrees with the recomputation
    pt = _tsv(tiny_dataset / "derivatives" / "groundtruth" / "phenotype_truth.tsv")
    chk = df.merge(pt, on=["participant_id", "session_id"], suffixes=("", "_sim"))
    np.testing.assert_allclose(chk["pgacc_delta_rcbf"], chk["pgacc_delta_rcbf_sim"], atol=1e-6)
    np.testing.assert_allclose(chk["sgacc_pre_rcbf"], chk["sgacc_pre_rcbf_sim"], atol=1e-6)
    pairs = {"psi_delusional_thinking": ("pgacc_delta_rcbf", "r_psi_delusional"),
             "psi_perceptual_distortion": ("pgacc_delta_rcbf", "r_psi_perceptual"),
             "madrs_improvement": ("sgacc_pre_rcbf", "r_madrs"),
             "qids_sr_improvement": ("sgacc_pre_rcbf", "r_qids")}
    opts = truth["options"]
    for score, (imaging, key) in pairs.items():
        pla = df[df["pretreatment"] == "placebo"]
        nal = df[df["pretreatment"] == "naltrexone"]
        r_pla = np.corrcoef(pla[imaging], pla[score])[0, 1]
        r_nal = np.corrcoef(nal[imaging], nal[score])[0, 1]
        # planted exactly in the sample up to integer rounding of the scores
        assert r_pla == pytest.approx(opts[key], abs=0.01), score
        assert r_nal == pytest.approx(opts["r_naltrexone"], abs=0.01), score
        rec = truth["planted_correlations"]["placebo"][score]
        assert rec["realised_r"] == pytest.approx(r_pla, abs=1e-5)  # int16 truth maps


def test_null_dataset_has_no_effects_but_same_images(tiny_dataset, tiny_null_dataset):
    t = _truth(tiny_null_dataset)
    assert t["null"] is True
    gt = tiny_null_dataset / "derivatives" / "groundtruth"
    for desc in ("ketamineEffect", "interactionEffect"):
        (f,) = gt.glob(f"*desc-{desc}_cbf.nii.gz")
        assert np.abs(nib.load(f).get_fdata()).max() == 0
    pt = _tsv(gt / "phenotype_truth.tsv")
    assert (pt.filter(like="ketamine_amplitude").to_numpy() == 0).all()
    # everything not an effect is identical: poses and pre-infusion truth maps
    gt1 = tiny_dataset / "derivatives" / "groundtruth"
    for f in sorted(gt1.glob("sub-*/ses-*/perf/*run-1_space-*_desc-true_cbf.nii.gz")):
        g = gt / f.relative_to(gt1)
        assert provenance.sha256_file(f) == provenance.sha256_file(g)
    for f in sorted(gt1.glob("sub-*/ses-*/*/*_xfm.txt")):
        assert f.read_text() == (gt / f.relative_to(gt1)).read_text()
    # during-infusion maps do differ in the non-null dataset
    f = next(gt1.glob("sub-*/ses-*/perf/*run-2_space-*_desc-true_cbf.nii.gz"))
    assert provenance.sha256_file(f) != provenance.sha256_file(gt / f.relative_to(gt1))


def test_true_ketamine_effect_in_acc_and_not_in_null(tiny_dataset, tiny_null_dataset):
    for ds, null in ((tiny_dataset, False), (tiny_null_dataset, True)):
        truth = _truth(ds)
        roi = _independent_roi_values(ds, truth)
        pre = roi[roi["run"] == "run-1"].set_index(["participant_id", "session_id"])
        dur = roi[roi["run"] == "run-2"].set_index(["participant_id", "session_id"])
        d = (dur["pgACC"] - pre["pgACC"]).groupby("participant_id").mean()
        t = stats.ttest_1samp(d, 0).statistic
        if null:
            assert abs(t) < 4.0
        else:  # n = 8: one-sided p < 0.01 for a planted mean/SD ratio of ~1.3
            assert t > 3.0


def test_receptor_components_parcel_level(tiny_dataset):
    """Parcel-level Spearman r of the planted maps with the raw PET maps, recomputed with
    nilearn + pandas: targets clearly correlated, non-targets weak."""
    from nilearn.image import resample_to_img

    from ketamine_cbf.reference.paths import load_receptor_map, schaefer_path

    truth = _truth(tiny_dataset)
    gt = tiny_dataset / "derivatives" / "groundtruth"
    for desc, key in (("ketamineEffect", "ketamine_receptors"),
                      ("interactionEffect", "interaction_receptors")):
        (f,) = gt.glob(f"*desc-{desc}_cbf.nii.gz")
        img = nib.load(f)
        lab = resample_to_img(nib.load(schaefer_path(200)), img, interpolation="nearest",
                              force_resample=True, copy_header=True).get_fdata().astype(int)
        sel = lab > 0
        eff = pd.Series(img.get_fdata()[sel]).groupby(lab[sel]).mean()
        for name in ("MOR", "KOR", "NMDA", "mGluR5", "GABAA", "GABAA-a5"):
            pet = load_receptor_map(name, img).get_fdata()
            pm = pd.Series(pet[sel]).groupby(lab[sel]).mean()
            r = stats.spearmanr(eff, pm.loc[eff.index]).statistic
            amp = truth["options"][key].get(name)
            if amp:
                assert np.sign(r) == np.sign(amp) and abs(r) > 0.25, (desc, name, r)
            else:  # specificity 0.9 keeps a little overlap with the non-target maps
                assert abs(r) < 0.25, (desc, name, r)


# ------------------------------------------------------------------- forward model
def test_forward_model_inverts_white_paper_formula():
    """deltaM from the simulator, inverted with the white-paper equation written here."""
    from ketamine_cbf.simulate import signal

    cbf = np.array([0.0, 20.0, 55.0, 80.0, 120.0])
    m0 = np.array([1000.0, 700.0, 840.0, 900.0, 1234.5])
    for pld, tau, nbs in ((2.0, 1.5, 4), (1.8, 1.8, 0), (2.5, 1.45, 2)):
        dm = signal.forward_deltam(cbf, m0, pld, tau, nbs)
        alpha = 0.85 * 0.95 ** nbs
        lam, t1b = 0.9, 1.65
        back = (6000 * lam * dm * np.exp(pld / t1b)
                / (2 * alpha * t1b * m0 * (1 - np.exp(-tau / t1b))))
        np.testing.assert_allclose(back, cbf, rtol=1e-12, atol=1e-12)
    assert signal.m0_recovery(2.0) == pytest.approx(1 - np.exp(-2.0 / 1.3))


def _quantify(asl_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """White-paper CBF from a written scan using only its sidecar (independent code)."""
    img = nib.load(asl_path)
    side = json.loads(Path(str(asl_path).replace(".nii.gz", ".json")).read_text())
    ctx = _tsv(Path(str(asl_path).replace("_asl.nii.gz", "_aslcontext.tsv")))["volume_type"].tolist()
    data = img.get_fdata()
    m0 = data[..., ctx.index("m0scan")]
    if "deltam" in ctx:
        dm = data[..., ctx.index("deltam")]
    else:
        c = [i for i, t in enumerate(ctx) if t == "control"]
        lab = [i for i, t in enumerate(ctx) if t == "label"]
        dm = data[..., c].mean(-1) - data[..., lab].mean(-1)
    tr = side["RepetitionTimePreparation"][ctx.index("m0scan")]
    m0 = m0 / (1 - np.exp(-tr / 1.3))
    alpha = 0.85 * 0.95 ** side.get("BackgroundSuppressionNumberPulses", 0)
    pld, tau, lam, t1b = side["PostLabelingDelay"], side["LabelingDuration"], 0.9, 1.65
    with np.errstate(divide="ignore", invalid="ignore"):
        cbf = 6000 * lam * dm * np.exp(pld / t1b) / (2 * alpha * t1b * m0 * (1 - np.exp(-tau / t1b)))
    return cbf, m0


#: No head motion within a series (the textbook checks below are about the signal model).
STILL = {"motion_rms": 0.0, "spike_rate": 0.0}


def _interior_ratios(ds, n=4):
    ratios, corrs = [], []
    for asl in sorted(ds.glob("sub-*/ses-*/perf/*_asl.nii.gz"))[:n]:
        cbf, m0 = _quantify(asl)
        true = nib.load(ds / "derivatives" / "groundtruth" / asl.relative_to(ds).parent /
                        asl.name.replace("_asl.nii.gz", "_desc-true_cbf.nii.gz")).get_fdata()
        # interior of the brain: far from tissue edges, where PSF/partial volume cancel
        interior = ndimage.binary_erosion(true > 10, iterations=1) & (m0 > 0.5 * np.percentile(m0, 99))
        assert interior.sum() > 50
        ratios.append(np.median(cbf[interior]) / np.median(true[interior]))
        corrs.append(np.corrcoef(cbf[interior], true[interior])[0, 1])
    return np.array(ratios), np.array(corrs)


@pytest.mark.parametrize("fmt", ["deltam", "pairs"])
def test_white_paper_physics_quantifies_to_true_cbf(tmp_path, fmt):
    """End to end: with the textbook physics, white-paper CBF of the written data matches the
    native truth (the quantifier's model is exact: no bias)."""
    ds = simulate_dataset(tmp_path / fmt, seed=3, asl_format=fmt, n_pairs=4,
                          physics="white-paper", **STILL, **SMALL)
    ratios, corrs = _interior_ratios(ds)
    assert np.median(ratios) == pytest.approx(1.0, abs=0.05)
    assert corrs.min() > 0.3


def test_general_physics_biases_white_paper_cbf_low(tmp_path, tiny_dataset):
    """With the default (general kinetic model) physics the same white-paper quantification
    comes out low, by about what the physics module predicts for grey matter at this PLD
    (tissue T1 < blood T1 after arrival, arterial blood M0 < M0/0.9 in GM), not by chance."""
    from ketamine_cbf.simulate import physics

    truth = _truth(tiny_dataset)
    assert truth["options"]["physics"] == "general"
    ratios, _ = _interior_ratios(tiny_dataset)
    o = truth["options"]
    cbf = 60.0
    dm = physics.gkm_pcasl(cbf, physics.PD_BLOOD, o["transit_time"] + 0.15, physics.T1_GM,
                           physics.blood_t1(o["haematocrit"]), 0.85, o["post_labeling_delay"],
                           o["labeling_duration"])
    wp = physics.white_paper_deltam(cbf, physics.PD_GM, 1.65, 0.85, o["post_labeling_delay"],
                                    o["labeling_duration"])
    predicted = float(dm / wp)
    assert 0.6 < predicted < 0.9
    assert np.median(ratios) == pytest.approx(predicted, abs=0.12)
    assert np.median(ratios) < 0.92


def test_true_mapping_is_pose_then_own_warp(tiny_dataset):
    """x_MNI = w(A @ x_scanner): resampling the MNI truth at the native voxel centres mapped
    through the rigid pose and the participant's warp reproduces the native truth better
    than the pose alone (the anatomy is the participant's own) or the inverse pose."""
    from ketamine_cbf.io import groundtruth

    gt = tiny_dataset / "derivatives" / "groundtruth"
    (f_nat,) = gt.glob("sub-01/ses-1/perf/sub-01_ses-1_run-1_desc-true_cbf.nii.gz")
    (f_mni,) = gt.glob("sub-01/ses-1/perf/sub-01_ses-1_run-1_space-*_desc-true_cbf.nii.gz")
    mapping = groundtruth.read_true_mapping(tiny_dataset, "sub-01", "ses-1", 1)
    A = mapping.affine
    R = A[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-8)
    assert np.linalg.det(R) == pytest.approx(1.0)
    assert mapping.displacement is not None and np.abs(mapping.displacement).max() > 1.0
    nat, mni = nib.load(f_nat), nib.load(f_mni)
    ijk = np.indices(nat.shape).reshape(3, -1).T
    x = ijk @ nat.affine[:3, :3].T + nat.affine[:3, 3]

    def sample(world):
        vox = (np.linalg.inv(mni.affine) @ np.c_[world, np.ones(len(world))].T)[:3]
        return ndimage.map_coordinates(mni.get_fdata(), vox, order=1).reshape(nat.shape)

    nd = nat.get_fdata()
    inner = ndimage.binary_erosion(nd > 5, iterations=1)
    corr = lambda m: np.corrcoef(m[inner], nd[inner])[0, 1]  # noqa: E731
    full = corr(sample(mapping(x)))
    rigid = corr(sample(mapping.to_subject(x)))
    inverse = corr(sample(x @ np.linalg.inv(A)[:3, :3].T + np.linalg.inv(A)[:3, 3]))
    assert full > 0.9 and full > rigid + 0.02 and full > inverse + 0.1


def test_streams_keyed_by_participant_not_by_draw_order(tmp_path, tiny_dataset):
    """Every random stream is keyed by (participant, period, run), not by how many draws came
    before it: with fewer participants the shared ones keep their T1w, poses and
    pre-infusion truth and ASL (these do not depend on the arm the design assigns)."""
    from _fixtures_sim import TINY_OPTIONS, TINY_SEED

    small = simulate_dataset(tmp_path / "small", seed=TINY_SEED,
                             **{**TINY_OPTIONS, "subjects": 4})
    patterns = ["sub-*/ses-*/anat/*_T1w.nii.gz", "sub-*/ses-*/perf/*_run-1_asl.nii.gz",
                "derivatives/groundtruth/sub-*/ses-*/*/*_xfm.txt",
                "derivatives/groundtruth/sub-*/anat/*_xfm.nii.gz",
                "derivatives/groundtruth/sub-*/ses-*/perf/*_run-1_*desc-true_cbf.nii.gz",
                "derivatives/groundtruth/sub-*/ses-*/perf/*_timeseries.tsv"]
    files = sorted(f.relative_to(small) for pat in patterns for f in small.glob(pat))
    # each: T1w, 2 ASL, 5 poses, the warp, 4 truth maps, 4 motion traces
    assert len(files) == 4 * (1 + 2 + 5 + 1 + 4 + 4)
    # the sequence effect scales all of a participant's CBF: compare the participants whose
    # order (PN / NP) the smaller design happens to assign alike, and every T1w and warp
    order = lambda ds: _tsv(ds / "participants.tsv").set_index("participant_id")["order"]  # noqa: E731
    same = {p for p, o in order(small).items() if order(tiny_dataset)[p] == o}
    assert same
    compared = 0
    for rel in files:
        if rel.parts[0] == "derivatives":
            pid = rel.parts[2]
        else:
            pid = rel.parts[0]
        if pid in same or "anat" in rel.parts:
            compared += 1
            assert provenance.sha256_file(small / rel) == provenance.sha256_file(tiny_dataset / rel), rel
    assert compared >= 4 * 2


@pytest.mark.parametrize("options, field", [
    ({"subjects": 0}, "subjects"),
    ({"ketamine_sd": -1.0}, "ketamine_sd"),
    ({"subject_sd": -0.1}, "subject_sd"),
    ({"resolution": 2.5}, "resolution"),
    ({"asl_format": "m0only"}, "asl_format"),
    ({"ketamine_receptors": {"DAT": 1.0}}, "ketamine_receptors"),
    ({"not_an_option": 1}, "not_an_option"),
    ({"ketamine_reliability": 1.5}, "ketamine_reliability"),
    ({"motion_rms": -0.5}, "motion_rms"),
    ({"preset": "philips"}, "preset"),
    ({"ketamine_session_sd": 2.0}, "ketamine_reliability"),
    ({"physics": "textbook"}, "physics"),
])
def test_bad_options_one_line_error_nothing_written(tmp_path, options, field):
    out = tmp_path / "ds"
    with pytest.raises(UsageError) as e:
        simulate_dataset(out, seed=1, **options)
    msg = str(e.value)
    assert "\n" not in msg and field in msg
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_out_dir_needs_overwrite(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        simulate_dataset(out, seed=1, **SMALL)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    simulate_dataset(out, seed=1, overwrite=True, **SMALL)
    assert not (out / "keep.txt").exists()
    assert (out / "dataset_description.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no leftovers


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    from ketamine_cbf.simulate import dataset as sd

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sd.sdesign, "sessions", boom)
    with pytest.raises(RuntimeError):
        simulate_dataset(tmp_path / "ds", seed=1, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_validate_defaults_and_coercion():
    o = validate({})
    assert o["subjects"] == 26 and o["asl_format"] == "deltam" and o["null"] is False
    assert validate({"voxel_size": 4})["voxel_size"] == (4.0, 4.0, 4.0)
    assert validate({"null": "true"})["null"] is True
    assert all(opt.help for opt in OPTIONS)


def test_permissions_follow_umask(tiny_dataset):
    """Temporary files are created 0600 and folders 0700; the dataset must not keep that."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    for f in (tiny_dataset / "participants.tsv",
              next(tiny_dataset.glob("sub-*/ses-*/perf/*_asl.nii.gz")),
              tiny_dataset / "derivatives" / "groundtruth" / "truth.json"):
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f
    assert tiny_dataset.stat().st_mode & 0o777 == 0o777 & ~umask


def test_coil_bias_cancels_and_m0_recovery_follows_tr(tmp_path):
    """Noise-free variants: the coil bias multiplies deltaM and M0 alike (CBF unchanged),
    and the M0 scales with 1 - exp(-TR/1.3 s) of the sidecar's M0 TR."""
    quiet = {**SMALL, **STILL, "snr_deltam": 1e6, "snr_m0": 1e6, "physics": "white-paper"}
    base = simulate_dataset(tmp_path / "base", seed=2, coil_bias=0.0, **quiet)
    bias = simulate_dataset(tmp_path / "bias", seed=2, coil_bias=0.5, **quiet)
    longtr = simulate_dataset(tmp_path / "tr", seed=2, coil_bias=0.0, m0_tr=6.0, **quiet)
    rel = "sub-01/ses-1/perf/sub-01_ses-1_run-1_asl.nii.gz"
    cbf0, m00 = _quantify(base / rel)
    cbf1, m01 = _quantify(bias / rel)
    with np.errstate(invalid="ignore"):
        brain = (np.isfinite(cbf0) & np.isfinite(cbf1) & (m00 > 0.2 * np.percentile(m00, 99))
                 & (cbf0 > 20))
    assert brain.sum() > 100
    ratio = cbf1[brain] / cbf0[brain]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.002)
    assert np.percentile(np.abs(ratio - 1), 95) < 0.03
    raw_m0_bias = nib.load(bias / rel).get_fdata()[..., 1][brain]
    raw_m0_base = nib.load(base / rel).get_fdata()[..., 1][brain]
    assert np.std(raw_m0_bias / raw_m0_base) > 0.05  # the bias is really there
    m0_short = nib.load(base / rel).get_fdata()[..., 1][brain]
    m0_long = nib.load(longtr / rel).get_fdata()[..., 1][brain]
    expected = (1 - np.exp(-6.0 / 1.3)) / (1 - np.exp(-2.0 / 1.3))
    assert np.median(m0_long / m0_short) == pytest.approx(expected, rel=0.005)
    cbf2, _ = _quantify(longtr / rel)
    assert np.median(cbf2[brain] / cbf0[brain]) == pytest.approx(1.0, abs=0.002)


def test_receptor_specificity_one_makes_non_targets_uncorrelated():
    """With specificity 1 the planted map has ~zero parcel correlation with every
    non-target map; lowering it raises the target correlation (the trade-off documented
    in truth.receptor_effect)."""
    from ketamine_cbf.simulate import truth

    anat = truth.load_anatomy(4)
    labels = truth.parcellation(4)
    pet = truth.receptor_maps(4)
    rs = {}
    for spec in (1.0, 0.8):
        eff, rec = truth.receptor_effect(anat, {"MOR": 1.0, "mGluR5": 1.0}, specificity=spec)
        pm = truth.parcel_means(eff, labels)
        ok = np.isfinite(pm)
        rs[spec] = {k: stats.spearmanr(pm[ok], truth.parcel_means(pet[k], labels)[ok]).statistic
                    for k in ("MOR", "mGluR5", "KOR", "NMDA", "GABAA")}
        assert rec["specificity"] == spec
    assert max(abs(rs[1.0][k]) for k in ("KOR", "NMDA", "GABAA")) < 0.08
    assert rs[0.8]["MOR"] > rs[1.0]["MOR"] + 0.05


def test_parallel_participants_give_the_same_bytes(tmp_path):
    """n_jobs only changes how participants are scheduled: every file is byte-identical."""
    one = simulate_dataset(tmp_path / "one", seed=9, n_jobs=1, **SMALL)
    two = simulate_dataset(tmp_path / "two", seed=9, n_jobs=2, **SMALL)
    files = sorted(f.relative_to(one) for f in one.rglob("*") if f.is_file())
    assert len(files) > 50
    assert files == sorted(f.relative_to(two) for f in two.rglob("*") if f.is_file())
    for rel in files:
        assert provenance.sha256_file(one / rel) == provenance.sha256_file(two / rel), rel
    with pytest.raises(UsageError, match="n_jobs"):
        simulate_dataset(tmp_path / "bad", seed=9, n_jobs=0, **SMALL)
    assert not (tmp_path / "bad").exists()
