"""Per-subject work as a dask task graph: load, register, resample once, analyse, write.

:func:`subject_graph` builds one ``dask.delayed`` graph per subject whose nodes are named after
their step (``load-mri-mouse01``, ``register-pet_to_mri-mouse01``, ...). Every node returns its
value with the wall time of each step so far; the final node writes the subject's outputs into a
temporary folder and swaps it into place, so a subject's folder is either complete (it holds
``_SUCCESS.json``) or absent.

Nothing here creates a dask Client: the graph runs on whatever scheduler computes it
(:mod:`multiscale.pipeline.runner`). Inside a step, dask collections are computed with the
synchronous scheduler so a worker's memory does not depend on the number of subjects.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi

from .graph import chain_to_reference, frames_of, references_of
from .provenance import input_checksums, provenance_record, write_json
from .results import results_frame, rows_from_result, write_results
from .study import AnalysisSpec, EdgeSpec, ImageSpec, MaskSpec, Study, SubjectSpec, parse_map_name

__all__ = [
    "SUCCESS_FILE",
    "StepOutput",
    "subject_graph",
    "run_subject",
    "subject_is_complete",
    "subject_folder",
    "select_map",
]

#: marker written last into a complete subject folder
SUCCESS_FILE = "_SUCCESS.json"
_INNER_SCHEDULER = "sync"


@dataclass
class StepOutput:
    """A step's value and the wall time (s) of every step it depends on, by step name."""

    value: Any
    timings: dict[str, float] = field(default_factory=dict)


def _register_sizeof() -> None:
    """Tell dask how big a step's output is (its value's size, images included).

    Without it dask sizes a ``StepOutput`` as the bare object (56 bytes), so the scheduler would
    place tasks without regard to where their images are, and a worker's memory accounting
    (spilling, limits) would not see them.
    """
    try:
        from dask.sizeof import sizeof
    except ImportError:  # pragma: no cover - dask is a core dependency
        return

    @sizeof.register(StepOutput)
    def _sizeof_step(out: StepOutput) -> int:
        return int(sizeof(out.value)) + int(sizeof(out.timings))


_register_sizeof()


def _unwrap(obj: Any, timings: dict[str, float]) -> Any:
    if isinstance(obj, StepOutput):
        timings.update(obj.timings)
        return obj.value
    if isinstance(obj, list):
        return [_unwrap(o, timings) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_unwrap(o, timings) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, timings) for k, v in obj.items()}
    return obj


_THREADS_LIMITED = False


def _limit_threads_on_worker() -> None:
    """On a dask worker, let SimpleITK use the worker's threads only (once per process).

    Without this each worker's registrations and resamplings use every core, so k workers on k
    cores oversubscribe the machine k-fold; one subject per worker thread is the parallelism.
    """
    global _THREADS_LIMITED
    if _THREADS_LIMITED:
        return
    _THREADS_LIMITED = True
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(getattr(worker, "nthreads", 1) or 1)))


def _step(name: str, fn: Any, *args: Any, **kwargs: Any) -> StepOutput:
    import dask

    _limit_threads_on_worker()
    timings: dict[str, float] = {}
    args = _unwrap(list(args), timings)
    kwargs = _unwrap(dict(kwargs), timings)
    t0 = time.perf_counter()
    with dask.config.set(scheduler=_INNER_SCHEDULER):
        value = fn(*args, **kwargs)
    timings[name] = time.perf_counter() - t0
    return StepOutput(value, timings)


# ---------------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------------

_EAGER_BYTES = 1 << 30


def _with_context(exc: Exception, message: str) -> Exception:
    """``exc``'s type with ``message`` (a RuntimeError when that type cannot be built from a message)."""
    try:
        new = type(exc)(message)
    except Exception:  # noqa: BLE001 - exception types with other signatures
        new = RuntimeError(message)
    return new


def load_image_step(spec: ImageSpec) -> xr.DataArray:
    """Load one image with its study options, set its attrs from the study and name MSI channels."""
    from multiscale import io

    try:
        img = io.load(spec.path, **spec.load_options())
    except Exception as exc:
        raise _with_context(exc, f"{spec.path}: could not load image {spec.key!r}: {exc}") from exc
    attrs = dict(img.attrs)
    for key in ("modality", "aspect", "agent", "units", "scale"):
        value = getattr(spec, key)
        if value:
            attrs[key] = value
    img = img.copy(deep=False)
    img.attrs = attrs
    if spec.targets and "c" in img.dims and img.sizes["c"] == len(spec.targets):
        img = img.assign_coords(c=list(spec.targets))
        img.attrs["targets_mz"] = dict(spec.targets)
    if hasattr(img.data, "compute") and img.nbytes <= _EAGER_BYTES:
        img = img.copy(data=np.asarray(img.data.compute()))
    return img


def load_mask_step(spec: MaskSpec) -> xr.DataArray:
    """Load a mask and turn it into a boolean image (``== label`` when a label is given, else ``> 0``)."""
    from multiscale import io

    try:
        m = io.load(spec.path, **spec.options)
    except Exception as exc:
        raise _with_context(exc, f"{spec.path}: could not load mask {spec.key!r}: {exc}") from exc
    if "c" in m.dims:
        if m.sizes["c"] != 1:
            raise ValueError(f"{spec.path}: mask {spec.key!r} has {m.sizes['c']} channels; give a one-channel label image")
        m = m.isel(c=0, drop=True)
    if "t" in m.dims:
        m = m.isel(t=0, drop=True)
    data = np.asarray(m.data.compute() if hasattr(m.data, "compute") else m.data)
    sel = data == spec.label if spec.label is not None else data > 0
    if not sel.any():
        what = f"label {spec.label}" if spec.label is not None else "non-zero voxels"
        raise ValueError(f"{spec.path}: mask {spec.key!r} has no {what}; check the file or the 'label' field")
    out = mi.like(m, sel.astype(np.uint8), aspect="mask", units="")
    out.attrs["mask_name"] = spec.key
    return out


