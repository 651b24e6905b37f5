"""A folder of DICOM files: one image series (``series=`` chooses when there are several; ``suv=`` for PET).

Any folder that no earlier format claims (OME-Zarr, a folder of RTSTRUCTs only) is read as DICOM;
the reader says so when it holds no DICOM series.

Examples
--------
>>> FORMAT.sniff(b"", Path("."))
True
"""

from __future__ import annotations

from pathlib import Path

from .dicom import DICOM_OPTIONS, load_dicom
from .format import Format

__all__ = ["FORMAT"]


def _sniff(head: bytes, path: Path) -> bool:
    return path.is_dir()


FORMAT = Format(
    name="dicom-folder",
    sniff=_sniff,
    read=load_dicom,
    options=DICOM_OPTIONS,
    description="folder of DICOM files holding an image series (series=, suv= for PET)",
)
