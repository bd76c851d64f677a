"""Anterior cingulate regions of interest (sgACC, pgACC, dACC) in MNI space.

PROVISIONAL (owned by the stage-4 issue, which must verify and cite these centres):
the simulation plants its ACC effects as blobs centred here, and stage 4 defines its
masks independently (atlas and/or published coordinates).
"""

#: Provisional centres (MNI mm) of the three ACC subregions; midline, covering both
#: hemispheres' medial cortex. To be verified against the literature in stage 4.
ACC_CENTRES_MNI = {
    "sgACC": (0.0, 24.0, -10.0),
    "pgACC": (0.0, 42.0, 4.0),
    "dACC": (0.0, 18.0, 34.0),
}