def select_map(image: xr.DataArray, channel: str | None, what: str = "map") -> xr.DataArray:
    """One channel of ``image`` (by name, MSI target or m/z), or the image itself when it has one channel.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((2, 3, 4)), spacing=1.0, dims=("c", "y", "x"), channels=["a", "b"])
    >>> select_map(img, "b").dims
    ('y', 'x')
    """
    if channel is None:
        if "c" in image.dims:
            if image.sizes["c"] == 1:
                return image.isel(c=0, drop=True)
            return image
        return image
    if "c" not in image.dims:
        raise KeyError(f"{what}: channel {channel!r} asked of an image without channels")
    names = [str(v) for v in image.coords["c"].values] if "c" in image.coords else []
    if channel in names:
        out = image.isel(c=names.index(channel), drop=True)
    else:
        try:
            target = float(channel)
            values = np.array([float(v) for v in image.coords["c"].values])
        except (TypeError, ValueError):
            targets = image.attrs.get("targets_mz") or {}
            raise KeyError(
                f"{what}: no channel {channel!r}; channels are {names}"
                + (f" (targets {sorted(targets)})" if targets else "")
            ) from None
        k = int(np.argmin(np.abs(values - target)))
        if abs(values[k] - target) > 0.01:
            raise KeyError(f"{what}: no channel at m/z {target}; channels are {names}")
        out = image.isel(c=k, drop=True)
    out.attrs = dict(image.attrs)
    out.attrs["channel"] = channel
    return out


def _identity(dim: int) -> Any:
    from multiscale.registration.transform import identity

    return identity(dim)


def _load_truth(path: Path, key: str, dim: int) -> Any:
    """The ground-truth transform ``key`` of a JSON file (ITK convention: fixed -> moving points).

    ``key`` is a dotted path (``transforms.pet_to_mri``; a bare name is also looked up under
    ``transforms``). The entry is a transform file name, ``{"file": ...}``, a homogeneous matrix
    (``matrix_4x4`` / ``matrix_3x3``, acting on column vectors ``(x, y[, z], 1)``), or
    ``matrix`` + ``translation[_mm]`` (+ ``center``/``centre_mm``).
    """
    import json

    import SimpleITK as sitk

    from multiscale.registration import Transform

    data = json.loads(Path(path).read_text())

    def find(root: Any, parts: list[str]) -> Any:
        node = root
        for part in parts:
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node

    node = find(data, key.split("."))
    if node is None and isinstance(data.get("transforms"), Mapping):
        node = find(data["transforms"], key.split("."))
    if node is None:
        keys = sorted(data.get("transforms", data)) if isinstance(data, Mapping) else []
        raise KeyError(f"{path}: no ground-truth transform {key!r}; transforms are {keys}")
    if isinstance(node, str):
        return Transform.load(Path(path).parent / node)
    if "file" in node:
        return Transform.load(Path(path).parent / node["file"])
    hkey = f"matrix_{dim + 1}x{dim + 1}"
    if hkey in node:
        h = np.asarray(node[hkey], dtype=float).reshape(dim + 1, dim + 1)
        matrix, translation, centre = h[:dim, :dim], h[:dim, dim], None
    else:
        matrix = np.asarray(node.get("matrix", np.eye(dim)), dtype=float).reshape(dim, dim)
        translation = np.asarray(node.get("translation", node.get("translation_mm", np.zeros(dim))), dtype=float)
        centre = node.get("center", node.get("centre_mm"))
    t = sitk.AffineTransform(dim)
    if centre is not None:
        t.SetCenter(tuple(float(v) for v in centre))
    t.SetMatrix(tuple(float(v) for v in matrix.reshape(-1)))
    t.SetTranslation(tuple(float(v) for v in translation))
    return Transform(t, {"kind": "ground truth", "file": str(path), "key": key})


def _sample_points_xyz(image: xr.DataArray, mask: xr.DataArray | None = None, n: int = 12) -> np.ndarray:
    """World points (ITK xyz) on a coarse lattice over ``image`` (inside ``mask`` when it has voxels there)."""
    sh = mi.shape(image)
    axes = [np.linspace(0, s - 1, min(n, s)) for s in sh]
    idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(sh))
    return mi.index_to_world(image, idx, xyz=False)[:, ::-1]


