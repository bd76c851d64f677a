"""Stage 5's inputs on the analysis grid: PET maps, ΔCBF maps of stage 3, parcellated.

The six PET receptor density maps (:data:`ketamine_cbf.study.RECEPTORS`, files in
:data:`ketamine_cbf.reference.paths.RECEPTOR_FILES`) are resampled to the analysis grid
and averaged within the parcels of the atlas (:mod:`ketamine_cbf.receptors.parcellate`);
stage 3's subject ΔCBF maps are found through :func:`ketamine_cbf.io.derivatives.read_contrasts`
and parcellated the same way. Small tables the stage notebook shows (maps per contrast,
the correlations between PET maps) are built here too.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pandas as pd

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.imaging import load_image
from ketamine_cbf.io.derivatives import read_contrasts
from ketamine_cbf.receptors.parcellate import Atlas, parcel_means
from ketamine_cbf.reference.paths import load_receptor_map
from ketamine_cbf.study import CONTRASTS, RECEPTORS

__all__ = ["RECEPTORS", "load_pet_maps", "parcellate_pet", "subject_maps_table",
           "subject_map_counts", "subject_parcel_maps", "parcellated_table", "pet_correlations"]


def load_pet_maps(target_img, names=RECEPTORS) -> dict[str, nib.Nifti1Image]:
    """Load the shipped PET maps resampled (linear) to the analysis grid.

    Parameters
    ----------
    target_img : str, Path or Nifti1Image
        Image defining the analysis grid.
    names : sequence of str
        Names of :data:`ketamine_cbf.study.RECEPTORS`.

    Returns
    -------
    dict
        name -> Nifti1Image (density in the units distributed; 0 outside the PET field
        of view).

    Raises
    ------
    UsageError
        An unknown receptor name.
    """
    target = load_image(target_img, "target image", dtype=None, nonfinite_to_zero=False)
    unknown = [n for n in names if n not in RECEPTORS]
    if unknown:
        raise UsageError(f"unknown receptor map(s) {', '.join(unknown)}; choose from {', '.join(RECEPTORS)}")
    return {n: load_receptor_map(n, target) for n in names}


def parcellate_pet(pet_imgs: dict, atlas: Atlas) -> pd.DataFrame:
    """Parcel means of PET maps (zeros = outside the field of view are ignored).

    Parameters
    ----------
    pet_imgs : dict
        name -> image (:func:`load_pet_maps`).
    atlas : ketamine_cbf.receptors.parcellate.Atlas

    Returns
    -------
    pandas.DataFrame
        Index parcel names, one column per PET map.
    """
    return parcel_means(pet_imgs, atlas, ignore_zero=True)


def subject_maps_table(voxelwise_dir, contrasts) -> pd.DataFrame:
    """Stage 3's subject ΔCBF maps of ``contrasts`` (``voxelwise/contrasts.tsv``), checked.

    Parameters
    ----------
    voxelwise_dir : str or Path
        Output folder of stage 03.
    contrasts : list of str
        Contrasts to keep (names of :data:`ketamine_cbf.study.CONTRASTS`).

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``contrast``, ``path`` (absolute) and any other columns.

    Raises
    ------
    InputError
        From :func:`~ketamine_cbf.io.derivatives.read_contrasts` (missing file or column,
        an unknown contrast in the file, a map file that does not exist), or no rows for
        the contrasts.
    UsageError
        An unknown contrast name in ``contrasts``.
    """
    table = read_contrasts(voxelwise_dir)
    bad = [c for c in contrasts if c not in CONTRASTS]
    if bad:
        raise UsageError(f"unknown contrast(s) {', '.join(bad)}; choose from {', '.join(CONTRASTS)}")
    table = table[table["contrast"].isin(contrasts)]
    if table.empty:
        raise InputError(f"{Path(voxelwise_dir) / 'contrasts.tsv'}: no rows for the requested contrasts")
    table = table.assign(path=[str(Path(p).resolve()) for p in table["abspath"]]).drop(columns="abspath")
    return table.reset_index(drop=True)


def subject_map_counts(subjects: pd.DataFrame) -> pd.DataFrame:
    """Number of subject maps per contrast, in table order.

    Parameters
    ----------
    subjects : pandas.DataFrame
        :func:`subject_maps_table` output.

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``subject_maps``.
    """
    return subjects.groupby("contrast", sort=False).size().rename("subject_maps").reset_index()


def subject_parcel_maps(subjects: pd.DataFrame, atlas: Atlas, parcels) -> pd.DataFrame:
    """Parcel means of every subject map, one row per map.

    Parameters
    ----------
    subjects : pandas.DataFrame
        :func:`subject_maps_table` output.
    atlas : ketamine_cbf.receptors.parcellate.Atlas
    parcels : sequence of str
        Parcels to keep, in this order.

    Returns
    -------
    pandas.DataFrame
        Index ``(participant_id, contrast)``, one column per parcel.
    """
    maps = parcel_means(list(subjects["path"]), atlas)
    maps = maps.T.set_axis(pd.MultiIndex.from_frame(subjects[["participant_id", "contrast"]]))
    return maps.loc[:, parcels]


def parcellated_table(atlas: Atlas, pet: pd.DataFrame, group: pd.DataFrame) -> pd.DataFrame:
    """The atlas table of the analysed parcels with their PET and group ΔCBF values.

    Parameters
    ----------
    atlas : ketamine_cbf.receptors.parcellate.Atlas
    pet : pandas.DataFrame
        Parcellated PET maps of the analysed parcels.
    group : pandas.DataFrame
        Parcellated group ΔCBF maps of the same parcels.

    Returns
    -------
    pandas.DataFrame
        ``name`` and the atlas columns, one column per PET map, ``deltacbf_<contrast>``
        per group map.
    """
    return (atlas.table.set_index("name").loc[pet.index].join(pet)
            .join(group.add_prefix("deltacbf_")).reset_index())


def pet_correlations(pet: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlations between the PET maps across parcels.

    Parameters
    ----------
    pet : pandas.DataFrame
        Parcels x PET maps.

    Returns
    -------
    pandas.DataFrame
        ``receptor`` and one column per PET map.
    """
    return pet.corr(method="spearman").rename_axis(index="receptor", columns=None).reset_index()
