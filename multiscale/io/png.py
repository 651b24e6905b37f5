"""PNG (Pillow): ``(y, x)`` or RGB(A) ``(c, y, x)``, uncalibrated unless ``spacing=`` is given.

Examples
--------
>>> FORMAT.sniff(bytes.fromhex("89504e470d0a1a0a"), Path("a.png"))
True
"""

from __future__ import annotations

from pathlib import Path

from ._plain import read_plain_image
from .format import Format

__all__ = ["FORMAT"]


def _sniff(head: bytes, path: Path) -> bool:
    return head.startswith(b"\x89PNG\r\n\x1a\n")


FORMAT = Format(
    name="png",
    sniff=_sniff,
    read=read_plain_image,
    options=frozenset({"spacing", "modality", "aspect", "agent", "scale"}),
    suffixes=(".png",),
    description="PNG picture (Pillow; pass spacing= in mm)",
)