def _checker(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Checkerboard of two 2-D images, each scaled to its 1st-99th percentile."""
    def norm(x: np.ndarray) -> np.ndarray:
        x = np.nan_to_num(np.asarray(x, dtype=float))
        lo, hi = np.percentile(x, [1, 99]) if x.size else (0, 1)
        return np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0, 1)

    a, b = norm(a), norm(b)
    yy, xx = np.indices(a.shape)
    ty = max(1, a.shape[0] // tiles)
    tx = max(1, a.shape[1] // tiles)
    sel = ((yy // ty) + (xx // tx)) % 2 == 0
    return np.where(sel, a, b)


def _central_slice(arr: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """A 2-D view: the array itself when 2-D, else the z slice through the weights' centre of mass."""
    if arr.ndim == 2:
        return arr
    if weights is not None and np.nansum(weights) > 0:
        w = np.nan_to_num(np.asarray(weights, dtype=float)).clip(min=0).sum(axis=(1, 2))
        z = int(round(float((w * np.arange(w.size)).sum() / w.sum()))) if w.sum() > 0 else arr.shape[0] // 2
    else:
        z = arr.shape[0] // 2
    return arr[min(max(z, 0), arr.shape[0] - 1)]


def _as_single(image: xr.DataArray) -> xr.DataArray:
    """A one-channel view for registration: a multichannel image is summed over ``c``."""
    if "c" in image.dims:
        s = image.sum("c")
        s.attrs = dict(image.attrs)
        return s
    return image


def _mask_points_xyz(mask: xr.DataArray, max_points: int = 4000) -> np.ndarray:
    """World points (ITK xyz) of the voxel centres inside ``mask`` (every k-th voxel, at most ``max_points``)."""
    idx = np.argwhere(np.asarray(mask.data) > 0)
    step = max(1, int(np.ceil(len(idx) / max_points)))
    return mi.index_to_world(mask, idx[::step].astype(float))[:, ::-1]


def read_landmarks(path: Path, dim: int) -> np.ndarray:
    """Points (n, dim) in ITK ``(x, y[, z])`` order from a CSV with ``x, y[, z]`` columns (or the first numeric ones)."""
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read landmarks: {exc}") from exc
    cols = [c for c in ("x", "y", "z")[:dim] if c in df.columns]
    if len(cols) != dim:
        cols = list(df.select_dtypes("number").columns[-dim:])
    if len(cols) != dim or len(df) < 1:
        raise ValueError(f"{path}: landmarks need {dim} numeric columns named {', '.join('xyz'[:dim])} (mm)")
    return df[cols].to_numpy(dtype=float)


def register_step(edge: EdgeSpec, fixed: xr.DataArray, moving: xr.DataArray,
                  fixed_masks: Mapping[str, xr.DataArray] | None = None) -> dict[str, Any]:
    """Register ``moving`` to ``fixed`` as the edge says; return the transform, quality and a checkerboard.

    With a ground truth, the error (mm) between where the recovered and the true transforms send
    points is reported on a 12-per-axis lattice over the fixed image and over the voxels of each
    mask drawn on the fixed image (``truth_error_mean_mm_in_<mask>``).
    """
    from multiscale import registration as reg
    from multiscale.registration import Transform

    f = _as_single(select_map(fixed, parse_map_name(edge.fixed)[1], what=f"fixed {edge.fixed}"))
    m = _as_single(select_map(moving, parse_map_name(edge.moving)[1], what=f"moving {edge.moving}"))
    dim = len(mi.spatial_dims(f))
    lm = None
    if edge.landmarks is not None:
        lm = (read_landmarks(edge.landmarks[0], dim), read_landmarks(edge.landmarks[1], dim))
        if len(lm[0]) != len(lm[1]):
            raise ValueError(f"{edge.landmarks[0]} has {len(lm[0])} landmarks but {edge.landmarks[1]} has {len(lm[1])}")
    if edge.method == "identity":
        t = _identity(dim)
    elif edge.method == "file":
        t = Transform.load(edge.transform)
    else:
        opts = dict(edge.options)
        if lm is not None and edge.use_landmarks:
            opts["landmarks"] = lm
        try:
            t = reg.register(f, m, transform=edge.method, **opts)
        except Exception as exc:
            raise _with_context(exc, f"registration {edge.name} ({edge.method}): {exc}") from exc
    out: dict[str, Any] = {"transform": t, "edge": edge.name, "method": edge.method}
    m_on_f = reg.resample(m, f, t)
    fa = np.asarray(f.data, dtype=float)
    ma = np.asarray(m_on_f.data, dtype=float)
    out["fixed_slice"] = _central_slice(fa, ma)
    out["moving_slice"] = _central_slice(ma, ma)
    quality: dict[str, float] = {}
    ok = np.isfinite(fa) & np.isfinite(ma) & (ma != 0)
    if ok.sum() > 2 and np.std(fa[ok]) > 0 and np.std(ma[ok]) > 0:
        quality["pearson_after"] = float(np.corrcoef(fa[ok], ma[ok])[0, 1])
    quality["overlap_fraction"] = float(ok.mean())
    if lm is not None:
        tre = np.linalg.norm(t.transform_points(lm[0]) - lm[1], axis=1)
        quality.update(tre_mean_mm=float(tre.mean()), tre_max_mm=float(tre.max()), tre_landmarks=int(tre.size),
                       tre_independent=not edge.use_landmarks)
    if edge.truth is not None:
        truth = _load_truth(edge.truth[0], edge.truth[1], dim)
        pts = _sample_points_xyz(f)
        err = np.linalg.norm(t.transform_points(pts) - truth.transform_points(pts), axis=1)
        quality.update(
            truth_error_mean_mm=float(err.mean()), truth_error_max_mm=float(err.max()),
            truth_error_points=int(err.size),
        )
        for name, mask in (fixed_masks or {}).items():
            mpts = _mask_points_xyz(mask)
            if len(mpts):
                merr = np.linalg.norm(t.transform_points(mpts) - truth.transform_points(mpts), axis=1)
                quality[f"truth_error_mean_mm_in_{name}"] = float(merr.mean())
                quality[f"truth_error_max_mm_in_{name}"] = float(merr.max())
        out["truth"] = {"file": str(edge.truth[0]), "key": edge.truth[1]}
        out["truth_transform"] = truth
    info = getattr(t, "info", {}) or {}
    for k in ("metric_before", "metric_after"):
        if isinstance(info.get(k), (int, float)):
            quality[k] = float(info[k])
    out["quality"] = quality
    return out


def compose_chain(transforms: list[Any]) -> Any:
    """One transform from reference points to the image's frame for a chain ``[t(a->b), t(b->ref)]``.

    Points go through the last edge's transform first (reference -> b), then the first (b -> a).
    """
    if not transforms:
        return None
    if len(transforms) == 1:
        return transforms[0]
    rev = list(reversed(transforms))
    return rev[0].compose(*rev[1:])


def analysis_grid(reference: xr.DataArray, spacing: float) -> xr.DataArray:
    """A template image covering ``reference``'s field of view with isotropic voxels of ``spacing`` mm.

    Same direction; the outer voxel edges start where the reference's do, and the shape is the
    field of view divided by ``spacing``, rounded (at least one voxel).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image, spacing as sp, origin
    >>> g = analysis_grid(spatial_image(np.zeros((100, 60)), spacing=0.005), 0.05)
    >>> g.shape, sp(g), [round(v, 6) for v in origin(g)]  # edges at -0.0025 mm, as the reference's
    ((10, 6), (0.05, 0.05), [0.0225, 0.0225])
    """
    ref = reference.isel(c=0, drop=True) if "c" in reference.dims else reference
    old_sp = np.asarray(mi.spacing(ref))
    shape = tuple(max(1, int(round(n * s / spacing))) for n, s in zip(mi.shape(ref), old_sp))
    d = mi.direction(ref)
    shift = (spacing - old_sp) / 2.0  # along each array axis, from the first voxel centre
    org = np.asarray(mi.origin(ref)) + d @ shift
    return mi.spatial_image(np.zeros(shape, np.uint8), spacing=spacing, origin=org, direction=d,
                            dims=mi.spatial_dims(ref), modality=str(ref.attrs.get("modality", "")),
                            name=f"{ref.name or 'reference'} grid")


def _smooth_for(image: xr.DataArray, target_spacing: float) -> xr.DataArray:
    """Gaussian anti-aliasing before resampling to a coarser grid: sigma = sqrt(t^2 - s^2) / 2.355 per axis."""
    from scipy import ndimage

    sp = np.asarray(mi.spacing(image))
    sig_mm = np.sqrt(np.clip(target_spacing**2 - sp**2, 0, None)) / 2.3548
    if not np.any(sig_mm > 0):
        return image
    sig = [0.0] * image.ndim
    for k, d in enumerate(mi.spatial_dims(image)):
        sig[image.dims.index(d)] = float(sig_mm[k] / sp[k])
    data = ndimage.gaussian_filter(np.asarray(image.data, dtype=np.float32), sig, mode="nearest")
    return image.copy(data=data)


def resample_step(image: xr.DataArray, reference: xr.DataArray, registrations: list[dict[str, Any]],
                  interpolation: str = "linear", smooth_to: float | None = None) -> xr.DataArray:
    """Resample ``image`` once into the reference frame through its composed chain.

    ``smooth_to`` (mm): the target is an analysis grid this coarse; images finer than it are
    smoothed first (Gaussian, FWHM making up the difference) so the coarse voxels average rather
    than alias. Masks (``interpolation="nearest"``) are not smoothed.
    """
    from multiscale import registration as reg

    t = compose_chain([r["transform"] for r in registrations])
    if t is None and mi.same_grid(image, reference):
        return image
    if smooth_to and interpolation != "nearest":
        image = _smooth_for(image, smooth_to)
    ref = reference.isel(c=0, drop=True) if "c" in reference.dims else reference
    out = reg.resample(image, ref, t, interpolation=interpolation)
    if interpolation == "nearest":
        out = out.astype(image.dtype)
    return out


# ---------------------------------------------------------------------------------------------
# analyses
# ---------------------------------------------------------------------------------------------


def _map_units(image: xr.DataArray) -> str:
    return str(image.attrs.get("units", "") or "")


def _expand_maps(names: tuple[str, ...], maps: Mapping[str, xr.DataArray]) -> list[tuple[str, xr.DataArray]]:
    out = []
    for name in names:
        image, channel = parse_map_name(name)
        img = maps[image]
        if channel is None and "c" in img.dims and img.sizes["c"] > 1:
            for c in img.coords["c"].values:
                out.append((f"{image}:{c}", select_map(img, str(c), what=name)))
        else:
            out.append((name, select_map(img, channel, what=name)))
    return out


def _regions(analysis: AnalysisSpec, masks: Mapping[str, xr.DataArray]) -> list[tuple[str, xr.DataArray | None]]:
    if not analysis.masks:
        return [("all", None)]
    return [(m, masks[m]) for m in analysis.masks]


def _whole(image: xr.DataArray) -> xr.DataArray:
    return mi.like(image, np.ones(mi.shape(image), dtype=np.uint8), dims=mi.spatial_dims(image), units="")


def _radial_rows(name: str, img: xr.DataArray, mask: xr.DataArray, params: dict, base: dict) -> tuple[list, dict]:
    """Radial profile rows (one per shell and statistic), plus the gradient and the rim/core ratio.

    ``params`` go to :func:`~multiscale.analysis.radial.radial_profile`; ``gradient: false`` and
    ``rim_core: false`` skip the other two (each recomputes the depth map); ``rim_mm`` and
    ``rim_volume_fraction`` go to the rim/core ratio.
    """
    from multiscale.analysis import radial

    p = dict(params)
    extras = {k: p.pop(k) for k in ("rim_mm", "rim_volume_fraction") if k in p}
    want_gradient = bool(p.pop("gradient", True))
    want_rim_core = bool(p.pop("rim_core", True))
    prof = radial.radial_profile(img, mask, **p)
    units = _map_units(img)
    by = str(prof["by"].iloc[0]) if "by" in prof.columns and len(prof) else p.get("by", "depth_mm")
    bin_units = "mm" if by == "depth_mm" else ("fraction of depth" if by == "normalised_depth" else by)
    rows = []
    stat_cols = [c for c in prof.columns if c not in ("shell", "lower", "upper", "by", "reference", "units")]
    for _, r in prof.iterrows():
        for col in stat_cols:
            v = r[col]
            if not isinstance(v, (int, float, np.integer, np.floating)):
                continue
            if col == "n":
                u = "voxels"
            elif col == "volume_mm3":
                u = "mm3"
            elif col in ("depth_mm", "vessel_distance_mm"):
                u = "mm"
            elif col.startswith("normalised"):
                u = "1"
            else:
                u = units
            row = dict(base, metric=f"shell_{col}", value=float(v), units=u, bin=int(r["shell"]),
                       bin_lo=float(r["lower"]), bin_hi=float(r["upper"]), bin_units=bin_units,
                       detail=f"by={by}")
            rows.append(row)
    extra_fig = {"profile": prof.to_dict("list"), "by": by, "units": units}
    if want_gradient:
        g = radial.radial_gradient(img, mask, max_depth_mm=p.get("max_depth_mm"))
        gunits = {k: f"{units}/mm" for k in g if "per_mm" in k}
        gunits.update({k: units for k in g if "per_normalised" in k or k == "intercept"})
        gunits.update(max_depth_mm="mm", r_squared="1", n="voxels")
        rows += rows_from_result(g, dict(base, detail="least-squares over voxels"), gunits, prefix="gradient_")
    if want_rim_core:
        rc = radial.rim_core_ratio(img, mask, **extras, n_boot=int(p.get("n_boot", 1000)))
        rcu = {"rim_core_ratio": "1", "ci_low": "1", "ci_high": "1", "rim_n": "voxels", "core_n": "voxels",
               "rim_depth_mm": "mm"}
        rcu.update({k: units for k in rc if k.startswith(("rim_", "core_")) and k not in rcu})
        rows += rows_from_result(rc, dict(base), rcu, prefix="rim_core.")
    return rows, extra_fig


def _uptake_units(key: str, units: str) -> str:
    """Units of an uptake metric from its name (``*_ml`` mL, ``tlg*`` units x mL, ``suv*`` the map's units)."""
    k = key.lower()
    if k.endswith("_ml"):
        return "mL"
    if k.endswith("_mm"):
        return "mm"
    if k.endswith("n_voxels") or k == "n":
        return "voxels"
    if k.startswith("tlg"):
        return f"{units}*mL" if units else "mL"
    if k.startswith("fraction"):
        return "1"
    if k.startswith("pidg"):
        return "%ID/g"
    if k.startswith("suv") or k.startswith("sul"):
        return units
    return ""


def _uptake_rows(name: str, img: xr.DataArray, mask: xr.DataArray, params: dict, base: dict) -> tuple[list, dict]:
    from multiscale.analysis import uptake

    res = uptake.uptake_metrics(img, mask, **params)
    units = _map_units(img)
    if isinstance(res, Mapping):
        return rows_from_result(res, base, {k: _uptake_units(k, units) for k in res}), {}
    return rows_from_result(res, base, None), {}


_STAT_UNITS = {"mean", "median", "min", "max", "p10", "p90", "iqr", "range", "mad", "rmad", "medad", "rms"}


def _texture_units(tag: str, units: str) -> str:
    """Units of an IBSI feature tag: intensity statistics carry the map's units, the rest are counts or 1."""
    family, _, name = tag.partition("_")
    if family in ("stat", "loc", "ih") and name in _STAT_UNITS | {"peak_loc", "peak_glob"}:
        return units
    if family == "stat" and name == "var":
        return f"({units})^2" if units else ""
    if family == "stat" and name == "energy":
        return f"({units})^2" if units else ""
    if family == "morph":
        if "vol" in name:
            return "mm3"
        if "area" in name:
            return "mm2"
        if any(k in name for k in ("diam", "axis", "length")):
            return "mm"
    return "1" if family == "stat" else ""


def _texture_rows(name: str, img: xr.DataArray, mask: xr.DataArray, params: dict, base: dict) -> tuple[list, dict]:
    from multiscale.analysis import texture

    p = dict(params)
    p.setdefault("families", ["intensity"])
    res = texture.features(img, mask, **p)
    units = _map_units(img)
    if isinstance(res, __import__("pandas").DataFrame) and {"tag", "value"} <= set(res.columns):
        rows = []
        for _, r in res.iterrows():
            agg = str(r.get("aggregation", "") or "")
            detail = f"IBSI {r.get('ibsi_id', '')}: {r.get('feature', '')}" + (f" ({agg})" if agg else "")
            rows.append(dict(base, metric=str(r["tag"]), value=float(r["value"]),
                             units=_texture_units(str(r["tag"]), units), detail=detail))
        return rows, {}
    return rows_from_result(res, base, None), {}


def _texture_map(name: str, img: xr.DataArray, mask: xr.DataArray, params: dict, base: dict) -> tuple[list, dict]:
    from multiscale.analysis import texture

    fmap = texture.feature_map(img, mask, **params)
    if hasattr(fmap.data, "compute"):
        fmap = fmap.copy(data=np.asarray(fmap.data.compute()))
    rows = []
    m = np.asarray(mask.data, dtype=bool)
    layers = [(str(c), fmap.sel(c=c)) for c in fmap.coords["c"].values] if "c" in fmap.dims else [
        (str(fmap.attrs.get("feature", fmap.name or "feature")), fmap)]
    for feat, layer in layers:
        v = np.asarray(layer.data, dtype=float)[m]
        v = v[np.isfinite(v)]
        if v.size:
            rows.append(dict(base, metric=f"{feat}.map_mean", value=float(v.mean()),
                             units=str(layer.attrs.get("units", "")), detail="mean of the voxel-wise map in the region"))
    return rows, {"texture_map": fmap}


_SPATIAL_DEFAULT = ("distribution_stats", "spatial_autocorrelation")


def _spatial_rows(name: str, img: xr.DataArray, mask: xr.DataArray, params: dict, base: dict) -> tuple[list, dict]:
    """Distribution and spatial statistics; ``params.statistics`` names the functions of
    :mod:`multiscale.analysis.spatial` to run, the other params go to whichever accepts them."""
    import inspect

    from multiscale.analysis import spatial

    p = dict(params)
    funcs = p.pop("statistics", None) or [f for f in _SPATIAL_DEFAULT if hasattr(spatial, f)]
    rows = []
    units = _map_units(img)
    for fn_name in funcs:
        fn = getattr(spatial, fn_name, None)
        if fn is None:
            raise ValueError(f"spatial statistics: no function {fn_name!r} in multiscale.analysis.spatial")
        accepted = inspect.signature(fn).parameters
        res = fn(img, mask, **{k: v for k, v in p.items() if k in accepted})
        guess = {"mean": units, "sd": units, "median": units, "p25": units, "p75": units, "n": "voxels"}
        detail = fn_name + (f" ({res['method']})" if isinstance(res, Mapping) and isinstance(res.get("method"), str) else "")
        rows += rows_from_result(res, dict(base, detail=detail), guess)
    return rows, {}


_PER_MAP = {"radial": _radial_rows, "uptake": _uptake_rows, "texture": _texture_rows,
            "texture_map": _texture_map, "spatial": _spatial_rows}


def _coloc_rows(a_name: str, a: xr.DataArray, b_name: str, b: xr.DataArray, mask: xr.DataArray | None,
                params: dict, base: dict) -> tuple[list, dict]:
    from multiscale.analysis import coloc

    if not mi.same_grid(a, b):
        raise ValueError(f"colocalisation: {a_name} and {b_name} are not on the same grid after resampling")
    res = coloc.colocalisation(a, b, mask=mask, **params)
    detail = ", ".join(f"{k}={res[k]}" for k in ("convention", "costes_method") if isinstance(res.get(k), str))
    rows = rows_from_result(res, dict(base, map=f"{a_name} ~ {b_name}", detail=detail), "1")
    for r in rows:
        if "threshold" in r["metric"]:
            r["units"] = _map_units(a) if r["metric"].endswith(("1", "_a", "ch1")) else _map_units(b)
        elif r["metric"] in ("n",):
            r["units"] = "voxels"
        elif r["metric"] == "costes_intercept":
            r["units"] = _map_units(b)
    av = np.asarray(a.data, dtype=float)
    bv = np.asarray(b.data, dtype=float)
    sel = np.isfinite(av) & np.isfinite(bv)
    if mask is not None:
        sel &= np.asarray(mask.data, dtype=bool)
    hist, xe, ye = np.histogram2d(av[sel], bv[sel], bins=64)
    return rows, {"hist2d": hist, "xedges": xe, "yedges": ye, "a": a_name, "b": b_name,
                  "a_units": _map_units(a), "b_units": _map_units(b)}


def analysis_step(subject_id: str, analysis: AnalysisSpec, maps: Mapping[str, xr.DataArray],
                  masks: Mapping[str, xr.DataArray]) -> dict[str, Any]:
    """Run one analysis of a subject over its maps and regions; return tidy rows and figure data."""
    rows: list[dict] = []
    figures: list[dict] = []
    for region, mask in _regions(analysis, masks):
        if analysis.type == "colocalisation":
            for a_name, b_name in analysis.pairs:
                (an, a), = _expand_maps((a_name,), maps)
                (bn, b), = _expand_maps((b_name,), maps)
                base = {"subject": subject_id, "region": region, "analysis": analysis.name}
                try:
                    r, fig = _coloc_rows(an, a, bn, b, mask, analysis.params, base)
                except Exception as exc:
                    raise _with_context(exc, f"analysis {analysis.name!r} (colocalisation) of {an} ~ {bn} in "
                                             f"{region}: {exc}") from exc
                rows += r
                figures.append(dict(fig, kind="coloc", region=region, analysis=analysis.name))
            continue
        for map_name, img in _expand_maps(analysis.maps, maps):
            m = mask if mask is not None else _whole(img)
            base = {"subject": subject_id, "region": region, "map": map_name, "analysis": analysis.name}
            try:
                r, fig = _PER_MAP[analysis.type](map_name, img, m, analysis.params, base)
            except Exception as exc:
                raise _with_context(exc, f"analysis {analysis.name!r} ({analysis.type}) of {map_name} in {region}: "
                                         f"{exc}") from exc
            rows += r
            if fig:
                figures.append(dict(fig, kind=analysis.type, region=region, map=map_name, analysis=analysis.name))
    for r in rows:
        r.setdefault("map", "")
    return {"rows": rows, "figures": figures}


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------


def subject_folder(output: Path, subject_id: str) -> Path:
    """Where a subject's outputs go: ``<output>/subjects/<id>``."""
    return Path(output) / "subjects" / subject_id


def subject_is_complete(study: Study, subject: SubjectSpec, output: Path) -> bool:
    """True when the subject's folder holds a success marker for the same study settings and inputs."""
    import json

    marker = subject_folder(output, subject.id) / SUCCESS_FILE
    if not marker.is_file():
        return False
    try:
        rec = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if rec.get("fingerprint") != study.subject_fingerprint(subject):
        return False
    if rec.get("inputs") != input_checksums(subject.input_files()):
        return False
    folder = marker.parent
    return all((folder / f).exists() for f in rec.get("outputs", []))


def _frame_stack(frame: str, maps: Mapping[str, xr.DataArray], frame_of: Mapping[str, str],
                 extra: list[tuple[str, xr.DataArray]]) -> xr.DataArray:
    """Every map of one reference frame as one multichannel float32 image with named channels."""
    layers: list[tuple[str, xr.DataArray]] = []
    ref = maps[frame]
    for key, img in maps.items():
        if frame_of[key] != frame:
            continue
        if "c" in img.dims:
            for c in img.coords["c"].values:
                layers.append((f"{key}:{c}", img.sel(c=c, drop=True)))
        else:
            layers.append((key, img))
    layers += extra
    ref2 = ref.isel(c=0, drop=True) if "c" in ref.dims else ref
    data = np.stack([np.asarray(layer.data, dtype=np.float32) for _, layer in layers])
    units = {name: _map_units(layer) for name, layer in layers}
    out = mi.spatial_image(
        data, spacing=mi.spacing(ref2), origin=mi.origin(ref2), direction=mi.direction(ref2),
        dims=("c",) + mi.spatial_dims(ref2), channels=[n for n, _ in layers],
        modality=str(ref.attrs.get("modality", "")), units="per channel", aspect="maps",
        name=f"{frame}_frame",
    )
    out.attrs["channel_units"] = units
    out.attrs["reference"] = frame
    return out


def frame_maps(subject: SubjectSpec, frame: str, maps: Mapping[str, xr.DataArray],
               masks: Mapping[str, xr.DataArray], analyses: list[dict[str, Any]]) -> xr.DataArray:
    """One reference frame's output stack: its maps, then its masks (``mask:<name>``) and texture maps."""
    frame_of = frames_of(subject)
    extra = [(f"mask:{k}", m) for k, m in masks.items() if frame_of[subject.masks[k].on] == frame]
    for a in analyses:
        for fig in a["figures"]:
            if fig.get("kind") != "texture_map" or frame_of[parse_map_name(fig["map"])[0]] != frame:
                continue
            fmap = fig["texture_map"]
            if "c" in fmap.dims:
                extra += [(f"texture:{c}:{fig['map']}", fmap.sel(c=c, drop=True)) for c in fmap.coords["c"].values]
            else:
                extra.append((f"texture:{fig['map']}", fmap))
    return _frame_stack(frame, maps, frame_of, extra)


def _staging_prefix(subject_id: str, token: str) -> str:
    """Name prefix of a run's staging folders for one subject (beside the subject folders)."""
    return f".{subject_id}.staging-{token}."


def remove_staging(output: Path, subject_id: str, token: str) -> None:
    """Remove what a run (``token``) staged for a subject that then failed."""
    parent = subject_folder(output, subject_id).parent
    if parent.is_dir():
        for p in parent.glob(_staging_prefix(subject_id, token) + "*.tmp"):
            shutil.rmtree(p, ignore_errors=True)


def frame_maps_step(subject: SubjectSpec, frame: str, maps: dict, masks: dict, analyses: list,
                    output: Path, token: str) -> Path:
    """Write one reference frame's OME-Zarr into a staging folder beside the subject folders.

    Returns the store's path; the subject's write step moves it into the subject folder. A
    staging folder left by a subject that failed later is removed by the runner.
    """
    from multiscale import io

    parent = subject_folder(output, subject.id).parent
    parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=_staging_prefix(subject.id, token), suffix=".tmp", dir=parent))
    try:
        store = stage / f"{frame}.ome.zarr"
        io.save(frame_maps(subject, frame, maps, masks, analyses), store)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return store


