"""How well two images are aligned: landmark error (TRE), Dice, MI/NCC, checkerboard figures."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale._util import atomic_write
from multiscale.errors import RegistrationError

from ._multires import channel_image
from .resample import resample
from .transform import Transform, identity, points_array

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "overlay_figure",
    "quality",
    "alignment_quality",
    "target_registration_error",
    "dice",
    "mutual_information",
    "normalized_cross_correlation",
    "checkerboard",
    "checkerboard_array",
    "central_slice",
    "quality_figure",
    "registration_figure",
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
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.0), layout="constrained")
    im = axes[0].imshow(cb.values, cmap="gray", extent=extent, vmin=0, vmax=1)
    axes[0].set_title("checkerboard", fontsize=8)
    axes[1].imshow(overlay, extent=extent)
    axes[1].set_title("overlay: fixed magenta, moving green", fontsize=8)
    for ax in axes:
        ax.set_xlabel("x (mm)", fontsize=7)
        ax.set_ylabel("y (mm)", fontsize=7)
        ax.tick_params(labelsize=6)
        figure_scale_bar(ax)
    bar = fig.colorbar(im, ax=axes[0], fraction=0.05, pad=0.02)
    bar.set_label("intensity (scaled, 1)", fontsize=6)
    bar.ax.tick_params(labelsize=5)
    if title:
        fig.suptitle(title, fontsize=9)
    if path is None:
        return fig
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=300, format="png"), suffix=".png")
    finally:
        plt.close(fig)
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


# ---------------------------------------------------------------------------------------------
# the study pipeline's measures and figure of one registration
# ---------------------------------------------------------------------------------------------


def _lattice_points_xyz(image: xr.DataArray, n: int = 12) -> np.ndarray:
    """World points (ITK xyz) on a lattice of ``n`` per axis (fewer on short axes) over ``image``'s voxels."""
    sh = mi.shape(image)
    axes = [np.linspace(0, s - 1, min(n, s)) for s in sh]
    idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(sh))
    return mi.index_to_world(image, idx, xyz=False)[:, ::-1]


def _mask_points_xyz(mask: xr.DataArray, max_points: int = 4000) -> np.ndarray:
    """World points (ITK xyz) of the voxel centres inside ``mask`` (every k-th voxel, at most ``max_points``)."""
    idx = np.argwhere(np.asarray(mask.data) > 0)
    step = max(1, int(np.ceil(len(idx) / max_points)))
    return mi.index_to_world(mask, idx[::step].astype(float))[:, ::-1]


