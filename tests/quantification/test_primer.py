"""The primer's figures plot exactly the formulas of quantification.models (no hand-drawn data)."""

import numpy as np

from ketamine_cbf.quantification import models, primer


def test_the_primer_uses_the_one_set_of_formulas():
    """Twins merged: the primer's physics are the quantifier's functions, not copies."""
    for name in ("kinetic_curve", "whitepaper_cbf", "effective_labelling_efficiency",
                 "m0_recovery_factor", "att_bias", "background_suppression_mz"):
        assert getattr(primer, name) is getattr(models, name), name
    assert primer.m0_recovery_factor(6.0, 1.3) < 1  # the recovered fraction, as in the book


def test_plots_draw_computed_curves():
    """The figures plot exactly the model's values (no hand-drawn data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = primer.plot_kinetic_curves(atts=(1.2,))
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(y, 100 * models.kinetic_curve(x, att=1.2))
    ax2 = primer.plot_att_bias(plds=(1.8,))
    x, y = ax2.lines[0].get_data()
    np.testing.assert_allclose(y, 100 * models.att_bias(x, pld=1.8))
    ax3 = primer.plot_background_suppression()
    x, y = ax3.lines[0].get_data()
    np.testing.assert_allclose(y, models.background_suppression_mz(x, (1.8, 3.18), 1.33))
    plt.close("all")
