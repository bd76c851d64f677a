"""Tests of ketamine_cbf.receptors.figures: every figure draws from the stage's tables."""

import pytest

from ketamine_cbf.display import save_figure
from ketamine_cbf.receptors import dominance, false_positives, figures, maps


@pytest.fixture(autouse=True)
def _agg():
    import matplotlib
    matplotlib.use("Agg")


def test_figures(study, group_analysis, tmp_path):
    t, g, pet = group_analysis["table"], group_analysis["group"], study["pet"]
    pr, mo = dominance.dominance_tables(g, pet, group_analysis["nulls"], "spearman")
    S, al = false_positives.random_smooth_maps(study["atlas"], 4, [0.0, 2.0], seed=1)
    per = false_positives.false_positive_rates(S, pet["MOR"].to_numpy(), group_analysis["D"], ("moran",), 20,
                                               labels=al, seed=1)
    figs = [figures.plot_correlations(t),
            figures.plot_null_distributions(group_analysis["null_r"], t, "interaction"),
            figures.plot_scatter(g, pet, [("interaction", "MOR")], study["atlas"].table, t),
            figures.plot_scatter(g, pet, []),
            figures.plot_variograms(g["interaction"], {"moran": group_analysis["nulls"][("interaction", "moran")]},
                                    group_analysis["D"]),
            figures.plot_dominance(pr, mo),
            figures.plot_false_positive_rates(false_positives.summarise_false_positives(per, by=("label", "test"))),
            figures.plot_brain_maps(maps.load_pet_maps(study["mask"], ["MOR", "KOR"]))]
    for k, f in enumerate(figs):
        save_figure(f, tmp_path / f"{k}.png")
        assert (tmp_path / f"{k}.png").stat().st_size > (1000 if k == 3 else 5000)  # 3: a sentence only
