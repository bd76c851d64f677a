"""Shared parameter text, written once (nilearn's ``docdict`` / ``fill_doc`` pattern).

A parameter name has one meaning across the package and the stage notebooks; its
description lives here once and is pasted into docstrings by :func:`fill_doc`::

    @fill_doc
    def group_inference(table, mask_img, contrast, n_perm=5000, seed=0):
        \"\"\"...

        Parameters
        ----------
        %(n_perm)s
        %(seed)s
        \"\"\"

Stage packages register their own parameters' text with :func:`register` (in their
``_docs.py``); registering a name twice with another text is an error, so one name cannot
take two meanings. ``tests/test_docs.py`` checks that every notebook parameter that names
one of these entries uses it with the meaning written here.
"""

from __future__ import annotations

__all__ = ["docdict", "fill_doc", "register"]

docdict: dict[str, str] = {}


def register(entries: dict[str, str]) -> None:
    """Add parameter descriptions (``name: "name : type\\n    Text."``) to :data:`docdict`.

    Raises
    ------
    ValueError
        A name is already registered with a different text (one name, one meaning).
    """
    for k, v in entries.items():
        v = v.strip("\n")
        if k in docdict and docdict[k] != v:
            raise ValueError(f"parameter {k!r} is already documented with another meaning")
        docdict[k] = v


def _indent(text: str, indent: str) -> str:
    lines = text.splitlines()
    return "\n".join([lines[0]] + [indent + ln if ln else ln for ln in lines[1:]])


def fill_doc(f):
    """Decorator: fill ``%(name)s`` in ``f.__doc__`` from :data:`docdict`, keeping indentation."""
    doc = f.__doc__
    if not doc:
        return f
    out = []
    for line in doc.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("%(") and stripped.rstrip().endswith(")s"):
            key = stripped.strip()[2:-2]
            if key not in docdict:
                raise KeyError(f"{f.__qualname__}: no shared text for parameter {key!r}")
            indent = line[: len(line) - len(stripped)]
            out.append(indent + _indent(docdict[key], indent))
        else:
            out.append(line)
    f.__doc__ = "\n".join(out)
    return f


register({
    "seed": """seed : int
    Master seed of the study configuration; every random stream of a stage derives from
    it (:func:`ketamine_cbf.stattools.rng`), so the same seed gives the same results.""",
    "bids_dir": """bids_dir : str or Path
    The BIDS-ASL dataset (raw data; read only).""",
    "derivatives_dir": """derivatives_dir : str or Path
    Root of all stage outputs (``<bids_dir>/derivatives/ketamine-cbf`` by default).""",
    "output_dir": """output_dir : str or Path
    This stage's output folder; files are written atomically.""",
    "cache_dir": """cache_dir : str or Path, optional
    Persistent per-stage cache of expensive per-item results, keyed by a hash of their
    inputs, parameters and the stage package's code; None: no cache.""",
    "n_jobs": """n_jobs : int
    Worker processes (0: all CPUs). Results do not depend on it.""",
    "fwhm": """fwhm : float
    Full width at half maximum (mm) of the Gaussian smoothing kernel.""",
    "resolution": """resolution : int
    Voxel size (mm) of the MNI template grid of the analysis.""",
    "n_perm": """n_perm : int
    Random sign flips of the voxelwise permutation test (all ``2**n - 1`` when fewer).""",
    "n_arm_swaps": """n_arm_swaps : int
    Within-participant swaps of the arm labels for the between-arm permutation test.""",
    "n_boot": """n_boot : int
    Bootstrap resamples of the confidence intervals.""",
    "ci_level": """ci_level : float
    Confidence level of every interval (e.g. 0.95).""",
    "fwe_alpha": """fwe_alpha : float
    Family-wise error level of the voxelwise maps, tables and sentences.""",
    "fdr_alpha": """fdr_alpha : float
    Benjamini-Hochberg false discovery rate level, per family of tests.""",
    "global_gm_threshold": """global_gm_threshold : float
    Template grey-matter probability above which voxels enter a scan's global (mean GM)
    CBF.""",
    "mask_gm_threshold": """mask_gm_threshold : float
    Template grey-matter probability from which voxels enter the voxelwise analysis mask.""",
    "roi_gm_threshold": """roi_gm_threshold : float or None
    Minimum template grey-matter probability of ROI voxels (None: no GM restriction).""",
    "contrast": """contrast : str
    A contrast name of :data:`ketamine_cbf.study.CONTRASTS`.""",
    "progress": """progress : bool
    Show a progress bar of the long loop (only when the runner or a terminal asks).""",
})
