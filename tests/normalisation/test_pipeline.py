"""Stage-02 normalisation of the tiny simulated dataset, checked against its ground truth.

One participant (4 scans) of the ``tiny_dataset`` fixture is quantified (stage 01) and
normalised (``normalised`` fixture); registration accuracy is measured against the planted
scanner -> MNI transforms, outputs against the contract of DEVELOPING.md, reruns against the
cache, and deliberately broken scans against the QC table.
"""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf import stattools
from ketamine_cbf.io import derivatives, groundtruth, provenance
from ketamine_cbf.normalisation import maps, pipeline

RES = 4


def files_bytes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_registration_accuracy_against_truth(normalised, tiny_dataset):
    _, res = normalised
    qc = res.qc
    assert len(qc) == 4 and set(qc["mode"]) == {"register"}
    # the truth is each participant's pose and own anatomy: an affine recovers the pose but
    # not the warp, so the error is of the order of the warp's size, not of the pose's
    # (translations up to 10 mm, rotations up to 3 degrees), and it is measured in the ACC too
    truth = groundtruth.load_truth(tiny_dataset)
    rms = truth["subjects"]["sub-01"]["anatomy"]["rms_displacement_mm"]
    assert (qc["error_mean_mm"] < 2 * rms).all() and (qc["error_mean_mm"] > 0.3 * rms).all(), (
        qc["error_mean_mm"], rms)
    assert qc["error_acc_mm"].notna().all() and (qc["error_acc_mm"] < 2 * rms).all()
    assert (qc["dice"] >= 0.9).all(), qc["dice"]
    assert qc["registration_qc_pass"].all(), qc["flags"]
    assert (qc["gm_corr"] > 0.3).all()


def test_contract_of_the_outputs(normalised, tiny_dataset):
    root, res = normalised
    out = root / "a"
    table = pd.read_csv(out / "cbf_maps.tsv", sep="\t", dtype=str)
    for col in ("participant_id", "session_id", "run", "arm", "period", "timepoint", "cbf",
                "cbf_smooth", "global_gm_cbf", "qc_pass"):
        assert col in table.columns, col
    assert set(table["arm"]) == {"placebo", "naltrexone"}
    assert set(table["timepoint"]) == {"pre", "during"}
    brain = maps.template_grid_masks(RES)[0]
    for rel in list(table["cbf"]) + list(table["cbf_smooth"]) + list(table["brain_mask"]):
        img = nib.load(out / rel)
        assert img.shape == brain.shape
        np.testing.assert_allclose(img.affine, brain.affine)
    assert table["cbf"].str.endswith(f"_space-MNI152NLin2009aSym_res-{RES}_cbf.nii.gz").all()
    assert table["cbf_smooth"].str.endswith(f"_res-{RES}_desc-smooth_cbf.nii.gz").all()
    assert (out / f"space-MNI152NLin2009aSym_res-{RES}_desc-brain_mask.nii.gz").is_file()
    assert (out / f"space-MNI152NLin2009aSym_res-{RES}_label-GM_probseg.nii.gz").is_file()
    assert (out / "registration_qc.tsv").is_file()
    # the written transform is the scanner -> MNI affine, comparable to the truth file
    r = res.qc.iloc[0]
    xfm = out / "sub-01" / r["session_id"] / "perf" / (
        f"sub-01_{r['session_id']}_run-{r['run']}_from-scanner_to-MNI152NLin2009aSym_mode-image_xfm.txt")
    truth = groundtruth.true_transform_path(tiny_dataset, "sub-01", r["session_id"], r["run"])
    assert np.abs(np.loadtxt(xfm)[:3, 3] - np.loadtxt(truth)[:3, 3]).max() < 6


def test_later_stages_read_what_stage_2_wrote(normalised):
    """The stage-2 writer and the io.derivatives readers agree (one name per meaning:
    template_grid_masks writes, io.derivatives.template_masks reads)."""
    root, res = normalised
    out = root / "a"
    t = derivatives.read_cbf_maps(out)
    assert list(t["qc_pass"]) == list(res.maps["qc_pass"])
    np.testing.assert_allclose(t["global_gm_cbf"], res.maps["global_gm_cbf"], rtol=1e-8)  # TSV: 10 digits
    brain_path, gm_path = derivatives.template_masks(out)
    brain, gm = maps.template_grid_masks(RES)
    np.testing.assert_array_equal(np.asarray(nib.load(brain_path).dataobj), np.asarray(brain.dataobj))
    np.testing.assert_array_equal(np.asarray(nib.load(gm_path).dataobj), np.asarray(gm.dataobj))