def alignment_quality(
    fixed: xr.DataArray,
    moving_on_fixed: xr.DataArray,
    transform: Transform,
    *,
    landmarks: tuple[Any, Any] | None = None,
    landmarks_used: bool = False,
    truth: Transform | None = None,
    fixed_masks: Mapping[str, xr.DataArray] | None = None,
) -> dict[str, float]:
    """Flat quality measures of one registration, as the study report tabulates them.

    Parameters
    ----------
    fixed : xarray.DataArray
        The fixed image (one channel).
    moving_on_fixed : xarray.DataArray
        The moving image resampled onto ``fixed``'s grid through ``transform`` (0 outside).
    transform : Transform
        The recovered transform, fixed -> moving points.
    landmarks : (fixed_points, moving_points), optional
        ``(x, y[, z])`` rows in mm: landmark error after registration.
    landmarks_used : bool
        Whether the registration was fitted to these landmarks (then their error is not an
        independent check: ``tre_independent`` is False).
    truth : Transform, optional
        The true transform (fixed -> moving): the distance (mm) between where the recovered and the
        true transforms send points, on a lattice of 12 points per axis over ``fixed`` and over the
        voxel centres (at most 4,000) of each of ``fixed_masks``.
    fixed_masks : mapping of name to xarray.DataArray, optional
        Masks on ``fixed``'s grid (non-zero inside).

    Returns
    -------
    dict
        In this order: ``pearson_after`` (correlation over voxels where the moved image is finite
        and non-zero; left out when fewer than 3 or either is constant), ``overlap_fraction``
        (fraction of such voxels); with landmarks ``tre_mean_mm``, ``tre_max_mm``,
        ``tre_landmarks``, ``tre_independent``; with a truth ``truth_error_mean_mm``,
        ``truth_error_max_mm``, ``truth_error_points`` and per mask with voxels
        ``truth_error_mean_mm_in_<name>``, ``truth_error_max_mm_in_<name>``; then
        ``metric_before`` / ``metric_after`` when ``transform.info`` holds numbers for them.

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> from multiscale.image import spatial_image
    >>> from multiscale.registration import resample
    >>> yy, xx = np.mgrid[:32, :32]
    >>> fixed = spatial_image(np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 30.0), spacing=1.0)
    >>> t = Transform(sitk.TranslationTransform(2, (1.0, 0.0)))
    >>> truth = Transform(sitk.TranslationTransform(2, (1.0, 0.5)))
    >>> q = alignment_quality(fixed, resample(fixed, fixed, t), t, truth=truth)
    >>> list(q), q["truth_error_mean_mm"], q["truth_error_points"]
    (['pearson_after', 'overlap_fraction', 'truth_error_mean_mm', 'truth_error_max_mm', 'truth_error_points'], 0.5, 144)
    """
    fa = np.asarray(fixed.data, dtype=float)
    ma = np.asarray(moving_on_fixed.data, dtype=float)
    quality: dict[str, float] = {}
    ok = np.isfinite(fa) & np.isfinite(ma) & (ma != 0)
    if ok.sum() > 2 and np.std(fa[ok]) > 0 and np.std(ma[ok]) > 0:
        quality["pearson_after"] = float(np.corrcoef(fa[ok], ma[ok])[0, 1])
    quality["overlap_fraction"] = float(ok.mean())
    if landmarks is not None:
        fixed_points, moving_points = landmarks
        tre = np.linalg.norm(transform.transform_points(fixed_points) - np.asarray(moving_points, dtype=float), axis=1)
        quality.update(tre_mean_mm=float(tre.mean()), tre_max_mm=float(tre.max()), tre_landmarks=int(tre.size),
                       tre_independent=not landmarks_used)
    if truth is not None:
        pts = _lattice_points_xyz(fixed)
        err = np.linalg.norm(transform.transform_points(pts) - truth.transform_points(pts), axis=1)
        quality.update(
            truth_error_mean_mm=float(err.mean()), truth_error_max_mm=float(err.max()),
            truth_error_points=int(err.size),
        )
        for name, mask in (fixed_masks or {}).items():
            mpts = _mask_points_xyz(mask)
            if len(mpts):
                merr = np.linalg.norm(transform.transform_points(mpts) - truth.transform_points(mpts), axis=1)
                quality[f"truth_error_mean_mm_in_{name}"] = float(merr.mean())
                quality[f"truth_error_max_mm_in_{name}"] = float(merr.max())
    info = getattr(transform, "info", {}) or {}
    for k in ("metric_before", "metric_after"):
        if isinstance(info.get(k), (int, float)):
            quality[k] = float(info[k])
    return quality


