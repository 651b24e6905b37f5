"""What a file holds, without reading its voxels: the backend of ``multiscale info FILE``.

:func:`describe` loads the file lazily with :func:`multiscale.io.load` and reports its geometry and
attrs; :func:`format_info` turns that into the text the CLI prints.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from multiscale.image import direction, is_spatial_image, origin, spacing, spatial_dims

from .dispatch import load, sniff_format

__all__ = ["describe", "format_info", "size_on_disk"]


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes used by a file, or by all files under a folder.

    Examples
    --------
    >>> size_on_disk(__file__) > 0
    True
    """
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def describe(path: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """Describe a loadable file: kind, modality, dims, shape, spacing, origin, direction, units, channels, size, warnings.

    Parameters
    ----------
    path : path-like
    **options
        Passed to :func:`multiscale.io.load` (e.g. ``series=``, ``channels=``). A format with a
        ``summary`` (RTSTRUCT: contours without a grid) is summarised instead when no
        ``reference=`` is given.

    Returns
    -------
    dict
        Keys ``path``, ``format``, ``modality``, ``dims``, ``shape``, ``dtype``, ``spacing`` (mm, per
        spatial dim), ``spacing_known``, ``origin``, ``direction``, ``units``, ``channels``,
        ``size_on_disk`` (bytes), ``warnings`` (list of str), ``reader``.

    Examples
    --------
    >>> d = describe("CT_image.nii.gz")  # doctest: +SKIP
    >>> d["dims"], d["units"]  # doctest: +SKIP
    (('z', 'y', 'x'), '')
    """
    fmt = sniff_format(path)
    kind = fmt.name
    if fmt.summary is not None and options.get("reference") is None:
        out: dict[str, Any] = {"path": str(path), "format": kind}
        out.update(fmt.summary(Path(path)))
        out["size_on_disk"] = size_on_disk(path)
        out["warnings"] = list(out.pop("warnings", []))
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = load(path, **options)
    msgs = [str(w.message) for w in caught]
    out = {"path": str(path), "format": kind, "size_on_disk": size_on_disk(path)}
    if not is_spatial_image(img):
        out.update({"dims": tuple(getattr(img, "dims", ())), "shape": tuple(getattr(img, "shape", ())),
                    "warnings": msgs})
        return out
    sd = spatial_dims(img)
    channels = None
    if "c" in img.dims:
        channels = [v.item() if hasattr(v, "item") else v for v in img.coords["c"].values] if "c" in img.coords else \
            list(range(img.sizes["c"]))
    if not img.attrs.get("spacing_known", True) and not any("spacing" in m for m in msgs):
        msgs.append("no physical calibration: spacing 1 was used")
    out.update({
        "modality": img.attrs.get("modality", ""),
        "dims": tuple(img.dims),
        "shape": tuple(int(s) for s in img.shape),
        "dtype": str(img.dtype),
        "spatial_dims": sd,
        "spacing": tuple(float(v) for v in spacing(img)),
        "spacing_known": bool(img.attrs.get("spacing_known", True)),
        "origin": tuple(float(v) for v in origin(img)),
        "direction": np.asarray(direction(img)).round(6).tolist(),
        "units": img.attrs.get("units", ""),
        "channels": channels,
        "reader": (img.attrs.get("provenance") or {}).get("reader", ""),
        "warnings": msgs,
    })
    for key in ("series_uid", "series_description", "pyramid_levels", "roi", "frame_of_reference_uid"):
        if img.attrs.get(key) not in (None, ""):
            out[key] = img.attrs[key]
    return out


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def format_info(info: dict[str, Any]) -> str:
    """Text for ``multiscale info``: one ``key: value`` line per field, spacing/origin in mm with their dims.

    Examples
    --------
    >>> print(format_info({"path": "a.nii", "format": "nifti", "dims": ("y", "x"), "shape": (2, 3),
    ...                    "spatial_dims": ("y", "x"), "spacing": (0.5, 0.5), "origin": (0.0, 0.0),
    ...                    "size_on_disk": 400, "warnings": []}).splitlines()[2])
    shape: y=2 x=3
    """
    lines = [f"file: {info.get('path', '')}", f"format: {info.get('format', '')}"]
    if info.get("modality") is not None:
        lines.append(f"modality: {info.get('modality') or '(unknown)'}")
    dims = tuple(info.get("dims", ()))
    shape = tuple(info.get("shape", ()))
    if dims:
        lines.append("shape: " + " ".join(f"{d}={s}" for d, s in zip(dims, shape)))
    if info.get("rois"):
        lines.append("rois: " + "; ".join(info["rois"]))
    if info.get("dtype"):
        lines.append(f"dtype: {info['dtype']}")
    sd = tuple(info.get("spatial_dims", ()))
    if "spacing" in info:
        known = "" if info.get("spacing_known", True) else "  (NOT CALIBRATED)"
        lines.append("spacing (mm): " + " ".join(f"{d}={v:.6g}" for d, v in zip(sd, info["spacing"])) + known)
    if "origin" in info:
        lines.append("origin (mm): " + " ".join(f"{d}={v:.6g}" for d, v in zip(sd, info["origin"])))
    if "direction" in info:
        lines.append("direction (zyx): " + "; ".join(" ".join(f"{v + 0.0:g}" for v in row) for row in info["direction"]))
    if "units" in info:
        lines.append(f"units: {info['units'] or '(none)'}")
    if info.get("channels") is not None:
        lines.append("channels: " + ", ".join(str(c) for c in info["channels"]))
    for key in ("series_uid", "series_description", "frame_of_reference_uid", "pyramid_levels", "roi", "reader"):
        if info.get(key) not in (None, ""):
            lines.append(f"{key.replace('_', ' ')}: {info[key]}")
    lines.append(f"size on disk: {_human(int(info.get('size_on_disk', 0)))}")
    warns = info.get("warnings") or []
    lines.append("warnings: " + ("none" if not warns else ""))
    lines.extend(f"  - {w}" for w in warns)
    return "\n".join(lines)
