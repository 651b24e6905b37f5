"""Private helpers shared by the loaders: the error class, warnings, provenance, atomic writes, JSON attrs."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multiscale._util import jsonable
from multiscale.errors import CalibrationWarning, LoadError  # noqa: F401 - CalibrationWarning is re-exported to the loaders


def fail(path: Any, field: str, problem: str, fix: str = "") -> LoadError:
    """Build a :class:`LoadError` whose message reads ``<file>: <field>: <problem>; <fix>``."""
    msg = f"{path}: {field}: {problem}"
    if fix:
        msg += f"; {fix}"
    return LoadError(msg)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Issue a warning from a loader (stacklevel pointing at the caller of ``load``)."""
    warnings.warn(message, category, stacklevel=4)


def provenance(path: Any, reader: str, **options: Any) -> dict[str, Any]:
    """Provenance record: source path, reader name, and the options that shaped the result."""
    opts = {k: jsonable(v) for k, v in options.items() if v is not None}
    return {"source": str(path), "reader": reader, "options": opts}


def attrs_to_json(attrs: Mapping[str, Any]) -> str:
    """Serialise an image's attrs to JSON (for formats with a free-text field)."""
    return json.dumps(jsonable(dict(attrs)))


def attrs_from_json(text: str | bytes | None) -> dict[str, Any]:
    """Inverse of :func:`attrs_to_json`; lists of lists become tuples for ``direction``."""
    if not text:
        return {}
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        out = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(out, dict):
        return {}
    if "direction" in out and isinstance(out["direction"], list):
        out["direction"] = tuple(tuple(float(v) for v in row) for row in out["direction"])
    return out


#: attrs that geometry owns: never copied from stored JSON over the file's own geometry
GEOMETRY_KEYS = ("direction", "spacing")


def restore_attrs(stored: Mapping[str, Any], keep_geometry: bool = False) -> dict[str, Any]:
    """Stored attrs to pass to ``spatial_image`` (geometry keys dropped unless ``keep_geometry``)."""
    out = dict(stored)
    if not keep_geometry:
        for k in GEOMETRY_KEYS:
            out.pop(k, None)
    return out


def length_unit_to_mm(unit: str | None, path: Any = "", field: str = "unit") -> float | None:
    """Factor converting a length unit name (OME, NGFF, ImageJ spellings) to millimetres.

    Returns None for "pixel"/empty (no calibration); raises :class:`LoadError` for unknown names.
    """
    if unit is None:
        return None
    u = str(unit).strip().replace("\\u00B5", "µ").replace("\u03bc", "µ")
    key = u.lower()
    table = {
        "m": 1e3, "meter": 1e3, "metre": 1e3,
        "cm": 10.0, "centimeter": 10.0, "centimetre": 10.0,
        "mm": 1.0, "millimeter": 1.0, "millimetre": 1.0,
        "µm": 1e-3, "um": 1e-3, "micron": 1e-3, "microns": 1e-3, "micrometer": 1e-3, "micrometre": 1e-3,
        "nm": 1e-6, "nanometer": 1e-6, "nanometre": 1e-6,
        "pm": 1e-9, "picometer": 1e-9,
        "å": 1e-7, "angstrom": 1e-7,
        "inch": 25.4, "in": 25.4,
    }
    if key in ("", "pixel", "pixels", "px", "none"):
        return None
    if key in table:
        return table[key]
    raise fail(path, field, f"unknown length unit {unit!r}", "use one of m, cm, mm, µm, nm, or pass spacing=")


def tempdir_for(path: str | os.PathLike) -> Path:
    """A scratch folder next to ``path`` (same file system, so renames are atomic)."""
    parent = Path(path).parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".ms-", dir=parent))
