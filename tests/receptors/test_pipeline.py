"""Tests of ketamine_cbf.receptors.pipeline: each step writes what it returns; offline; defaults."""

import inspect
import json
import socket

import pandas as pd

from ketamine_cbf import receptors
from ketamine_cbf.receptors import correlations, maps, nulls, parcellate, pipeline
from ketamine_cbf.study import RECEPTORS


def _read(path):
    return pd.read_csv(path, sep="\t")


def _same(df, path):
    pd.testing.assert_frame_equal(df.reset_index(drop=True), _read(path), check_dtype=False,
                                  check_exact=False, rtol=1e-9)


def test_steps_write_what_they_return(study, tmp_path):
    out = tmp_path / "receptors"
    out.mkdir()
    opts = {"null_models": ["variogram", "moran"], "variogram_options": nulls.VARIOGRAM_OPTIONS, "seed": 4}
    inputs = pipeline.parcellate_inputs(study["root"], out, contrasts=["ket_pooled", "interaction"],
                                        receptors=list(RECEPTORS), min_parcel_voxels=3)
    assert inputs.mask_path.name.endswith("_desc-brain_mask.nii.gz") and inputs.groups is None
    assert list(inputs.group.columns) == ["ket_pooled", "interaction"] and inputs.D.shape == (len(inputs.parcels),) * 2
    assert (inputs.pet.index == inputs.group.index).all() and inputs.pet.notna().all().all()
    _same(maps.parcellated_table(inputs.atlas, inputs.pet, inputs.group), out / "parcellated_maps.tsv")
    assert _read(out / "atlas_dseg.tsv").shape[0] == len(inputs.atlas)
    group = pipeline.group_level(inputs, out, methods=["spearman"], n_nulls=40, **opts)
    _same(group.table, out / "group_correlations.tsv")
    assert set(group.nulls) == {(c, m) for c in ("ket_pooled", "interaction") for m in ("variogram", "moran")}
    assert pipeline.truth_recovery(study["root"], group.table, out, method="spearman") is None
    tests, corr = pipeline.subject_level(inputs, out, method="spearman", n_subject_nulls=30, **opts)
    _same(tests, out / "subject_level.tsv")
    _same(corr, out / "subject_correlations.tsv")
    pr, mo = pipeline.regression(inputs, group.nulls, out, method="spearman")
    _same(mo, out / "regression_model.tsv")
    assert len(_read(out / "dominance.tsv")) == len(pr)
    check = pipeline.false_positive_check(inputs, out, sim_alpha=[0.0, 2.0], method="spearman",
                                          n_sim_maps=4, n_sim_nulls=10, **opts)
    _same(check.per_map, out / "false_positive_maps.tsv")
    assert len(_read(out / "false_positive_rates.tsv")) == len(check.by_exponent) + len(check.overall)
    summary = pipeline.write_summary(out, inputs, group, check, null_models=opts["null_models"], n_nulls=40)
    assert json.loads((out / "summary.json").read_text())["n_parcels"] == summary["n_parcels"] == len(inputs.parcels)
    # the same seed gives the same tables; null_hemispheres='separate' passes the hemispheres
    again = pipeline.group_level(inputs, tmp_path, methods=["spearman"], n_nulls=40, **opts)
    pd.testing.assert_frame_equal(again.table, group.table)
    sep = pipeline.parcellate_inputs(study["root"], tmp_path, contrasts=["interaction"], receptors=["MOR"],
                                     min_parcel_voxels=3, null_hemispheres="separate")
    assert set(sep.groups) == {"L", "R"} and len(sep.groups) == len(sep.parcels)


def test_entry_points_are_exported():
    for name in pipeline.__all__:
        assert getattr(receptors, name) is getattr(pipeline, name)


def test_signature_defaults_equal_the_notebook():
    """A parameter named like a notebook parameter has the notebook's default (or none)."""
    import ast
    from pathlib import Path

    nb = json.loads((Path(__file__).parents[2] / "notebooks" / "05_receptors.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    defaults = {t.targets[0].id: ast.literal_eval(t.value) for t in ast.parse("".join(cell["source"])).body
                if isinstance(t, ast.Assign)}
    assert "fdr_alpha" in defaults and "alpha" not in defaults
    import ketamine_cbf.receptors as pkg
    import pkgutil
    import importlib
    checked = 0
    for m in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"ketamine_cbf.receptors.{m.name}")
        for fname, f in inspect.getmembers(mod, inspect.isfunction):
            if f.__module__ != mod.__name__:
                continue
            for p in inspect.signature(f).parameters.values():
                if p.name in defaults and p.default is not inspect.Parameter.empty:
                    assert p.default == defaults[p.name], (mod.__name__, fname, p.name)
                    checked += 1
    assert checked >= 10


def test_stage_functions_make_no_network_call(study, monkeypatch):
    """Offline guarantee: the stage's functions never open a network connection."""
    from ketamine_cbf.io.derivatives import group_mean_maps
    from ketamine_cbf.receptors import dominance, false_positives

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    parcellate._ho_maxprob.cache_clear()
    mask = study["mask"]
    atlas = parcellate.build_atlas(mask, cortical="schaefer400", mask_img=mask, min_voxels=3)
    pet = maps.parcellate_pet(maps.load_pet_maps(mask), atlas)
    group = parcellate.parcel_means(group_mean_maps(study["vox"], ["interaction"]), atlas)
    keep = pet.index[pet.notna().all(axis=1) & group.notna().all(axis=1)]
    D = parcellate.distance_matrix(atlas).loc[keep, keep].to_numpy()
    gn = nulls.make_nulls(group.loc[keep], D, ("variogram", "moran"), 50, seed=1, key="group")
    t = correlations.correlation_table(group.loc[keep], pet.loc[keep], gn, methods=correlations.METHODS)
    dominance.dominance_analysis(group.loc[keep, "interaction"], pet.loc[keep], gn[("interaction", "moran")])
    S, al = false_positives.random_smooth_maps(atlas, 3, 2.0, seed=1)
    false_positives.false_positive_rates(S[:, atlas.table.name.isin(keep).to_numpy()],
                                         pet.loc[keep, "MOR"].to_numpy(), D, n_sim_nulls=20, seed=1)
    import neuromaps.parcellate  # noqa: F401  (importing the offline parts of neuromaps is fine)
    import neuromaps.stats  # noqa: F401
    assert not calls and len(t) > 0
