"""JPEG (Pillow): ``(y, x)`` or RGB ``(c, y, x)``, uncalibrated unless ``spacing=`` is given.

Examples
--------
>>> FORMAT.sniff(bytes.fromhex("ffd8ffe0"), Path("a.jpg"))
True
"""

from __future__ import annotations

from pathlib import Path

from ._plain import read_plain_image
from .format import Format

__all__ = ["FORMAT"]


def _sniff(head: bytes, path: Path) -> bool:
    return head.startswith(b"\xff\xd8\xff")


FORMAT = Format(
    name="jpeg",
    sniff=_sniff,
    read=read_plain_image,
    options=frozenset({"spacing", "modality", "aspect", "agent", "scale"}),
    suffixes=(".jpg", ".jpeg"),
    description="JPEG picture (Pillow; pass spacing= in mm)",
)
