"""Fixtures of the stage-5 tests: a fake stage-3/stage-2 output with planted receptor components."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from ketamine_cbf.receptors import correlations, maps, nulls, parcellate
from ketamine_cbf.reference import templates

N_SUBJECTS = 12
PLANTED = {"ket_pooled": {"MOR": 1.0, "mGluR5": 1.0}, "interaction": {"MOR": -2.0, "GABAA-a5": 2.0}}


def _unique_components(P: pd.DataFrame) -> pd.DataFrame:
    """Residual of each map's normal scores on the other five's (zero rank-like correlation)."""
    from scipy.special import ndtri

    z = pd.DataFrame(ndtri((stats.rankdata(P, axis=0) - 0.5) / len(P)), index=P.index, columns=P.columns)
    out = {}
    for c in z.columns:
        X = np.column_stack([np.ones(len(z)), z.drop(columns=c).to_numpy()])
        r = z[c].to_numpy() - X @ np.linalg.lstsq(X, z[c].to_numpy(), rcond=None)[0]
        out[c] = r / r.std()
    return pd.DataFrame(out, index=P.index)


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """A fake stage-3 output on the 4 mm grid with receptor components planted at parcel level."""
    root = tmp_path_factory.mktemp("receptors")
    mask = templates.template_brain_mask(4)
    atlas = parcellate.build_atlas(mask, mask_img=mask, min_voxels=3)
    pet = maps.parcellate_pet(maps.load_pet_maps(mask), atlas)
    U = _unique_components(pet)
    lab = np.asarray(atlas.img.dataobj)
    pos = np.searchsorted(atlas.table.label.to_numpy(), lab[lab > 0])
    rng = np.random.default_rng(42)
    vox, norm = root / "voxelwise", root / "normalisation"
    (vox / "contrasts").mkdir(parents=True)
    (vox / "group").mkdir()
    norm.mkdir()
    nib.save(mask, norm / "space-MNI152NLin2009aSym_res-4_desc-brain_mask.nii.gz")
    nib.save(mask, norm / "space-MNI152NLin2009aSym_res-4_label-GM_probseg.nii.gz")
    rows, group = [], {}
    for c, amps in PLANTED.items():
        pattern = sum(a * U[k].to_numpy() for k, a in amps.items())
        subject_maps = []
        for s in range(N_SUBJECTS):
            vol = np.zeros(mask.shape)
            vol[lab > 0] = pattern[pos] * (1 + 0.3 * rng.standard_normal())
            vol += 4 * ndimage.gaussian_filter(rng.standard_normal(mask.shape), 1.5)
            vol[np.asarray(mask.dataobj) == 0] = np.nan
            rel = f"contrasts/sub-{s:02d}_contrast-{c}_deltacbf.nii.gz"
            nib.save(nib.Nifti1Image(vol.astype(np.float32), mask.affine), vox / rel)
            rows.append({"participant_id": f"sub-{s:02d}", "contrast": c, "path": rel})
            subject_maps.append(vol)
        group[c] = np.mean(subject_maps, axis=0)
        nib.save(nib.Nifti1Image(group[c].astype(np.float32), mask.affine),
                 vox / "group" / f"contrast-{c}_desc-mean_deltacbf.nii.gz")
    pd.DataFrame(rows).to_csv(vox / "contrasts.tsv", sep="\t", index=False)
    return dict(root=root, vox=vox, norm=norm, mask=mask, atlas=atlas, pet=pet, U=U,
                n_subjects=N_SUBJECTS, planted=PLANTED)


@pytest.fixture(scope="session")
def group_analysis(study):
    """Group maps of the fake study, 1000 nulls of each model, and the correlation table."""
    from ketamine_cbf.io.derivatives import group_mean_maps

    atlas, pet = study["atlas"], study["pet"]
    group = parcellate.parcel_means(group_mean_maps(study["vox"], list(PLANTED)), atlas)
    D = parcellate.distance_matrix(atlas).to_numpy()
    gn = nulls.make_nulls(group, D, ("variogram", "moran"), 1000, seed=3, key="group",
                          variogram=nulls.VARIOGRAM_OPTIONS)
    table, null_r = correlations.correlation_table(group, pet, gn, methods=correlations.METHODS,
                                                   return_nulls=True)
    return dict(group=group, D=D, nulls=gn, table=table, null_r=null_r)
