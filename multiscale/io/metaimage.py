"""MetaImage (.mha, or a .mhd header with its .raw/.zraw data file) through SimpleITK.

Examples
--------
>>> FORMAT.sniff(b"ObjectType = Image NDims = 3 DimSize = 2 3 4", Path("a.mha"))
True
"""

from __future__ import annotations

from pathlib import Path

from ._itk import data_file_companion, read_itk, write_itk
from .format import Format

__all__ = ["FORMAT"]


def _sniff(head: bytes, path: Path) -> bool:
    text = head.decode("latin-1")
    return ("ObjectType" in text or "NDims" in text) and ("ElementType" in text or "DimSize" in text)


def _companions(path: Path) -> list[Path]:
    """A .mhd header's data file (``ElementDataFile``, unless ``LOCAL``)."""
    return data_file_companion(path, ("elementdatafile",), ("local",))


FORMAT = Format(
    name="metaimage",
    sniff=_sniff,
    read=read_itk,
    options=frozenset({"spacing", "modality", "units", "aspect", "agent", "scale"}),
    suffixes=(".mha", ".mhd"),
    description="MetaImage volume (SimpleITK); a .mhd header with its data file",
    companions=_companions,
    write=write_itk,
    write_suffixes=(".mha", ".mhd"),
)
