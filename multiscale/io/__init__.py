"""Loaders and writers: every file becomes the image object (:mod:`multiscale.image`).

``load(path, **options)`` dispatches by content; ``save(image, path)`` writes by suffix,
atomically; ``read_imzml(path)`` opens mass-spectrometry imaging data lazily.

The formats are the entries of :data:`FORMATS` (:mod:`multiscale.io.formats`), each a
:class:`Format`; ``sniff(path)`` names the one a file holds, ``companions(path)`` lists the files
that belong with it (an imzML's ``.ibd``), ``format_named(name)`` and ``formats_table()`` look
them up.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load", "save", "sniff", "companions", "describe", "FORMATS", "Format", "format_named", "formats_table",
           "read_imzml", "MSIDataset", "LoadError", "CalibrationWarning", "ImzMLError", "ImzMLWarning"]

_LAZY = {
    "load": "multiscale.io.dispatch",
    "save": "multiscale.io.dispatch",
    "sniff": "multiscale.io.dispatch",
    "companions": "multiscale.io.dispatch",
    "describe": "multiscale.io.info",
    "FORMATS": "multiscale.io.formats",
    "Format": "multiscale.io.format",
    "format_named": "multiscale.io.formats",
    "formats_table": "multiscale.io.formats",
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
