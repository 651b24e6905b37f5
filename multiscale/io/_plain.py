"""PNG / JPEG (and other Pillow formats) as ``(y, x)`` or ``(c, y, x)`` images: the code both formats share.

The formats themselves are :mod:`multiscale.io.png` and :mod:`multiscale.io.jpeg`.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import MultiscaleError
from multiscale.image import spatial_image

from ._common import CalibrationWarning, check_voxels, fail, provenance, warn

__all__ = ["read_plain_image"]


def read_plain_image(path: str | os.PathLike, *, spacing: Any = None, modality: str | None = None,
                     **attrs: Any) -> xr.DataArray:
    """Read a PNG/JPEG (or other Pillow format) as ``(y, x)`` or RGB(A) ``(c, y, x)`` channels.

    Such files carry no reliable physical calibration: pass ``spacing=`` (mm, ``(dy, dx)`` or one
    value); without it the spacing is 1 with ``attrs["spacing_known"] = False`` and a warning.

    Examples
    --------
    >>> img = read_plain_image("slide.png", spacing=0.0005)  # doctest: +SKIP
    >>> img.coords["c"].values.tolist()  # doctest: +SKIP
    ['R', 'G', 'B']
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise fail(path, "path", "is a folder, not a picture", "point at the image file")
    try:
        with Image.open(str(path)) as im:
            bands = len(im.getbands())
            check_voxels(path, "width/height", (im.size[1], im.size[0]) + ((bands,) if bands > 1 else ()))
            im.load()
            mode = im.mode
            if mode in ("P", "CMYK", "YCbCr", "LA", "PA", "1"):
                im = im.convert("RGBA" if "A" in mode or "transparency" in im.info else "RGB")
                mode = im.mode
            arr = np.asarray(im)
    except Image.DecompressionBombError as exc:
        raise fail(path, "width/height", f"more pixels than Pillow's safety limit ({exc})",
                   "convert the picture to (OME-)TIFF, which is read lazily") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError) as exc:
        if isinstance(exc, MultiscaleError):
            raise
        raise fail(path, "image data", f"cannot be decoded ({type(exc).__name__}: {exc})",
                   "the file is truncated or corrupt") from exc
    if arr.ndim == 3:
        arr = np.moveaxis(arr, -1, 0)
        dims: tuple[str, ...] = ("c", "y", "x")
        channels = list(mode)[: arr.shape[0]] if len(mode) == arr.shape[0] else None
    else:
        dims = ("y", "x")
        channels = None
    if spacing is None:
        warn(f"{path}: PNG/JPEG files carry no physical pixel size; using spacing 1 with "
             "attrs['spacing_known'] = False; pass spacing=(dy, dx) in mm", CalibrationWarning)
        sp = (1.0, 1.0)
        known = False
    else:
        sp = np.asarray(spacing, dtype=float).reshape(-1)
        if sp.size == 1:
            sp = np.repeat(sp, 2)
        if sp.size != 2 or np.any(sp <= 0):
            raise fail(path, "spacing=", f"{spacing!r} is not one or two positive sizes", "pass spacing=(dy, dx) in mm")
        known = True
    return spatial_image(arr, spacing=sp, dims=dims, channels=channels,
                         modality=modality or ("HISTO" if channels else "FLUO"), units="a.u.",
                         spacing_known=known, provenance=provenance(path, "Pillow", spacing=spacing),
                         **attrs)