def test_global_gm_cbf_tracks_the_truth(normalised, tiny_dataset):
    """Global GM CBF vs the same measure on the planted true CBF map (independent reference).

    The measured map is blurred by the PSF, partial volume and registration, so values are
    lower than the truth; but the ratio is similar across scans of one subject.
    """
    root, res = normalised
    gm = maps.template_grid_masks(RES)[1]
    ratios = []
    for r in res.maps.itertuples():
        name = f"sub-01_{r.session_id}_run-{r.run}_space-MNI152NLin2009aSym_res-{RES}_desc-true_cbf.nii.gz"
        truth = groundtruth.groundtruth_dir(tiny_dataset) / "sub-01" / r.session_id / "perf" / name
        mask = nib.load(root / "a" / r.brain_mask)
        ratios.append(r.global_gm_cbf / maps.global_gm_cbf(truth, gm, 0.5, valid=mask))
    ratios = np.array(ratios)
    assert np.all((ratios > 0.5) & (ratios < 1.1)), ratios
    assert ratios.std() / ratios.mean() < 0.1, ratios


def test_ants_seed_derives_from_the_master_seed():
    """The ANTs seed is stattools.int_seed(seed, 2): the numbers of the old hand-made stream."""
    for seed in (0, 5, 20261126):
        expected = int(np.random.default_rng([seed, 2]).integers(1, 2**31 - 1))
        assert pipeline.ants_seed(seed) == stattools.int_seed(seed, 2) == expected
    assert pipeline.ants_seed(5) != pipeline.ants_seed(6)


def test_rerun_uses_cache_and_is_byte_identical(normalised, quantified, tiny_dataset):
    root, first = normalised
    again = pipeline.normalise_dataset(quantified, root / "b", bids_dir=tiny_dataset, resolution=RES,
                                       n_jobs=2, cache_dir=root / "cache", seed=5, progress=False)
    assert again.timing["n_cached"] == 4 and again.timing["n_computed"] == 0
    assert files_bytes(root / "a") == files_bytes(root / "b")


def test_fresh_run_is_byte_identical(normalised, tiny_dataset, tmp_path, session_copy):
    """No cache, another worker count: ANTs single-threaded + fixed seed => the same bytes."""
    root, _ = normalised
    q = session_copy(tmp_path / "q")
    pipeline.normalise_dataset(q, tmp_path / "c", bids_dir=tiny_dataset, resolution=RES, n_jobs=1,
                               seed=5, progress=False)
    fresh = files_bytes(tmp_path / "c" / "sub-01")
    assert len(fresh) >= 10  # 2 scans x (3 maps, mask, aslref, 2 transforms)
    for name, data in fresh.items():
        assert (root / "a" / "sub-01" / name).read_bytes() == data, name


def test_two_step_registration_via_t1w(tiny_dataset, tmp_path, session_copy):
    """ASL -> T1w (rigid) -> template (affine): within a native voxel of the truth too."""
    q = session_copy(tmp_path / "q")
    res = pipeline.normalise_dataset(q, tmp_path / "out", bids_dir=tiny_dataset, resolution=RES,
                                     use_t1w=True, n_jobs=1, seed=5, progress=False)
    qc = res.qc
    assert len(qc) == 2 and qc["method"].str.contains("T1w").all()
    assert (qc["error_mean_mm"] < qc["voxel_size_mm"]).all(), qc[["error_mean_mm", "voxel_size_mm"]]
    assert qc["registration_qc_pass"].all(), qc["flags"]


def test_changed_input_recomputes_only_that_scan(normalised, quantified, tiny_dataset, tmp_path):
    root, _ = normalised
    q = tmp_path / "q"
    shutil.copytree(quantified, q)
    f = sorted(q.rglob("*_run-2_cbf.nii.gz"))[0]
    img = nib.load(f)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 1.1, img.affine, img.header), f)
    res = pipeline.normalise_dataset(q, tmp_path / "out", bids_dir=tiny_dataset, resolution=RES,
                                     n_jobs=1, cache_dir=root / "cache", seed=5, progress=False)
    assert res.timing == {**res.timing, "n_cached": 3, "n_computed": 1}


