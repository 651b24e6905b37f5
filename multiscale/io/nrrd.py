"""NRRD (.nrrd, or a .nhdr header with its data file) through SimpleITK.

Examples
--------
>>> FORMAT.sniff(b"NRRD0004", Path("a.nrrd"))
True
"""

from __future__ import annotations

from pathlib import Path

from ._itk import data_file_companion, read_itk, write_itk
from .format import Format

__all__ = ["FORMAT"]


def _sniff(head: bytes, path: Path) -> bool:
    return head.startswith(b"NRRD")


def _companions(path: Path) -> list[Path]:
    """A detached header's (.nhdr) data file."""
    return data_file_companion(path, ("data file", "datafile"), ())


FORMAT = Format(
    name="nrrd",
    sniff=_sniff,
    read=read_itk,
    options=frozenset({"spacing", "modality", "units", "aspect", "agent", "scale"}),
    suffixes=(".nrrd", ".nhdr"),
    description="NRRD volume (SimpleITK); a .nhdr header with its data file",
    companions=_companions,
    write=write_itk,
    write_suffixes=(".nrrd", ".nhdr"),
)
