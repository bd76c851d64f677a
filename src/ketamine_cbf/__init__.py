"""ketamine-cbf: analysis of arterial spin labelling (ASL) studies of drug effects on CBF.

The package holds every computation of the analysis book; the notebooks in
``notebooks/`` call it and tell the story. Modules, one per concern:

``cli``            the ``ketamine-cbf`` command
``config``         the YAML study configuration and its validation
``runner``         papermill execution of the stage notebooks, skip-if-unchanged
``provenance``     hashes, package versions, atomic writes
``data``           paths to the shipped reference data and their provenance
``errors``         the exceptions whose messages users see
"""

import os as _os

__version__ = "0.1.0"

# ANTs (ITK) registrations are bit-reproducible only when single-threaded, and ITK reads
# this variable once, when it first runs a filter. Stages 1 and 2 pin it before their own
# first ANTs call, but any earlier ANTs call in the process (a caller's, a test's) would fix
# the thread count first, so the package pins it on import.
_os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