def test_cache_keys_on_the_whole_package_code(normalised, tmp_path, monkeypatch):
    """A changed file anywhere in the package (a split module too) invalidates the cache."""
    assert pipeline.code_version() == provenance.code_digest("normalisation", "imaging")
    root, res = normalised
    src = tmp_path / "mni" / "sub-01" / "ses-1" / "perf"
    src.mkdir(parents=True)
    shutil.copyfile(root / "a" / res.maps.iloc[0]["cbf"],
                    src / "sub-01_ses-1_run-1_space-MNI152NLin2009aSym_cbf.nii.gz")
    run = lambda out: pipeline.normalise_dataset(  # noqa: E731
        tmp_path / "mni", tmp_path / out, resolution=RES, n_jobs=1, cache_dir=tmp_path / "cache",
        progress=False).timing
    assert run("o1")["n_computed"] == 1
    assert run("o2")["n_cached"] == 1
    # what code_digest sees when one module of the package changes
    real = provenance.code_digest
    monkeypatch.setattr(provenance, "code_digest",
                        lambda *pkgs: real(*pkgs) + ("-edited" if "normalisation" in pkgs else ""))
    assert run("o3")["n_computed"] == 1


def _flip(img_path: Path, axis: int):
    img = nib.load(img_path)
    flip = np.eye(4)
    flip[axis, axis], flip[axis, 3] = -1, img.shape[axis] - 1
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine @ flip, img.header), img_path)


def test_broken_scans_are_flagged(tiny_dataset, tmp_path, session_copy):
    """Deliberately broken headers are listed as QC failures; the intact scans pass.

    run-1 of ses-1: slice axis flipped (upside-down anatomy): caught by the images.
    run-2 of ses-1: left-right axis flipped: the mirrored brain registers perfectly (the
    brain is nearly symmetric), so the QC passes it, as it would on real data; only the
    error against the ground truth of simulated data shows it (reported, not a flag).
    """
    q = session_copy(tmp_path / "q")
    perf = q / "sub-01" / "ses-1" / "perf"
    for suffix in ("cbf", "aslref", "desc-brain_mask"):
        _flip(perf / f"sub-01_ses-1_run-1_{suffix}.nii.gz", axis=2)
        _flip(perf / f"sub-01_ses-1_run-2_{suffix}.nii.gz", axis=0)
    res = pipeline.normalise_dataset(q, tmp_path / "out", bids_dir=tiny_dataset, resolution=RES,
                                     n_jobs=2, seed=5, progress=False)
    qc = res.qc.set_index("run")
    assert not qc.loc["1", "registration_qc_pass"] and qc.loc["2", "registration_qc_pass"]
    assert float(qc.loc["2", "error_mean_mm"]) > 20  # the mirror, far beyond any anatomy error
    table = pd.read_csv(tmp_path / "out" / "cbf_maps.tsv", sep="\t", dtype=str).set_index("run")
    assert table.loc["1", "qc_pass"] == "false" and table.loc["2", "qc_pass"] == "true"


def test_passthrough_of_normalised_maps(normalised, tmp_path):
    """Maps already in MNI space are resampled only, and the table says so."""
    root, res = normalised
    src = tmp_path / "aslprep" / "sub-01" / "ses-1" / "perf"
    src.mkdir(parents=True)
    r = res.maps.iloc[0]
    shutil.copyfile(root / "a" / r["cbf"], src / "sub-01_ses-1_run-1_space-MNI152NLin2009cAsym_cbf.nii.gz")
    out = pipeline.normalise_dataset(tmp_path / "aslprep", tmp_path / "o4", resolution=RES, fwhm=0,
                                     n_jobs=1, progress=False)
    assert out.qc.loc[0, "mode"] == "passthrough" and "MNI152NLin2009cAsym" in out.qc.loc[0, "method"]
    a = np.asarray(nib.load(root / "a" / r["cbf"]).dataobj)
    b = np.asarray(nib.load(tmp_path / "o4" / out.maps.loc[0, "cbf"]).dataobj)
    np.testing.assert_allclose(a, b, atol=1e-4)  # same grid: unchanged
    out2 = pipeline.normalise_dataset(tmp_path / "aslprep", tmp_path / "o2", resolution=2, n_jobs=1,
                                      progress=False)
    assert nib.load(tmp_path / "o2" / out2.maps.loc[0, "cbf"]).shape == maps.template_grid_masks(2)[0].shape
    assert out2.maps.loc[0, "global_gm_cbf"] == pytest.approx(r["global_gm_cbf"], rel=0.1)


def test_bad_parameters_are_usage_errors(tmp_path):
    from ketamine_cbf.errors import UsageError

    for kwargs, match in (({"resolution": 2.5}, "resolution"), ({"transform": "bspline"}, "transform"),
                          ({"fwhm": -1}, "fwhm"), ({"global_gm_threshold": 0}, "global_gm_threshold"),
                          ({"qc_thresholds": {"dice_mn": 1}}, "dice_mn"),
                          ({"use_t1w": True}, "use_t1w")):
        with pytest.raises(UsageError, match=match):
            pipeline.normalise_dataset(tmp_path, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