def write_subject_step(study: Study, subject: SubjectSpec, output: Path, maps: dict[str, xr.DataArray],
                       masks: dict[str, xr.DataArray], registrations: dict[str, dict[str, Any]],
                       analyses: list[dict[str, Any]], timings: dict[str, float],
                       inputs: dict[str, str], figures: dict[str, bytes] | None = None,
                       map_stores: dict[str, Path] | None = None) -> dict[str, Any]:
    """Write tables, maps, transforms, figures, provenance and the subject report; swap into place.

    ``figures`` are the subject's PNGs by file name, drawn here when not given; ``map_stores`` the
    OME-Zarr stores of reference frames already written by :func:`frame_maps_step` (moved in).
    """
    from multiscale import io

    from . import report

    final = subject_folder(output, subject.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{subject.id}.", suffix=".tmp", dir=final.parent))
    t0 = time.perf_counter()
    try:
        rows = [r for a in analyses for r in a["rows"]]
        table = results_frame(rows)
        write_results(table, tmp)
        outputs = ["results.parquet", "results.csv"]
        (tmp / "transforms").mkdir()
        for name, r in registrations.items():
            r["transform"].save(tmp / "transforms" / f"{name}.tfm")
            outputs.append(f"transforms/{name}.tfm")
        for image in subject.images:
            chain = chain_to_reference(subject, image)
            if len(chain) > 1:
                composed = compose_chain([registrations[e.name]["transform"] for e in chain])
                fname = f"transforms/{image}_to_{chain[-1].fixed_image}.tfm"
                composed.save(tmp / fname)
                outputs.append(fname)
        (tmp / "maps").mkdir()
        for frame in references_of(subject):
            target = tmp / "maps" / f"{frame}.ome.zarr"
            staged = (map_stores or {}).get(frame)
            if staged is not None:  # written by the frame's own task: move it in (same folder tree)
                os.replace(staged, target)
                shutil.rmtree(Path(staged).parent, ignore_errors=True)
            else:
                io.save(frame_maps(subject, frame, maps, masks, analyses), target)
            outputs.append(f"maps/{frame}.ome.zarr")
        reg_summary = {}
        for name, r in registrations.items():
            reg_summary[name] = {"edge": r["edge"], "method": r["method"], "quality": r["quality"],
                                 "truth": r.get("truth"), "info": getattr(r["transform"], "info", {})}
            if r.get("truth_transform") is not None:
                reg_summary[name]["recovered_parameters"] = report._linear_summary(r["transform"])
                reg_summary[name]["true_parameters"] = report._linear_summary(r["truth_transform"])
        write_json(reg_summary, tmp / "registration.json")
        outputs.append("registration.json")
        if figures is None:
            figures = report.subject_figures(subject, maps, masks, registrations, analyses, table)
        (tmp / "figures").mkdir()
        for fname, png in figures.items():
            (tmp / "figures" / fname).write_bytes(png)
            outputs.append(f"figures/{fname}")
        timings = dict(timings)
        timings[f"write-{subject.id}"] = time.perf_counter() - t0
        prov = provenance_record(
            {"subject": subject, "analyses": list(study.analyses), "study_file": str(study.path)},
            inputs, timings, subject=subject.id, study=study.name,
        )
        write_json(prov, tmp / "provenance.json")
        outputs.append("provenance.json")
        html = report.subject_report_html(study, subject, table, figures, reg_summary, timings)
        (tmp / "report.html").write_text(html, encoding="utf-8")
        outputs.append("report.html")
        write_json({"subject": subject.id, "fingerprint": study.subject_fingerprint(subject), "inputs": inputs,
                    "outputs": outputs, "timings_s": timings}, tmp / SUCCESS_FILE)
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"subject": subject.id, "folder": str(final), "rows": len(table), "timings": timings}


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Replace ``final`` by the finished folder ``tmp`` (renames within one folder)."""
    from .results import _umask_mode

    os.chmod(tmp, _umask_mode(0o777))  # mkdtemp made it private
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{time.time_ns()}"
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the graph
# ---------------------------------------------------------------------------------------------


def subject_graph(study: Study, subject: SubjectSpec, output: Path, token: str = "") -> Any:
    """The subject's ``dask.delayed`` task graph; computing it writes the outputs and returns a summary.

    Examples
    --------
    >>> g = subject_graph(study, study.subjects[0], Path("out"))  # doctest: +SKIP
    >>> g.compute(scheduler="sync")["rows"]  # doctest: +SKIP
    42
    """
    from dask import delayed

    sid = subject.id

    suffix = f"-{sid}" + (f"-{token}" if token else "")

    def node(name: str, fn: Any, *args: Any) -> Any:
        return delayed(_step, pure=False)(name, fn, *args, dask_key_name=f"{name}{suffix}")

    images = {k: node(f"load-{k}", load_image_step, spec) for k, spec in subject.images.items()}
    masks_raw = {k: node(f"load-mask-{k}", load_mask_step, spec) for k, spec in subject.masks.items()}
    regs = {e.name: node(f"register-{e.name}", register_step, e, images[e.fixed_image], images[e.moving_image],
                         {k: masks_raw[k] for k, spec in subject.masks.items() if spec.on == e.fixed_image})
            for e in subject.edges}
    frame_of = frames_of(subject)
    # each reference frame's grid: the reference image's own, or a coarser analysis grid
    grid = {r: images[r] for r in references_of(subject)}
    smooth = {r: None for r in grid}
    for r, g in subject.grids.items():
        grid[r] = node(f"grid-{r}", analysis_grid, images[r], g["spacing"])
        smooth[r] = g["spacing"] if g.get("smooth", True) else None
    maps = {}
    for k in subject.images:
        chain = chain_to_reference(subject, k)
        r = frame_of[k]
        if not chain and r not in subject.grids:
            maps[k] = images[k]
        else:
            maps[k] = node(f"resample-{k}", resample_step, images[k], grid[r],
                           [regs[e.name] for e in chain], "linear", smooth[r])
    masks = {}
    for k, spec in subject.masks.items():
        chain = chain_to_reference(subject, spec.on)
        masks[k] = node(f"resample-mask-{k}", resample_step, masks_raw[k], grid[frame_of[spec.on]],
                        [regs[e.name] for e in chain], "nearest")
    results = []
    for a in study.analyses:
        needed = {parse_map_name(n)[0] for n in list(a.maps) + [m for p in a.pairs for m in p]}
        results.append(node(f"analysis-{a.name}", analysis_step, sid, a, {k: maps[k] for k in needed},
                            {k: masks[k] for k in a.masks}))
    # figures in tasks of their own (one per reference frame, registration and analysis), so that
    # the workers share a subject's figures instead of one worker drawing them all at its end
    # a frame's tasks get that frame's maps and masks only (fewer images to move between workers)
    maps_in = {r: {k: m for k, m in maps.items() if frame_of[k] == r} for r in references_of(subject)}
    masks_in = {r: {k: m for k, m in masks.items() if frame_of[subject.masks[k].on] == r} for r in references_of(subject)}
    figures = [node(f"figures-overlay-{r}", registration_figures_step, subject, maps_in[r], masks_in[r], {}, [r])
               for r in references_of(subject)]
    figures += [node(f"figures-registration-{e.name}", registration_figures_step, subject, {}, {},
                     {e.name: regs[e.name]}, []) for e in subject.edges]
    figures += [node(f"figures-{a.name}", analysis_figures_step, r, {k: masks[k] for k in a.masks})
                for a, r in zip(study.analyses, results)]
    # and each reference frame's OME-Zarr, in a staging folder that the write step moves in
    stores = {r: node(f"maps-{r}", frame_maps_step, subject, r, maps_in[r], masks_in[r], results, Path(output),
                      token or "run")
              for r in references_of(subject)}
    return delayed(_final, pure=False)(
        study, subject, Path(output), maps, masks, regs, results, figures, stores, dask_key_name=f"write{suffix}")


def registration_figures_step(subject: SubjectSpec, maps: dict, masks: dict, registrations: dict,
                              frames: list[str]) -> dict[str, bytes]:
    """Overlay figures of ``frames`` and checkerboards of ``registrations`` (PNG bytes by file name)."""
    from . import report

    return report.registration_figures(subject, maps, masks, registrations, frames)


def analysis_figures_step(result: dict[str, Any], masks: dict) -> dict[str, bytes]:
    """One analysis result's figures (PNG bytes by file name)."""
    from . import report

    return report.analysis_figures(result, results_frame(result["rows"]), masks)


