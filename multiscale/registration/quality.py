"""How well two images are aligned: landmark error (TRE), Dice, MI/NCC, checkerboard figures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi

from ._multires import RegistrationError, channel_image
from .resample import resample
from .transform import Transform, identity, points_array

__all__ = [
    "quality",
    "target_registration_error",
    "dice",
    "mutual_information",
    "normalized_cross_correlation",
    "checkerboard",
    "quality_figure",
]


def target_registration_error(fixed_points: Any, moving_points: Any, transform: Transform | None = None) -> dict[str, float]:
    """Landmark error: distance (mm) between ``transform(fixed point)`` and its moving partner.

    Parameters
    ----------
    fixed_points, moving_points : array_like, shape (n, d)
        Corresponding landmarks, ``(x, y[, z])`` rows in mm.
    transform : Transform, optional
        Fixed -> moving; identity when omitted (the error before registration).

    Returns
    -------
    dict
        ``mean``, ``median``, ``p90``, ``max`` (mm) and ``n``.

    Examples
    --------
    >>> target_registration_error([[0.0, 0.0], [1.0, 0.0]], [[0.0, 3.0], [1.0, 4.0]])
    {'mean': 3.5, 'median': 3.5, 'p90': 3.9, 'max': 4.0, 'n': 2}
    """
    f = np.asarray(fixed_points, dtype=float)
    d = f.shape[1] if f.ndim == 2 else 0
    f = points_array(f, d, "fixed_points")
    m = points_array(moving_points, d, "moving_points")
    if f.shape != m.shape:
        raise RegistrationError(f"fixed_points {f.shape} and moving_points {m.shape} must pair up row by row")
    if len(f) == 0:
        raise RegistrationError("no landmarks given")
    t = transform if transform is not None else identity(d)
    err = np.linalg.norm(t.transform_points(f) - m, axis=1)
    return {
        "mean": float(err.mean()),
        "median": float(np.median(err)),
        "p90": float(np.percentile(err, 90)),
        "max": float(err.max()),
        "n": int(err.size),
    }


def dice(a: Any, b: Any) -> float:
    """Dice overlap ``2 |A & B| / (|A| + |B|)`` of two masks (non-zero = inside); 1.0 when both are empty.

    Examples
    --------
    >>> dice(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
    0.5
    """
    a = np.asarray(a.values if isinstance(a, xr.DataArray) else a) != 0
    b = np.asarray(b.values if isinstance(b, xr.DataArray) else b) != 0
    if a.shape != b.shape:
        raise RegistrationError(f"masks of shapes {a.shape} and {b.shape}; resample one onto the other's grid first")
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def mutual_information(a: Any, b: Any, bins: int = 32, mask: Any = None) -> float:
    """Mutual information (nats) of two equally shaped arrays from a ``bins`` x ``bins`` joint histogram.

    NaNs (voxels outside an image) and voxels outside ``mask`` are ignored.

    Examples
    --------
    >>> x = np.random.default_rng(0).random(10000)
    >>> mutual_information(x, x) > 3.0, mutual_information(x, np.random.default_rng(1).random(10000)) < 0.1
    (True, True)
    """
    x, y = _valid_pairs(a, b, mask)
    if x.size < 2:
        return float("nan")
    h, _, _ = np.histogram2d(x, y, bins=bins)
    p = h / h.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


def normalized_cross_correlation(a: Any, b: Any, mask: Any = None) -> float:
    """Pearson correlation of two equally shaped arrays (NaNs and voxels outside ``mask`` ignored).

    Examples
    --------
    >>> round(normalized_cross_correlation([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]), 4)
    0.9979
    """
    x, y = _valid_pairs(a, b, mask)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _valid_pairs(a: Any, b: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a.values if isinstance(a, xr.DataArray) else a, dtype=float)
    y = np.asarray(b.values if isinstance(b, xr.DataArray) else b, dtype=float)
    if x.shape != y.shape:
        raise RegistrationError(f"arrays of shapes {x.shape} and {y.shape}; resample one onto the other's grid first")
    ok = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        ok &= np.asarray(mask.values if isinstance(mask, xr.DataArray) else mask) != 0
    return x[ok], y[ok]


def checkerboard(a: xr.DataArray, b: xr.DataArray, tiles: int = 8) -> xr.DataArray:
    """Alternate tiles of ``a`` and ``b`` (same grid), each scaled to [0, 1] between its 1st/99th percentiles.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.zeros((4, 4)), spacing=1.0); b = spatial_image(np.ones((4, 4)), spacing=1.0)
    >>> checkerboard(a, b, tiles=2).values[0].tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    if not mi.same_grid(a, b):
        raise RegistrationError("checkerboard needs two images on one grid; resample the moving one first")
    na, nb = _unit(a.values), _unit(b.values)
    shape = na.shape
    idx = np.indices(shape)
    tile = sum((idx[i] * tiles // shape[i]) for i in range(len(shape))) % 2
    return mi.like(a, np.where(tile == 0, na, nb), units="normalised")


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        return np.zeros_like(v)
    lo, hi = np.percentile(fin, [1, 99])
    if hi <= lo:
        lo, hi = float(fin.min()), float(fin.max())
    if hi <= lo:
        # a constant image: 0 when it is 0, else 1
        return np.where(np.isfinite(v), (v != 0).astype(float), 0.0)
    return np.clip(np.nan_to_num((v - lo) / (hi - lo)), 0, 1)


def quality_figure(fixed: xr.DataArray, moving_on_fixed: xr.DataArray, path: str | os.PathLike | None = None,
                   tiles: int = 8, title: str = "") -> Any:
    """Checkerboard and colour overlay (fixed magenta, moving green) of two images on one grid.

    3-D images show their middle ``z`` slice. With ``path``, the PNG is written atomically and the
    path returned; otherwise the matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    f = channel_image(fixed, name="fixed")
    m = channel_image(moving_on_fixed, name="moving")
    if "z" in f.dims:
        f, m = f.isel(z=f.sizes["z"] // 2), m.isel(z=m.sizes["z"] // 2)
    cb = checkerboard(f, m, tiles)
    fa, ma = _unit(f.values), _unit(m.values)
    overlay = np.stack([fa, ma, fa], axis=-1)
    box = mi.bounding_box(f)  # (y, x) rows
    extent = (box[0, 1], box[1, 1], box[1, 0], box[0, 0])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    axes[0].imshow(cb.values, cmap="gray", extent=extent)
    axes[0].set_title("checkerboard")
    axes[1].imshow(overlay, extent=extent)
    axes[1].set_title("overlay: fixed magenta, moving green")
    for ax in axes:
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is None:
        return fig
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def quality(
    fixed: xr.DataArray,
    moving: xr.DataArray,
    transform: Transform | None = None,
    *,
    landmarks: tuple[Any, Any] | None = None,
    fixed_mask: xr.DataArray | None = None,
    moving_mask: xr.DataArray | None = None,
    bins: int = 32,
    figure: str | os.PathLike | bool | None = None,
    fixed_channel: Any = None,
    moving_channel: Any = None,
) -> dict[str, Any]:
    """Alignment measures before (identity) and after ``transform``.

    Parameters
    ----------
    fixed, moving : xarray.DataArray
        The registered pair (moving is resampled onto the fixed grid, linear; masks nearest).
    transform : Transform, optional
        Fixed -> moving, as :func:`register` returns it.
    landmarks : (fixed_points, moving_points), optional
        ``(x, y[, z])`` rows in mm: target registration error (mean, median, p90, max).
    fixed_mask, moving_mask : xarray.DataArray, optional
        On their images' grids: Dice of ``fixed_mask`` with the resampled ``moving_mask``.
    bins : int
        Histogram bins of the mutual information.
    figure : path or bool, optional
        Write a checkerboard/overlay PNG there (``True``: return the matplotlib Figure).
    fixed_channel, moving_channel
        Channel choice for multichannel images, as in :func:`register`.

    Returns
    -------
    dict
        ``{"tre_mm": {"before": {...}, "after": {...}}, "dice": {...}, "mi": {...}, "ncc": {...},
        "overlap_fraction": {...}, "figure": ...}``; MI in nats (higher is better), NCC in [-1, 1].

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.random.default_rng(0).random((16, 16)), spacing=(1.0, 1.0))
    >>> q = quality(a, a)
    >>> round(q["ncc"]["after"], 6)
    1.0
    """
    f1 = channel_image(fixed, fixed_channel, name="fixed")
    m1 = channel_image(moving, moving_channel, name="moving")
    out: dict[str, Any] = {}
    before = resample(m1, f1, None, default_value=np.nan) if len(mi.spatial_dims(m1)) == len(mi.spatial_dims(f1)) else None
    after = resample(m1, f1, transform, default_value=np.nan) if transform is not None else before
    fv = np.asarray(f1.values, float)
    for name, fn in (("mi", lambda x: mutual_information(fv, x, bins)), ("ncc", lambda x: normalized_cross_correlation(fv, x))):
        out[name] = {
            "before": fn(before.values) if before is not None else float("nan"),
            "after": fn(after.values) if after is not None else float("nan"),
        }
    out["overlap_fraction"] = {
        "before": float(np.isfinite(before.values).mean()) if before is not None else float("nan"),
        "after": float(np.isfinite(after.values).mean()) if after is not None else float("nan"),
    }
    if landmarks is not None:
        fp, mp = landmarks
        out["tre_mm"] = {
            "before": target_registration_error(fp, mp, None) if before is not None else None,
            "after": target_registration_error(fp, mp, transform),
        }
    if fixed_mask is not None and moving_mask is not None:
        if not mi.same_grid(fixed_mask, f1):
            raise RegistrationError("fixed_mask is not on the fixed image's grid; resample it there with 'nearest'")
        if not mi.same_grid(moving_mask, m1):
            raise RegistrationError("moving_mask is not on the moving image's grid; resample it there with 'nearest'")
        mb = resample(moving_mask, f1, None, "nearest") if before is not None else None
        ma = resample(moving_mask, f1, transform, "nearest")
        out["dice"] = {"before": dice(fixed_mask, mb) if mb is not None else float("nan"), "after": dice(fixed_mask, ma)}
    if figure:
        target = None if figure is True else figure
        moved = after.fillna(0.0) if after is not None else None
        if moved is not None:
            out["figure"] = quality_figure(f1, moved, target)
    return out
