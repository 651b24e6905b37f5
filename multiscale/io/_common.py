"""Private helpers shared by the loaders: the error class, warnings, provenance, atomic writes, JSON attrs."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
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


#: warnings issued by the loader running in this context (see :func:`recording_warnings`)
_RECORDED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("multiscale_io_warnings", default=None)

#: attrs key holding the warnings a loader issued while reading the image (a list of str)
WARNINGS_KEY = "warnings"


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Issue a warning from a loader (stacklevel pointing at the caller of ``load``).

    While a :func:`recording_warnings` block is active (every :func:`multiscale.io.load`), the
    message is also recorded, and ends in the image's ``attrs["warnings"]``.
    """
    record(message)
    warnings.warn(message, category, stacklevel=4)


def record(message: str) -> None:
    """Record ``message`` for the image being loaded (no warning issued); ignored outside a load."""
    sink = _RECORDED.get()
    if sink is not None and message not in sink:
        sink.append(str(message))


@contextlib.contextmanager
def recording_warnings() -> Iterator[list[str]]:
    """Collect the messages of :func:`warn` issued inside the block (nested blocks share the outer list).

    Context-local (a :mod:`contextvars` variable), so loads running in several threads do not mix
    their warnings; Python's own ``warnings.catch_warnings`` is process-global and is not used.
    """
    sink = _RECORDED.get()
    if sink is not None:
        yield sink
        return
    sink = []
    token = _RECORDED.set(sink)
    try:
        yield sink
    finally:
        _RECORDED.reset(token)


def attach_warnings(image: Any, messages: list[str]) -> Any:
    """Append ``messages`` to ``image.attrs["warnings"]`` (created only when there is something to record)."""
    attrs = getattr(image, "attrs", None)
    if attrs is None or not messages:
        return image
    have = list(attrs.get(WARNINGS_KEY) or [])
    have += [m for m in messages if m not in have]
    attrs[WARNINGS_KEY] = have
    return image


# --- size caps ----------------------------------------------------------------------------------

#: default cap on the voxels a reader allocates in memory at once (2**31, about 2.1e9 voxels: 8.6 GB as float32)
DEFAULT_MAX_VOXELS = 2**31

#: the largest expansion zlib/deflate can achieve (1032:1), with some slack: a compressed stream of N
#: bytes cannot hold more than this times N bytes of data
DEFLATE_MAX_RATIO = 1100

_MAX_VOXELS_OPTION: contextvars.ContextVar[int | None] = contextvars.ContextVar("multiscale_io_max_voxels",
                                                                                 default=None)


def max_voxels() -> int:
    """The cap on voxels a reader may allocate: ``load(max_voxels=)``, else ``multiscale.io.MAX_VOXELS``, else
    the environment variable ``MULTISCALE_MAX_VOXELS``, else :data:`DEFAULT_MAX_VOXELS`."""
    opt = _MAX_VOXELS_OPTION.get()
    if opt is not None:
        return int(opt)
    import sys

    pkg = sys.modules.get("multiscale.io")
    val = getattr(pkg, "MAX_VOXELS", None) if pkg is not None else None
    if val is not None:
        return int(val)
    env = os.environ.get("MULTISCALE_MAX_VOXELS", "").strip()
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise LoadError(f"MULTISCALE_MAX_VOXELS: {env!r} is not a number; set it to a voxel count, "
                            "e.g. 4294967296") from None
    return DEFAULT_MAX_VOXELS


@contextlib.contextmanager
def voxel_cap(value: int | None) -> Iterator[None]:
    """Use ``value`` as :func:`max_voxels` inside the block (None: leave the setting alone)."""
    if value is None:
        yield
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise TypeError(f"max_voxels= must be a positive number of voxels, got {value!r}")
    token = _MAX_VOXELS_OPTION.set(int(value))
    try:
        yield
    finally:
        _MAX_VOXELS_OPTION.reset(token)


def check_voxels(path: Any, field: str, shape: Any, what: str = "the image") -> int:
    """Raise a :class:`LoadError` when ``shape`` (declared sizes) is negative or exceeds :func:`max_voxels`.

    Call it before allocating. Returns the voxel count (a Python int: no overflow).
    """
    dims = [int(v) for v in shape]
    if any(v < 0 for v in dims):
        raise fail(path, field, f"negative size {dims}", "the header is corrupt; repair or re-export the file")
    n = 1
    for v in dims:
        n *= v
    cap = max_voxels()
    if n > cap:
        raise fail(path, field, f"{what} declares {' x '.join(map(str, dims))} = {n:.3g} voxels, more than the "
                   f"cap of {cap:.3g} (multiscale.io.MAX_VOXELS)",
                   "if the file is genuine, raise the cap: load(..., max_voxels=N), multiscale.io.MAX_VOXELS = N "
                   "or the environment variable MULTISCALE_MAX_VOXELS; otherwise the header is corrupt")
    return n


def check_fits(path: Any, field: str, need_bytes: int, have_bytes: int, compressed: bool = False) -> None:
    """Raise a :class:`LoadError` when ``have_bytes`` on disk cannot hold ``need_bytes`` of data.

    ``compressed``: the data is deflate/zlib/gzip-compressed, which expands at most
    :data:`DEFLATE_MAX_RATIO` times.
    """
    limit = have_bytes * DEFLATE_MAX_RATIO if compressed else have_bytes
    if need_bytes > limit:
        how = (f"{have_bytes} compressed bytes, which can expand to at most {limit} bytes" if compressed
               else f"{have_bytes} bytes")
        raise fail(path, field, f"truncated or corrupt: the header declares {need_bytes} bytes of data but the "
                   f"file holds {how}", "copy the file again; if the header is wrong, repair it")


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
