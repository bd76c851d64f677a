"""Tests of ketamine_cbf.receptors.dominance: regression on all PET maps, dominance analysis."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.receptors import dominance


def test_dominance_against_statsmodels(study, group_analysis):
    import statsmodels.api as sm

    pet, y = study["pet"], group_analysis["group"]["ket_pooled"]
    pr, mo = dominance.dominance_analysis(y, pet, {"moran": group_analysis["nulls"][("ket_pooled", "moran")]},
                                          method="pearson")
    Z = (pet - pet.mean()) / pet.std(ddof=0)
    yz = (y - y.mean()) / y.std(ddof=0)
    fit = sm.OLS(yz.to_numpy(), sm.add_constant(Z.to_numpy())).fit()
    naive = mo[mo.null_model == "naive"].iloc[0]
    assert naive.r2 == pytest.approx(fit.rsquared) and naive.adj_r2 == pytest.approx(fit.rsquared_adj)
    assert naive.p == pytest.approx(fit.f_pvalue)
    b = pr[pr.null_model == "naive"].set_index("predictor")
    np.testing.assert_allclose(b.beta, fit.params[1:], rtol=1e-6)
    np.testing.assert_allclose(b.p_beta, fit.pvalues[1:], rtol=1e-6)
    # general dominance by brute force over subsets (statsmodels), and sum = R^2
    names = list(pet.columns)
    r2 = {(): 0.0}
    for k in range(1, 7):
        for S in combinations(names, k):
            r2[S] = sm.OLS(y.to_numpy(), sm.add_constant(pet[list(S)].to_numpy())).fit().rsquared
    for i in names:
        others = [n for n in names if n != i]
        ck = [np.mean([r2[tuple(sorted(S + (i,), key=names.index))] - r2[S] for S in combinations(others, k)])
              for k in range(6)]
        assert b.loc[i, "dominance"] == pytest.approx(np.mean(ck), abs=1e-10)
    assert b.dominance.sum() == pytest.approx(fit.rsquared)
    assert pr[pr.null_model == "moran"].p_dominance.between(1 / 1001, 1).all()


def test_dominance_orthogonal_predictors():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((100, 3)) - 0)
    X = pd.DataFrame(Q - Q.mean(0), columns=list("abc"))
    y = X @ np.array([3.0, 1.0, 0.0]) + 0.1 * rng.standard_normal(100)
    pr, mo = dominance.dominance_analysis(y, X, method="pearson")
    r = np.array([stats.pearsonr(X[c], y)[0] for c in X])
    np.testing.assert_allclose(pr.dominance, r ** 2, atol=1e-3)
    with pytest.raises(InputError, match="too few"):
        dominance.dominance_analysis(y[:4], X.iloc[:4])
    with pytest.raises(InputError, match="NaN"):
        dominance.dominance_analysis(y.where(y > y.min()), X)
    with pytest.raises(UsageError, match="method"):
        dominance.dominance_analysis(y, X, method="kendall")


def test_dominance_tables_and_summaries(study, group_analysis):
    pet, group, gn = study["pet"], group_analysis["group"], group_analysis["nulls"]
    pr, mo = dominance.dominance_tables(group, pet, gn, "spearman")
    assert list(dict.fromkeys(pr.contrast)) == list(group.columns) and pr.columns[-1] == "contrast"
    one, _ = dominance.dominance_analysis(group["interaction"], pet,
                                          {m: gn[("interaction", m)] for m in ("variogram", "moran")})
    pd.testing.assert_frame_equal(pr[pr.contrast == "interaction"].drop(columns="contrast")
                                  .reset_index(drop=True), one)
    ms = dominance.model_summary(mo)
    assert list(ms.columns) == ["contrast", "r2", "adj_r2", "p_naive", "p_variogram", "p_moran"]
    ds = dominance.dominance_summary(pr)
    assert list(ds.columns) == ["contrast", "predictor", "beta", "dominance", "dominance_pct",
                                "p_dominance_variogram", "p_dominance_moran"]
    assert len(ds) == 2 * 6
