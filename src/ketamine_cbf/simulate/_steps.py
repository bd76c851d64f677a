"""Steps of the simulated dataset that are not per scan (private to :mod:`.dataset`).

The truth-level model every scan shares (:func:`planted_model`) and, once every
participant is simulated, the group level: the clinical scores planted against the
truth-level values, the planted group maps, the true group t statistics of the
per-subject true deltaCBF maps, the receptor correlations of the planted and
sample-mean maps, and the ACC sections of ``truth.json``. No random stream is drawn
here except the phenotypes' (passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf.io.layout import TEMPLATE_SPACE, bids_name
from ketamine_cbf.io.provenance import save_nifti, write_json, write_tsv
from ketamine_cbf.simulate import design as sdesign
from ketamine_cbf.simulate import truth, write
from ketamine_cbf.simulate.phenotype import build_phenotypes
from ketamine_cbf.study import ACC_CENTRES_MNI, RECEPTORS

__all__ = ["Planted", "planted_model", "GroupStats", "contrast_maps", "write_phenotypes",
           "write_group_maps", "true_group_t", "receptor_stats", "acc_doc"]

#: The group contrasts of the true deltaCBF maps, in the order truth.json lists them.
CONTRASTS = ("ket_placebo", "ket_naltrexone", "ket_pooled", "interaction")


@dataclass
class Planted:
    """The truth-level model every scan shares (symbols as in :mod:`.dataset`'s docstring)."""

    anat: truth.Anatomy
    base: np.ndarray  # B(x)
    blobs: dict  # P_roi(x), GM-masked Gaussian blobs at the ACC centres
    rois: dict  # ROI spheres of the truth-level values
    fields: truth.FieldMaker  # draws the smooth unit-SD fields f, g
    null: bool
    k_global: float
    focal_mean: dict  # mean focal amplitude of each ACC blob under placebo
    att: float  # fraction of the focal effect naltrexone removes
    ket_fixed: np.ndarray  # planted group maps without their receptor parts
    int_fixed: np.ndarray
    r_ket: np.ndarray  # R_ket, R_int
    r_int: np.ndarray
    rec_ket: dict  # their records
    rec_int: dict


def planted_model(o: dict) -> Planted:
    """Build the truth-level model: anatomy, baseline, ACC blobs and ROIs, planted effects.

    The receptor parts ``R_ket`` and ``R_int`` are fitted to the planted group maps
    without them (the global and focal ACC effects). ``null`` zeroes every effect.
    """
    null = o["null"]
    anat = truth.load_anatomy(o["resolution"])
    base = truth.baseline_cbf(anat, o["gm_cbf"], o["wm_cbf"])
    blobs = truth.blob_profiles(anat, o["blob_fwhm"])
    rois = truth.roi_masks(anat, o["roi_radius"])
    fields = truth.FieldMaker(anat.shape, anat.affine, o["field_fwhm"], anat.brain)
    k_global = 0.0 if null else o["ketamine_global"]
    focal_mean = {"sgACC": o["ketamine_sgacc"], "pgACC": o["ketamine_pgacc"],
                  "dACC": o["ketamine_dacc"]}
    if null:
        focal_mean = {k: 0.0 for k in focal_mean}
    att = o["naltrexone_attenuation"]
    ket_fixed = np.float32(k_global) * base
    int_fixed = np.zeros(anat.shape, np.float32)
    for roi in focal_mean:
        ket_fixed = ket_fixed + np.float32(focal_mean[roi] * (1 - att / 2)) * blobs[roi]
        int_fixed = int_fixed - np.float32(focal_mean[roi] * att) * blobs[roi]
    spec = o["receptor_specificity"]
    r_ket, rec_ket = truth.receptor_effect(anat, {} if null else o["ketamine_receptors"],
                                           ket_fixed, acc=(rois, blobs), specificity=spec)
    r_int, rec_int = truth.receptor_effect(anat, {} if null else o["interaction_receptors"],
                                           int_fixed, acc=(rois, blobs), specificity=spec)
    return Planted(anat, base, blobs, rois, fields, null, k_global, focal_mean, att,
                   ket_fixed, int_fixed, r_ket, r_int, rec_ket, rec_int)


class GroupStats:
    """Running sums of per-subject true deltaCBF maps inside the brain (for t maps)."""

    def __init__(self, mask: np.ndarray):
        self.mask = mask
        self.n = 0
        self.sums = {}

    def add(self, maps: dict[str, np.ndarray]):
        """Add one subject's maps (``{contrast: map}``)."""
        self.n += 1
        for k, v in maps.items():
            x = v[self.mask].astype(np.float64)
            s, ss = self.sums.get(k, (0.0, 0.0))
            self.sums[k] = (s + x, ss + x * x)

    def mean_t(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (mean, one-sample t) of a contrast over the subjects, as mask vectors."""
        s, ss = self.sums[key]
        n = self.n
        mean = s / n
        var = np.maximum(ss / n - mean ** 2, 0) * n / max(n - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(var > 0, mean / np.sqrt(var / n), 0.0)
        return mean, t

    def volume(self, vec: np.ndarray) -> np.ndarray:
        """Return a mask vector as a volume (zero outside the mask)."""
        out = np.zeros(self.mask.shape, np.float32)
        out[self.mask] = vec
        return out


def contrast_maps(deltas: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return one participant's contrast maps from the true deltaCBF map of each arm."""
    return {"ket_placebo": deltas["placebo"], "ket_naltrexone": deltas["naltrexone"],
            "ket_pooled": 0.5 * (deltas["placebo"] + deltas["naltrexone"]),
            "interaction": deltas["naltrexone"] - deltas["placebo"]}


def write_phenotypes(root: Path, truth_rows: list[dict], o: dict,
                     rng: np.random.Generator) -> dict:
    """Draw and write the phenotype tables and ``phenotype_truth.tsv``.

    Returns the planted-correlation record, with the realised r against absolute (not
    relative) CBF added.
    """
    gt = root / "derivatives" / "groundtruth"
    ptruth = pd.DataFrame(truth_rows)
    tables, planted = build_phenotypes(ptruth, o, rng)
    for name, df in tables.items():
        write_tsv(root / "phenotype" / f"{name}.tsv", df)
        write_json(root / "phenotype" / f"{name}.json", write.phenotype_json(name))
    merged = ptruth.copy()
    merged["psi_delusional_thinking"] = tables["psi"]["psi_delusional_thinking"].to_numpy()
    merged["psi_perceptual_distortion"] = tables["psi"]["psi_perceptual_distortion"].to_numpy()
    merged["madrs_improvement"] = (tables["madrs"]["madrs_baseline"]
                                   - tables["madrs"]["madrs_day1"]).to_numpy()
    merged["qids_sr_improvement"] = (tables["qids_sr"]["qids_sr_baseline"]
                                     - tables["qids_sr"]["qids_sr_day1"]).to_numpy()
    write_tsv(gt / "phenotype_truth.tsv", merged)
    for arm in planted:
        sub = merged[merged["pretreatment"] == arm]
        for score, rec in planted[arm].items():
            absolute = rec["imaging"].replace("_rcbf", "_cbf")
            rec["realised_r_absolute_cbf"] = sdesign.pearson(sub[absolute], sub[score])
    return planted


def write_group_maps(gt: Path, anat: truth.Anatomy, res: int, ket_map: np.ndarray,
                     int_map: np.ndarray) -> None:
    """Write the planted ketamine and interaction effect maps (MNI, truth grid ``res`` mm)."""
    grp = {"space": TEMPLATE_SPACE, "res": res}
    save_nifti(anat.img(ket_map), gt / bids_name({**grp, "desc": "ketamineEffect"}, "cbf"))
    save_nifti(anat.img(int_map), gt / bids_name({**grp, "desc": "interactionEffect"}, "cbf"))


def true_group_t(group: GroupStats, anat: truth.Anatomy,
                 rois: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """Return the extreme true t values of each contrast and its sample-mean map.

    The t values are those of the true (noise-free) deltaCBF maps: max and min in each ACC
    ROI and the largest ``|t|`` in GM farther than 25 mm from every ACC centre.
    """
    gm_mask = anat.gm_mask
    far = np.ones(anat.shape, bool)
    for c in ACC_CENTRES_MNI.values():
        far &= np.sum((anat.coords - np.asarray(c, np.float32)) ** 2, axis=-1) > 25.0 ** 2
    tstats, sample_maps = {}, {}
    for key in CONTRASTS:
        mean, t = group.mean_t(key)
        tv = group.volume(t)
        sample_maps[key] = group.volume(mean)
        tstats[key] = {
            **{f"max_t_{roi}": float(tv[m].max()) for roi, m in rois.items()},
            **{f"min_t_{roi}": float(tv[m].min()) for roi, m in rois.items()},
            "max_abs_t_outside_acc": float(np.abs(tv[far & gm_mask]).max()),
        }
    return tstats, sample_maps


def receptor_stats(anat: truth.Anatomy, maps: dict[str, np.ndarray]) -> dict:
    """Voxel Pearson r (receptor mask) and Schaefer-200 parcel Spearman r of effect maps
    with each raw PET map."""
    _, rmask = truth.receptor_zmaps(anat.resolution)
    rmask = rmask & (truth.parcellation(anat.resolution) > 0)
    pet = truth.receptor_maps(anat.resolution)
    labels = truth.parcellation(anat.resolution)
    pet_parcels = {k: truth.parcel_means(v, labels) for k, v in pet.items()}
    out = {}
    for name, m in maps.items():
        if not np.ptp(m[rmask]) > 0:  # a constant map (null dataset): no correlation defined
            out[name] = None
            continue
        mp = truth.parcel_means(m, labels)
        rec = {}
        for k in RECEPTORS:
            ok = np.isfinite(mp) & np.isfinite(pet_parcels[k])
            rec[k] = {
                "voxel_pearson_r": float(np.corrcoef(m[rmask], pet[k][rmask])[0, 1]),
                "parcel_pearson_r": float(np.corrcoef(mp[ok], pet_parcels[k][ok])[0, 1]),
                "parcel_spearman_r": float(stats.spearmanr(mp[ok], pet_parcels[k][ok])[0]),
            }
        out[name] = rec
    return out


def acc_doc(o: dict, model: Planted) -> dict:
    """Return the ``rois`` and ``blobs`` sections of truth.json (the three ACC centres)."""
    att = model.att
    return {
        "rois": {name: {"centre_mni": list(c), "radius_mm": o["roi_radius"],
                        "gm_threshold": truth.GM_THRESHOLD,
                        "n_voxels": int(model.rois[name].sum())}
                 for name, c in ACC_CENTRES_MNI.items()},
        "blobs": {name: {"centre_mni": list(c), "fwhm_mm": o["blob_fwhm"],
                         "mean_amplitude_placebo": model.focal_mean[name],
                         "mean_amplitude_naltrexone": model.focal_mean[name] * (1 - att),
                         "masked_by": "GM probability"}
                  for name, c in ACC_CENTRES_MNI.items()},
    }