def _final(study: Study, subject: SubjectSpec, output: Path, maps: dict, masks: dict, regs: dict,
           results: list, figures: list | None = None, stores: dict | None = None) -> dict[str, Any]:
    import dask

    t0 = time.perf_counter()
    inputs = input_checksums(subject.input_files())  # on the worker, in parallel across subjects
    timings: dict[str, float] = {"checksum-inputs": time.perf_counter() - t0}
    maps, masks, regs, results, figures, stores = _unwrap([maps, masks, regs, results, figures, stores], timings)
    merged = None
    if figures is not None:
        merged = {}
        for f in figures:
            merged.update(f)
    timings = {f"{k}": v for k, v in timings.items()}
    with dask.config.set(scheduler=_INNER_SCHEDULER):
        return write_subject_step(study, subject, output, maps, masks, regs, results, timings, inputs, merged, stores)


def run_subject(study: Study, subject: SubjectSpec, output: Path) -> dict[str, Any]:
    """Run one subject in this process (synchronous scheduler) and return its summary.

    Raises whatever the failing step raised, with the step's traceback.
    """
    try:
        return subject_graph(study, subject, output, "run").compute(scheduler="sync")
    except BaseException:
        remove_staging(output, subject.id, "run")
        raise


def format_error(exc: BaseException, tb: Any = None) -> str:
    """``Type: message`` plus the last frames of the traceback, for reports."""
    lines = traceback.format_exception(type(exc), exc, tb if tb is not None else exc.__traceback__)
    return "".join(lines[-6:]).strip()
