"""Loaders and writers: every file becomes the image object (:mod:`multiscale.image`).

``load(path, **options)`` dispatches by content; ``save(image, path)`` writes by suffix,
atomically; ``read_imzml(path)`` opens mass-spectrometry imaging data lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load", "save", "read_imzml", "MSIDataset", "LoadError", "CalibrationWarning", "ImzMLError", "ImzMLWarning"]

_LAZY = {
    "load": "multiscale.io.dispatch",
    "save": "multiscale.io.dispatch",
    "read_imzml": "multiscale.io.imzml",
    "MSIDataset": "multiscale.io.imzml",
    "LoadError": "multiscale.io.dispatch",
    "CalibrationWarning": "multiscale.io.dispatch",
    "ImzMLError": "multiscale.io.imzml",
    "ImzMLWarning": "multiscale.io.imzml",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'multiscale.io' has no attribute {name!r}")
