"""Masks: label images (NIfTI/NRRD/MHA), DICOM RTSTRUCT contours and DICOM SEG frames on a reference grid.

A mask is an image with ``attrs["aspect"] = "mask"`` and integer labels (0 = background).
The readers live in :mod:`multiscale.io.rtstruct`, :mod:`multiscale.io.seg` and
:mod:`multiscale.io._labels`; this module gathers them (and keeps the old import paths working).
Imports go one way: ``masks -> dispatch -> formats -> rtstruct/seg``, ``dispatch -> _labels``.
"""

from __future__ import annotations

import os
from typing import Any

import xarray as xr

from ._labels import as_label_image, match_grid
from .dispatch import load
from .rtstruct import list_rois, rasterize_contours, read_rtstruct
from .seg import read_dicom_seg

__all__ = ["read_label_image", "as_label_image", "read_rtstruct", "read_dicom_seg", "list_rois", "rasterize_contours",
           "match_grid"]


def read_label_image(
    path: str | os.PathLike,
    *,
    reference: xr.DataArray | None = None,
    resample: bool = False,
    **options: Any,
) -> xr.DataArray:
    """Read a label image (NIfTI, NRRD, MHA/MHD) as an integer mask, checked against ``reference``'s grid.

    Examples
    --------
    >>> mask = read_label_image("CT_mask.nii.gz", reference=ct)  # doctest: +SKIP
    >>> mask.attrs["aspect"]  # doctest: +SKIP
    'mask'
    """
    img = load(path, **options)
    return as_label_image(img, path, reference=reference, resample=resample)
