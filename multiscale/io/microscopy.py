"""Microscopy images: TIFF / OME-TIFF / ImageJ (:mod:`multiscale.io.tiff`) and PNG / JPEG
(:mod:`multiscale.io.png`, :mod:`multiscale.io.jpeg`, sharing :mod:`multiscale.io._plain`).

This module keeps the old import paths (``multiscale.io.microscopy.read_tiff`` ...) working.
"""

from __future__ import annotations

from ._plain import read_plain_image
from .tiff import ATTRS_TAG, read_tiff, write_ome_tiff

__all__ = ["read_tiff", "read_plain_image", "write_ome_tiff", "ATTRS_TAG"]
