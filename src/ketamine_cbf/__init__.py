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

__version__ = "0.1.0"
