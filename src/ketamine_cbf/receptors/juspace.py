"""Subject level, as JuSpace does: each subject's ΔCBF map against each PET map.

The analysis of JuSpace :footcite:p:`dukart2021`. For each subject, ``z = arctanh(r)`` of
its parcellated map with the PET map; across subjects a one-sample t-test of ``z`` against 0
(JuSpace's default), and JuSpace's spatial-null test of the mean z: the mean z recomputed
with each null map of the PET map in place of the PET map (the same null map for every
subject), two-sided with the +1 correction (:func:`ketamine_cbf.stattools.monte_carlo_p`).

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.receptors import _docs  # noqa: F401  (registers stage 5's parameter texts)
from ketamine_cbf.receptors._utils import common_parcels, standardise, with_fdr
from ketamine_cbf.receptors.nulls import correlate
from ketamine_cbf.stattools import monte_carlo_p

__all__ = ["TEST_COLUMNS", "subject_correlations", "subject_level_tests", "summary_table"]

#: Columns of :func:`subject_level_tests`, in order.
TEST_COLUMNS = ["contrast", "receptor", "method", "test", "n_subjects", "mean_r", "mean_z",
                "sd_z", "t", "p", "p_fdr", "significant"]


@fill_doc
def subject_correlations(subject_maps: pd.DataFrame, pet: pd.DataFrame,
                         method: str = "spearman") -> pd.DataFrame:
    """Each subject map vs each PET map: r and Fisher z (JuSpace).

    Parameters
    ----------
    %(receptors.subject_maps)s
    %(receptors.pet)s
    %(receptors.method)s

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``contrast``, ``receptor``, ``method``, ``n_parcels``,
        ``r``, ``z`` (``arctanh(r)``).
    """
    parcels = common_parcels(subject_maps.T, pet)
    S = subject_maps[parcels].to_numpy(float)
    P = pet.loc[parcels].to_numpy(float)
    r = correlate(S, P.T, method)
    idx = subject_maps.index
    rows = pd.DataFrame({
        "participant_id": np.repeat(idx.get_level_values(0), P.shape[1]),
        "contrast": np.repeat(idx.get_level_values(1), P.shape[1]),
        "receptor": np.tile(list(pet.columns), len(idx)),
        "method": method, "n_parcels": len(parcels),
        "r": r.ravel(),
    })
    rows["z"] = np.arctanh(np.clip(rows["r"], -0.999999, 0.999999))
    return rows


@fill_doc
def subject_level_tests(subject_maps: pd.DataFrame, pet: pd.DataFrame, pet_nulls: dict | None = None,
                        method: str = "spearman", fdr_alpha: float = 0.05) -> pd.DataFrame:
    """JuSpace subject-level test of map-to-PET correspondence, per contrast and PET map.

    The subject-level test of JuSpace :footcite:p:`dukart2021`. Because every subject map
    shares the same spatial structure, the t-test of the subjects' Fisher z answers "is the
    correlation consistently non-zero", not "is it more than spatial autocorrelation
    explains"; the spatial-null p (JuSpace option "compare against null distribution of
    correlation coefficients") answers the second.

    Parameters
    ----------
    %(receptors.subject_maps)s
    %(receptors.pet)s
    pet_nulls : dict, optional
        ``(PET map, model) -> (n, N)`` null maps of the PET maps on ``pet.index``.
    %(receptors.method)s
    %(fdr_alpha)s

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TEST_COLUMNS`: ``test`` is ``t`` or a null model, ``p_fdr`` BH
        across PET maps within contrast, method and test.

    References
    ----------
    .. footbibliography::
    """
    parcels = common_parcels(subject_maps.T, pet)
    per = subject_correlations(subject_maps[parcels], pet.loc[parcels], method)
    null_mean_z = _null_mean_z(subject_maps[parcels], pet_nulls or {},
                               pet.index.get_indexer(parcels), method)
    rows = []
    for c in dict.fromkeys(subject_maps.index.get_level_values(1)):
        sub = per[per["contrast"] == c]
        for rec in pet.columns:
            rows.extend(_tests(c, rec, sub[sub["receptor"] == rec], method, null_mean_z))
    out = with_fdr(pd.DataFrame(rows), ["contrast", "method", "test"], fdr_alpha)
    return out[TEST_COLUMNS]


def _null_mean_z(subject_maps: pd.DataFrame, pet_nulls: dict, pos, method) -> dict:
    """``(contrast, PET map, model) -> (n,)`` mean Fisher z of the subjects with each null map."""
    contrasts = list(dict.fromkeys(subject_maps.index.get_level_values(1)))
    # subject maps, standardised (ranked first for Spearman), per contrast
    Zs = {c: standardise(subject_maps.xs(c, level=1).to_numpy(float), method) for c in contrasts}
    out = {}
    for (rec, model), nm in pet_nulls.items():
        Zn = standardise(np.asarray(nm)[:, pos], method)
        for c in contrasts:
            nr = np.clip(Zs[c] @ Zn.T, -0.999999, 0.999999)        # (subjects, n)
            out[(c, rec, model)] = np.arctanh(nr).mean(axis=0)
    return out


def _tests(contrast, receptor, per, method, null_mean_z) -> list[dict]:
    """The t-test row and one row per null model of one contrast and PET map."""
    z, r = per["z"].to_numpy(), per["r"].to_numpy()
    t, p = stats.ttest_1samp(z, 0.0)
    base = {"contrast": contrast, "receptor": receptor, "method": method, "n_subjects": z.size,
            "mean_r": r.mean(), "mean_z": z.mean(), "sd_z": z.std(ddof=1), "t": t}
    rows = [{**base, "test": "t", "p": p}]
    for (c, rec, model), nz in null_mean_z.items():
        if c == contrast and rec == receptor:
            rows.append({**base, "test": model, "p": monte_carlo_p(z.mean(), nz)})
    return rows


def summary_table(tests: pd.DataFrame) -> pd.DataFrame:
    """Mean r and t of each contrast and PET map, with the FDR q of the t-test and of each null test.

    Parameters
    ----------
    tests : pandas.DataFrame
        :func:`subject_level_tests` output (one method).

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``receptor``, ``mean_r``, ``t``, ``p_fdr_<test>`` per test.
    """
    wide = tests.pivot_table(index=["contrast", "receptor"], columns="test", values="p_fdr", sort=False)
    return (tests[tests["test"] == "t"].set_index(["contrast", "receptor"])[["mean_r", "t"]]
            .join(wide.add_prefix("p_fdr_")).rename_axis(columns=None).reset_index())