def central_slice(array: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """A 2-D view of an image array: itself when 2-D, else the z slice through ``weights``' centre of mass.

    ``weights`` (same shape; NaNs as 0, negatives clipped) picks the slice; without weights, or
    with none positive, the middle slice.

    Examples
    --------
    >>> vol = np.zeros((5, 2, 2)); vol[3] = 1.0
    >>> depth = np.arange(5.0)[:, None, None] * np.ones((5, 2, 2))  # each slice holds its index
    >>> float(central_slice(depth, vol)[0, 0]), float(central_slice(depth)[0, 0])
    (3.0, 2.0)
    """
    if array.ndim == 2:
        return array
    if weights is not None and np.nansum(weights) > 0:
        w = np.nan_to_num(np.asarray(weights, dtype=float)).clip(min=0).sum(axis=(1, 2))
        z = int(round(float((w * np.arange(w.size)).sum() / w.sum()))) if w.sum() > 0 else array.shape[0] // 2
    else:
        z = array.shape[0] // 2
    return array[min(max(z, 0), array.shape[0] - 1)]


def _percentile_unit(x: np.ndarray, high: float) -> np.ndarray:
    """``x`` as floats (NaN -> 0) scaled to [0, 1] between its 1st and ``high``-th percentiles."""
    x = np.nan_to_num(np.asarray(x, dtype=float))
    if x.size == 0:
        return x
    lo, hi = np.percentile(x, [1, high])
    return np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def checkerboard_array(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Checkerboard of two equally shaped 2-D arrays, each scaled to [0, 1] between its 1st and 99th percentiles.

    Tiles are ``shape // tiles`` pixels (at least 1) along each axis, so there are ``tiles`` of
    them across when the shape divides evenly (a few more otherwise); the top-left tile is ``a``.
    NaNs count as 0. :func:`checkerboard` is the image version, with tiles that always split
    each axis into exactly ``tiles`` parts and NaN-aware scaling.

    Examples
    --------
    >>> checkerboard_array(np.zeros((4, 4)), np.ones((4, 4)), tiles=2).tolist()[0]
    [0.0, 0.0, 0.0, 0.0]
    >>> checkerboard_array(np.arange(16.0).reshape(4, 4), np.ones((4, 4)) * 5, tiles=2)[2:, :2].tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    a, b = _percentile_unit(a, 99), _percentile_unit(b, 99)
    yy, xx = np.indices(a.shape)
    ty = max(1, a.shape[0] // tiles)
    tx = max(1, a.shape[1] // tiles)
    sel = ((yy // ty) + (xx // tx)) % 2 == 0
    return np.where(sel, a, b)


def registration_figure(name: str, fixed_slice: np.ndarray, moving_slice: np.ndarray, method: str,
                        quality: Mapping[str, Any] | None = None,
                        pixel_mm: tuple[float, float] | None = None) -> Figure:
    """Fixed image, checkerboard and colour overlay of one registration (2-D slices of both on one grid).

    Panels: the fixed slice; :func:`checkerboard_array` of fixed and moved; fixed in magenta and
    moved in green (each scaled between its 1st and 99.5th percentiles, the colour bar says so).
    The title names the registration and ``method``, and the error against a ground truth when
    ``quality`` holds ``truth_error_mean_mm`` / ``truth_error_max_mm`` (as :func:`alignment_quality`
    returns them). Slices of 3-D images come from :func:`central_slice`. With ``pixel_mm`` (the
    fixed grid's (y, x) pixel size) the axes are in mm with a scale bar; otherwise in pixels.
    Drawn small (7 x 2.5 in) for print at 300 dpi.

    Returns
    -------
    matplotlib.figure.Figure
        Made with the object API (no pyplot state, any backend): save it with ``fig.savefig``.

    Examples
    --------
    >>> f = np.random.default_rng(0).random((32, 32))
    >>> fig = registration_figure("pet_to_mri", f, f, "rigid", {"truth_error_mean_mm": 0.1, "truth_error_max_mm": 0.2},
    ...                           pixel_mm=(0.5, 0.5))
    >>> len(fig.axes), fig.get_suptitle(), fig.axes[0].get_xlabel()
    (4, 'pet_to_mri (rigid); error vs truth mean 0.1 mm, max 0.2 mm', 'x (mm)')
    """
    from matplotlib.figure import Figure

    f, m = fixed_slice, moving_slice
    fig = Figure(figsize=(7.0, 2.5), layout="constrained")
    axes = fig.subplots(1, 3)
    if pixel_mm is not None:
        dy, dx = (float(v) for v in pixel_mm)
        ext = (0.0, f.shape[1] * dx, f.shape[0] * dy, 0.0)
        unit = "mm"
    else:
        ext, unit = None, "pixels"
    grey = axes[0].imshow(_percentile_unit(f, 99.5), cmap="gray", extent=ext, vmin=0, vmax=1)
    axes[0].set_title("fixed", fontsize=7)
    axes[1].imshow(checkerboard_array(f, m), cmap="gray", extent=ext, vmin=0, vmax=1)
    axes[1].set_title("checkerboard fixed / moving (registered)", fontsize=7)
    rgb = np.dstack([_percentile_unit(f, 99.5), _percentile_unit(m, 99.5), _percentile_unit(f, 99.5)])
    axes[2].imshow(rgb, extent=ext)
    axes[2].set_title("fixed (magenta) + moving (green)", fontsize=7)
    for ax in axes:
        ax.set_xlabel(f"x ({unit})", fontsize=7)
        ax.set_ylabel(f"y ({unit})", fontsize=7)
        ax.tick_params(labelsize=6)
        if pixel_mm is not None:
            figure_scale_bar(ax)
    cb = fig.colorbar(grey, ax=axes[:2], fraction=0.04, pad=0.01, shrink=0.8)
    cb.set_label("intensity (1st-99.5th percentile, 1)", fontsize=6)
    cb.ax.tick_params(labelsize=5)
    q = quality or {}
    extra = ""
    if "truth_error_mean_mm" in q:
        extra = f"; error vs truth mean {q['truth_error_mean_mm']:.3g} mm, max {q['truth_error_max_mm']:.3g} mm"
    fig.suptitle(f"{name} ({method}){extra}", fontsize=9)
    return fig


def figure_scale_bar(ax: Any, color: str = "white") -> Any:
    """A 1-2-5 scale bar near a fifth of an mm-scaled image axes' width, labelled in mm or µm.

    (The registration figures' own copy of :func:`multiscale.analysis.figures.add_scale_bar`:
    registration does not import analysis.)

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().add_subplot(); _ = ax.set_xlim(0, 0.8)
    >>> figure_scale_bar(ax).txt_label.get_text()
    '100 µm'
    """
    import math

    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x0, x1 = ax.get_xlim()
    width = abs(x1 - x0)
    target = width / 5
    p = 10 ** math.floor(math.log10(target))
    length = max(k * p for k in (1, 2, 5) if k * p <= target)
    label = f"{length:g} mm" if length >= 1 else f"{length * 1000:.3g} µm"
    bar = AnchoredSizeBar(ax.transData, length, label, "lower right", pad=0.3, color=color, frameon=False,
                          size_vertical=width / 100, fontproperties={"size": 6})
    ax.add_artist(bar)
    return bar


def _robust_unit(x: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.5) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, dtype=float))
    if x.size == 0:
        return x
    lo, hi = np.percentile(x, [lo_pct, hi_pct])
    return np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def overlay_figure(layers: list[tuple[str, xr.DataArray]], contours: list[xr.DataArray] | None = None,
                   title: str = "") -> Any:
    """Maps of one reference frame over its anatomy, after registration: the check a reader looks at first.

    ``layers`` are ``(name, image)`` on one grid, the first being the anatomy (a multichannel image
    gives one layer per channel); every other layer is drawn in colour over the anatomy in grey,
    with the ``contours`` (masks) in cyan. A 3-D frame is shown at the slice through the first
    mask's centre of mass (else the middle slice). Axes are in mm.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.random.default_rng(0).random((8, 8)), spacing=0.5)
    >>> len(overlay_figure([("mri", a), ("pet", a)]).axes)   # the map and its colour bar
    2
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flat: list[tuple[str, xr.DataArray]] = []
    for key, img in layers:
        if "c" in img.dims:
            flat += [(f"{key}:{c}", img.sel(c=c, drop=True)) for c in img.coords["c"].values]
        else:
            flat.append((key, img))
    anatomy_name, anatomy = flat[0]
    others = flat[1:] or flat[:1]
    contours = list(contours or [])
    zsel = None
    if "z" in anatomy.dims:
        w = np.asarray(contours[0].data, dtype=float) if contours else None
        if w is None or w.ndim != 3 or not np.any(w):
            zsel = anatomy.sizes["z"] // 2
        else:
            ws = w.sum(axis=(1, 2))
            zsel = int(round(float((ws * np.arange(ws.size)).sum() / ws.sum())))
    sd = mi.spatial_dims(anatomy)[-2:]
    sp = dict(zip(mi.spatial_dims(anatomy), mi.spacing(anatomy)))
    xs = np.asarray(anatomy.coords[sd[1]].values, dtype=float)
    ys = np.asarray(anatomy.coords[sd[0]].values, dtype=float)
    ext = [xs[0] - sp[sd[1]] / 2, xs[-1] + sp[sd[1]] / 2, ys[-1] + sp[sd[0]] / 2, ys[0] - sp[sd[0]] / 2]

    def plane(img: xr.DataArray) -> np.ndarray:
        a = np.asarray(img.data, dtype=float)
        return a[zsel] if a.ndim == 3 else a

    n = len(others)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    # small panels (at most 7.2 in across, a printed page's width) for print at 300 dpi
    fig = Figure(figsize=(1.8 * cols + 0.3, 1.75 * rows + 0.35), layout="constrained")
    FigureCanvasAgg(fig)
    base = _robust_unit(plane(anatomy))
    for k, (name, img) in enumerate(others):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(base, cmap="gray", extent=ext)
        values = plane(img)
        finite = values[np.isfinite(values)]
        lo, hi = (np.percentile(finite, [1.0, 99.5]) if finite.size else (0.0, 1.0))
        hi = hi if hi > lo else lo + 1.0
        # the map in its own units, the lowest 15 % of its range left transparent over the anatomy
        shown = np.ma.masked_where(~np.isfinite(values) | (values < lo + 0.15 * (hi - lo)), values)
        im = ax.imshow(shown, cmap="inferno", alpha=0.7, extent=ext, vmin=lo, vmax=hi)
        for m in contours:
            pm = plane(m)
            if pm.shape == (ys.size, xs.size) and pm.max() > 0:
                ax.contour(xs, ys, pm, levels=[0.5], colors="cyan", linewidths=0.6)
        units = img.attrs.get("units", "") or "a.u."
        ax.set_title(str(name), fontsize=7)
        ax.set_xlabel("x (mm)", fontsize=6)
        ax.set_ylabel("y (mm)", fontsize=6)
        ax.tick_params(labelsize=5)
        cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        cb.set_label(str(units), fontsize=6)
        cb.ax.tick_params(labelsize=5)
        figure_scale_bar(ax)
    where = f", slice z = {float(anatomy.z.values[zsel]):.2f} mm" if zsel is not None else ""
    fig.suptitle(f"{title}: maps over {anatomy_name}{where}" if title else f"maps over {anatomy_name}{where}",
                 fontsize=8)
    return fig
