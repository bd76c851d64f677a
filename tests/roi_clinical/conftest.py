"""Synthetic stage-4 data shared by the roi_clinical tests (as fixtures returning builders)."""

import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.study import ARMS


def _bivariate(n, rho, rng):
    z = rng.standard_normal((2, n))
    return z[0], rho * z[0] + np.sqrt(1 - rho ** 2) * z[1]


def _measures(n=30, rho=(0.7, 0.0), seed=0):
    """Per participant x arm measures with one planted pair per arm."""
    rng = np.random.default_rng(seed)
    rows = []
    for arm, r in zip(ARMS, rho):
        x, y = _bivariate(n, r, rng)
        for i in range(n):
            rows.append({"participant_id": f"sub-{i + 1:02d}", "session_id": f"ses-{1 + (arm == 'naltrexone')}",
                         "arm": arm, "pgACC_delta": x[i], "psi_delusional_thinking": y[i]})
    return pd.DataFrame(rows)


def _roi_values(n=16, interaction=2.0, ketamine=5.0, seed=0, rois_=("pgACC",)):
    """Long ROI table of a balanced crossover with planted ketamine and interaction effects."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pid = f"sub-{i + 1:02d}"
        u = rng.normal(0, 5)
        arms = ("placebo", "naltrexone") if i % 2 == 0 else ("naltrexone", "placebo")
        for period, arm in enumerate(arms, start=1):
            v = rng.normal(0, 2)
            for run, tp in ((1, "pre"), (2, "during")):
                g = 50 + u + v + rng.normal(0, 1)
                for roi in rois_:
                    y = 55 + u + v + (ketamine if tp == "during" else 0) \
                        + (interaction if (tp == "during" and arm == "naltrexone") else 0) + rng.normal(0, 1.5)
                    rows.append({"participant_id": pid, "session_id": f"ses-{period}", "run": str(run),
                                 "arm": arm, "period": str(period), "timepoint": tp, "roi": roi, "cbf": y,
                                 "global_gm_cbf": g, "rcbf": y / g, "n_voxels": 100, "qc_pass": True})
    return pd.DataFrame(rows)


@pytest.fixture
def bivariate():
    """``bivariate(n, rho, rng) -> (x, y)``: standard bivariate normal with correlation rho."""
    return _bivariate


@pytest.fixture
def make_measures():
    """``make_measures(n, rho=(placebo, naltrexone), seed)``: subject measures table."""
    return _measures


@pytest.fixture
def make_roi_values():
    """``make_roi_values(n, interaction, ketamine, seed, rois_)``: long ROI table of a crossover."""
    return _roi_values
