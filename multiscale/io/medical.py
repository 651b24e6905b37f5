"""Medical volumes: NIfTI (:mod:`multiscale.io.nifti`) and NRRD / MHA / MHD (:mod:`multiscale.io.nrrd`,
:mod:`multiscale.io.metaimage`, sharing :mod:`multiscale.io._itk`).

This module keeps the old import paths (``multiscale.io.medical.read_nifti`` ...) working.
"""

from __future__ import annotations

from ._itk import read_itk, write_itk
from .nifti import LPS_FROM_RAS, read_nifti, write_nifti

__all__ = ["read_nifti", "write_nifti", "read_itk", "write_itk", "LPS_FROM_RAS"]
