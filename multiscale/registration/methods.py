"""Intensity registration: a robust multimodal pipeline on SimpleITK's ``ImageRegistrationMethod``.

``register(fixed, moving)`` returns a :class:`~multiscale.registration.transform.Transform` that
maps fixed-frame points into the moving frame; resample the moving image with it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi

from ._grids import grid_box_xyz, grid_from_reference
from ._multires import RegistrationError, channel_image, to_working, working_spacing
from .landmarks import landmark_transform
from .transform import Transform, linear_parts

__all__ = ["register", "RegistrationError", "METRICS", "STAGES", "metric_value"]

METRICS = ("mattes_mi", "ncc", "mean_squares")
STAGES = ("translation", "rigid", "similarity", "affine", "bspline")
PRESETS = {
    "auto": ["rigid", "affine", "bspline"],
    "translation": ["translation"],
    "rigid": ["rigid"],
    "similarity": ["rigid", "similarity"],
    "affine": ["rigid", "affine"],
    "bspline": ["rigid", "affine", "bspline"],
}

_DEFAULTS: dict[str, Any] = {
    "fixed_channel": None,
    "moving_channel": None,
    "working_spacing": None,  # mm; default: the coarser image's finest pixel
    "working_factor": 1.0,
    "max_voxels": None,
    "levels": None,  # pyramid levels (halving); default: down to a ~32-pixel coarsest image, at most 6
    "iterations": 300,
    "final_draws": 4,  # small images: average the linear fit over this many jitter draws
    "bspline_iterations": None,  # default 50 for "lbfgsb" (past ~50 a fixed sample set is fitted, not the images), else 100
    "bspline_mesh": None,  # control-point intervals per axis (an int or one per axis); default 8 in 2-D, 10 in 3-D
    "bspline_levels": 1,
    # "lbfgsb": Mattes MI with the B-spline's sparse Jacobian (_bspline.py) and SciPy's L-BFGS-B;
    # "lbfgs2" / "gd": SimpleITK's LBFGS2 / regular-step gradient descent (dense Jacobian: slow)
    "bspline_optimizer": "lbfgsb",
    "samples": 50000,  # random (jittered) metric samples per level, at most every voxel
    "bspline_samples": None,  # the same for the B-spline stage; default: `samples` ("lbfgsb"), 20,000 otherwise
    "sampling": None,  # or a fixed fraction of voxels per level
    "bins": None,  # Mattes histogram bins; default 0.75 sqrt(voxels of the level), within [24, 64]
    "rotation_search": None,  # default: on in 2-D, off in 3-D
    "rotation_step_deg": 15.0,
    "keep_tolerance": 0.01,  # "auto": affine is kept when it lowers the metric by this fraction
    "bspline_keep_tolerance": 0.05,  # "auto": B-spline must lower it by this much (it can overfit)
    "threads": None,
    "landmark_kind": "rigid",
    "slice_to_volume": False,
    "section_thickness": None,
    "verbose": False,
}


def register(
    fixed: xr.DataArray,
    moving: xr.DataArray,
    transform: str | Sequence[str] = "auto",
    metric: str = "mattes_mi",
    fixed_mask: xr.DataArray | None = None,
    moving_mask: xr.DataArray | None = None,
    landmarks: tuple[Any, Any] | None = None,
    initial: Transform | None = None,
    seed: int = 0,
    **options: Any,
) -> Transform:
    """Register ``moving`` to ``fixed``: the transform mapping fixed-frame points into the moving frame.

    The default, ``transform="auto"``, is a robust multimodal pipeline: initialisation (centres of
    mass and of the images, plus a coarse rotation search in 2-D, or the landmarks / ``initial``
    when given), then rigid, affine and B-spline stages. Rigid is always kept; affine and B-spline
    are kept only when they lower the metric at the working resolution (full sampling) by 1% and
    5% respectively and, when landmarks are given, do not increase their error by more than 5%. Explicit presets keep every stage.

    The B-spline stage (Mattes MI, the default) runs its own metric: SimpleITK's metric treats a
    B-spline as a global transform, so each of its evaluations costs samples x parameters (about a
    second for a 10-interval 3-D mesh and 20,000 samples) and it needs few histogram bins to stay
    in memory (bins^2 x parameters). Evaluating Mattes MI and its exact gradient with the spline's
    sparse Jacobian (each sample moves only the 4^dim control points around it) costs samples x
    4^dim instead, so the stage can afford as many samples as the linear stages and the usual
    number of bins (both lower the error of a deformable fit), then SciPy's L-BFGS-B optimises.

    Both images are first brought to a working resolution no finer than the coarser image's
    pixel size (``working_spacing`` mm), smoothed in mm before decimation, so a whole slide never
    enters the optimiser at full resolution; each stage then runs a multi-resolution schedule
    (shrink ..., 4, 2, 1 with Gaussian smoothing of half the shrink factor in working pixels,
    applied in mm), each level drawing its own random, jittered metric samples.

    Parameters
    ----------
    fixed, moving : xarray.DataArray
        Images in physical space (mm), both 2-D or both 3-D; a 2-D ``fixed`` section and a 3-D
        ``moving`` volume with ``slice_to_volume=True``. Multichannel images are reduced with
        ``fixed_channel`` / ``moving_channel`` (see below).
    transform : str or list of str
        ``"auto"``, ``"translation"``, ``"rigid"``, ``"similarity"`` (rigid then similarity),
        ``"affine"`` (rigid then affine), ``"bspline"`` (rigid, affine, B-spline),
        ``"landmarks"`` (least-squares fit to ``landmarks`` only, kind ``landmark_kind``), or a list
        of stages from ``("translation", "rigid", "similarity", "affine", "bspline")``.
    metric : {"mattes_mi", "ncc", "mean_squares"}
        Mattes mutual information across modalities; correlation or mean squares within one.
    fixed_mask, moving_mask : xarray.DataArray, optional
        Non-zero where the metric may sample; each on its image's grid.
    landmarks : (fixed_points, moving_points), optional
        Corresponding points, (n, d) arrays of ``(x, y[, z])`` rows in mm, ``n >= 3``. Used to
        initialise (``landmark_kind`` fit) and to check the optional stages.
    initial : Transform, optional
        Starting transform (fixed -> moving), e.g. a previous result or a section's position.
    seed : int
        Seed of the metric's random sampling; same seed, same threads, same result.
    **options
        Channels: ``fixed_channel``, ``moving_channel`` (None/"sum"/"tic", "mean", "max", a channel
        label, a position, ``{label: weight}`` or one weight per channel).
        Resolution: ``working_spacing`` (mm) or ``working_factor`` (times the coarser image's
        pixel); ``max_voxels``; ``levels`` (pyramid halvings; default down to a ~32-pixel coarsest
        image, at most 6).
        Sampling: ``samples`` (random, jittered metric samples per level, 50,000) or ``sampling``
        (a fixed fraction instead); ``bins`` (Mattes bins; default 0.75 sqrt(voxels) within
        [24, 64]); ``final_draws`` (small images: average the linear fit over this many sample
        draws, 4).
        Optimiser: ``iterations`` (per level, 300); ``bspline_iterations`` (50 for "lbfgsb", 100 otherwise);
        ``bspline_mesh`` (control-point intervals per axis, 8 in 2-D, 10 in 3-D); ``bspline_levels`` (1);
        ``bspline_samples`` (default ``samples`` for "lbfgsb", 20,000 for the SimpleITK optimisers);
        ``bspline_optimizer``: "lbfgsb" (default; Mattes MI only, and no non-linear ``initial``:
        otherwise "lbfgs2" is used), "lbfgs2" or "gd" (SimpleITK's optimisers; see the B-spline
        stage notes below).
        Initialisation: ``rotation_search`` (default on in 2-D), ``rotation_step_deg`` (15);
        ``landmark_kind`` ("rigid", "similarity", "affine").
        Keeping stages in ``"auto"``: ``keep_tolerance`` (0.01) and ``bspline_keep_tolerance``
        (0.05), the relative metric gain affine and B-spline must bring.
        Other: ``threads`` (fix with ``seed`` for bit-identical runs); ``slice_to_volume``;
        ``section_thickness`` (mm); ``verbose``.

    Returns
    -------
    Transform
        ``info`` records the metric (as SimpleITK reports it: lower is better, Mattes MI negated)
        before and after, each stage with kept/iterations/time, and the working spacing.

    Raises
    ------
    RegistrationError
        Images that do not overlap, 2-D against 3-D without ``slice_to_volume``, masks on other
        grids, fewer than 3 landmarks, unknown stage or metric names.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:64, :64]
    >>> blob = lambda cy, cx: np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)
    >>> fixed = spatial_image(blob(30, 30) + 0.5 * blob(20, 44), spacing=(0.1, 0.1))
    >>> moving = spatial_image(blob(33, 28) + 0.5 * blob(23, 42), spacing=(0.1, 0.1))
    >>> t = register(fixed, moving, transform="translation", metric="mean_squares")
    >>> np.round(t.transform_points([3.0, 3.0]), 1).tolist()
    [2.8, 3.3]
    """
    opts = dict(_DEFAULTS)
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise RegistrationError(f"unknown option(s) {unknown}; known options are {sorted(_DEFAULTS)}")
    opts.update(options)
    if metric not in METRICS:
        raise RegistrationError(f"metric={metric!r} is not one of {METRICS}")
    for what, img in (("fixed", fixed), ("moving", moving)):
        if not isinstance(img, xr.DataArray):
            raise RegistrationError(f"{what} must be an image (xarray.DataArray from spatial_image), got {type(img).__name__}")
        mi.validate(img)
    nf, nm = len(mi.spatial_dims(fixed)), len(mi.spatial_dims(moving))
    if nf != nm:
        if nf == 2 and nm == 3 and opts["slice_to_volume"]:
            from .slice_to_volume import register_slice_to_volume

            with _thread_count(opts["threads"]):
                return register_slice_to_volume(
                    fixed, moving, initial=initial, metric=metric, seed=seed, fixed_mask=fixed_mask,
                    **_s2v_opts(opts),
                )
        if nf == 2 and nm == 3:
            raise RegistrationError(
                "fixed is 2-D and moving is 3-D: to place a section in a volume pass slice_to_volume=True "
                "(and initial= the section's approximate position), or register two 2-D images"
            )
        raise RegistrationError(
            f"fixed is {nf}-D and moving is {nm}-D; for slice-to-volume make the 2-D section the fixed "
            "image and the 3-D volume the moving one, with slice_to_volume=True"
        )
    if opts["bspline_optimizer"] not in ("lbfgsb", "lbfgs2", "gd"):
        raise RegistrationError(f"bspline_optimizer={opts['bspline_optimizer']!r} is not one of ('lbfgsb', 'lbfgs2', 'gd')")
    stages = _stage_list(transform)
    dim = nf
    threads = opts["threads"]

    with _thread_count(threads):
        return _register(fixed, moving, stages, metric, fixed_mask, moving_mask, landmarks, initial, seed,
                         opts, transform)


def _register(fixed, moving, stages, metric, fixed_mask, moving_mask, landmarks, initial, seed, opts,
              transform) -> Transform:
    dim = len(mi.spatial_dims(fixed))
    threads = opts["threads"]
    t_start = time.perf_counter()
    if stages == ["landmarks"]:
        if landmarks is None:
            raise RegistrationError("transform='landmarks' needs landmarks=(fixed_points, moving_points)")
        t = landmark_transform(*landmarks, kind=opts["landmark_kind"])
        t.info.update(_base_info(fixed, moving, metric, seed, ["landmarks"], time.perf_counter() - t_start))
        return t

    fixed1 = channel_image(fixed, opts["fixed_channel"], name="fixed")
    moving1 = channel_image(moving, opts["moving_channel"], name="moving")
    _check_mask(fixed_mask, fixed, "fixed_mask", "fixed")
    _check_mask(moving_mask, moving, "moving_mask", "moving")
    lm = None
    if landmarks is not None:
        if len(landmarks) != 2:
            raise RegistrationError("landmarks must be a pair (fixed_points, moving_points)")
        lm_init = landmark_transform(*landmarks, kind=opts["landmark_kind"])
        lm = (np.asarray(landmarks[0], float), np.asarray(landmarks[1], float))
        if initial is None:
            initial = lm_init
    if initial is not None and not isinstance(initial, Transform):
        raise RegistrationError(f"initial must be a Transform, got {type(initial).__name__}")
    if initial is not None and initial.dimension != dim:
        raise RegistrationError(f"initial is a {initial.dimension}-D transform but the images are {dim}-D")
    check_overlap(fixed1, moving1, initial)

    ws = opts["working_spacing"] or working_spacing(fixed1, moving1, opts["working_factor"])
    f_s = to_working(fixed1, ws, max_voxels=opts["max_voxels"])
    m_s = to_working(moving1, ws, max_voxels=opts["max_voxels"])
    fm_s = to_working(fixed_mask, ws, nearest=True, max_voxels=opts["max_voxels"]) if fixed_mask is not None else None
    mm_s = to_working(moving_mask, ws, nearest=True, max_voxels=opts["max_voxels"]) if moving_mask is not None else None
    if fm_s is not None:
        fm_s = _match_grid(fm_s, f_s)
    if mm_s is not None:
        mm_s = _match_grid(mm_s, m_s)
    ctx = _Context(f_s, m_s, fm_s, mm_s, metric, seed, opts, threads)

    # ---------------- initialisation
    ident = Transform(_identity(dim))
    metric_identity = ctx.evaluate(ident.sitk)
    outer = None  # a non-linear initial transform stays outside the optimised linear part
    if initial is not None and not initial.is_linear:
        outer, current = initial, None
    else:
        current = initial
    init_record: dict[str, Any] = {}
    if current is None:
        current, init_record = _initialise(ctx, dim, opts, stages, outer)
    else:
        init_record = {"method": "given" if landmarks is None or initial is not lm_init else "landmarks"}
    metric_init = ctx.evaluate(_full(current, outer))
    init_record["metric"] = metric_init

    # ---------------- stages
    records = []
    kept: list[str] = []
    best = current
    best_metric = metric_init
    best_tre = _tre(lm, _full(best, outer)) if lm is not None else None
    checked = transform == "auto"
    for k, stage in enumerate(stages):
        t0 = time.perf_counter()
        cand, iters, stop = ctx.run_stage(stage, best, outer)
        after = ctx.evaluate(_full(cand, outer))
        tre_after = _tre(lm, _full(cand, outer)) if lm is not None else None
        keep = True
        if checked and k > 0:
            tol = opts["bspline_keep_tolerance"] if stage == "bspline" else opts["keep_tolerance"]
            keep = after < best_metric - tol * abs(best_metric)
            if keep and lm is not None and tre_after is not None and best_tre is not None:
                keep = tre_after <= best_tre * 1.05 + 1e-9
        rec = {
            "stage": stage,
            "kept": bool(keep),
            "iterations": int(iters),
            "metric_before": float(best_metric),
            "metric_after": float(after),
            "time_s": float(time.perf_counter() - t0),
            "stop": stop,
        }
        if tre_after is not None:
            rec["landmark_tre_mm"] = float(tre_after)
        records.append(rec)
        if opts["verbose"]:
            print(f"register: {rec}")
        if keep:
            best, best_metric = cand, after
            best_tre = tre_after if tre_after is not None else best_tre
            kept.append(stage)
    final = _full(best, outer)
    info = _base_info(fixed, moving, metric, seed, kept, time.perf_counter() - t_start)
    info.update(
        {
            "metric_identity": float(metric_identity),
            "metric_before": float(metric_init),
            "metric_after": float(best_metric),
            "initialisation": init_record,
            "stages": records,
            "iterations": int(sum(r["iterations"] for r in records)),
            "working_spacing_mm": float(ws),
            "working_shape": {"fixed": list(f_s.GetSize())[::-1], "moving": list(m_s.GetSize())[::-1]},
            "options": {k: v for k, v in opts.items() if k not in ("verbose",)},
        }
    )
    if lm is not None:
        info["landmark_tre_mm"] = float(_tre(lm, final))
    return Transform(final, info)


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------


def check_overlap(fixed: xr.DataArray, moving: xr.DataArray, initial: Transform | None = None) -> None:
    """Raise :class:`RegistrationError` when the two images share no physical space.

    With ``initial``, the fixed image's box is first mapped into the moving frame.
    """
    fbox = grid_box_xyz(grid_from_reference(fixed))
    mbox = grid_box_xyz(grid_from_reference(moving))
    n = fbox.shape[1]
    if initial is not None:
        corners = np.array(np.meshgrid(*[fbox[:, i] for i in range(n)], indexing="ij")).reshape(n, -1).T
        mapped = initial.transform_points(corners)
        fbox = np.stack([mapped.min(0), mapped.max(0)])
    lo = np.maximum(fbox[0], mbox[0])
    hi = np.minimum(fbox[1], mbox[1])
    if np.any(hi <= lo):
        raise RegistrationError(
            "fixed and moving do not overlap in physical space: fixed spans "
            f"{np.round(fbox, 4).tolist()} mm and moving {np.round(mbox, 4).tolist()} mm (x, y[, z]); check "
            "origins and units (everything in mm: 20 um = 0.02), or pass initial= / landmarks= to place them"
        )


def _check_mask(mask: xr.DataArray | None, img: xr.DataArray, what: str, of: str) -> None:
    if mask is None:
        return
    if not isinstance(mask, xr.DataArray):
        raise RegistrationError(f"{what} must be an image on the {of} image's grid, got {type(mask).__name__}")
    mi.validate(mask)
    ref = img.isel({d: 0 for d in img.dims if d not in mi.SPATIAL_DIMS})
    if not mi.same_grid(mask, ref):
        raise RegistrationError(
            f"{what} is not on the {of} image's grid (shape {mi.shape(mask)} vs {mi.shape(ref)}, spacing "
            f"{mi.spacing(mask)} vs {mi.spacing(ref)}); bring it there first with "
            f"resample(mask, {of}, interpolation='nearest')"
        )


def _match_grid(mask_s: Any, img_s: Any) -> Any:
    import SimpleITK as sitk

    if mask_s.GetSize() == img_s.GetSize() and np.allclose(mask_s.GetSpacing(), img_s.GetSpacing()):
        mask_s.CopyInformation(img_s)
        return mask_s
    return sitk.Resample(mask_s, img_s, sitk.Transform(), sitk.sitkNearestNeighbor, 0)


def _stage_list(transform: str | Sequence[str]) -> list[str]:
    if isinstance(transform, str):
        if transform == "landmarks":
            return ["landmarks"]
        if transform not in PRESETS:
            raise RegistrationError(
                f"transform={transform!r} is not one of {sorted(PRESETS) + ['landmarks']} or a list of stages {STAGES}"
            )
        return list(PRESETS[transform])
    stages = list(transform)
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise RegistrationError(f"unknown stage(s) {bad or stages}; stages are {STAGES}")
    return stages


def _base_info(fixed, moving, metric, seed, kept, elapsed) -> dict[str, Any]:
    def desc(img: xr.DataArray) -> dict[str, Any]:
        return {
            "name": img.name,
            "modality": img.attrs.get("modality", ""),
            "shape": list(mi.shape(img)),
            "spacing_mm": list(mi.spacing(img)),
        }

    return {
        "method": "multiscale.registration.register",
        "direction": "fixed -> moving (points); images resample moving onto fixed",
        "metric": metric,
        "seed": int(seed),
        "stages_kept": list(kept),
        "time_s": float(elapsed),
        "fixed": desc(fixed),
        "moving": desc(moving),
    }


def _tre(lm: tuple[np.ndarray, np.ndarray] | None, t: Any) -> float | None:
    if lm is None:
        return None
    tr = Transform(t)
    return float(np.linalg.norm(tr.transform_points(lm[0]) - lm[1], axis=1).mean())


# ---------------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------------


def _identity(dim: int) -> Any:
    import SimpleITK as sitk

    return sitk.AffineTransform(dim)


def _full(linear: Any, outer: Transform | None) -> Any:
    """The whole transform: the optimised part first, then the non-linear initial one."""
    import SimpleITK as sitk

    t = linear.sitk if isinstance(linear, Transform) else linear
    if outer is None:
        return t
    return sitk.CompositeTransform([outer.sitk, t])


def _center(image_s: Any) -> np.ndarray:
    size = np.asarray(image_s.GetSize(), float)
    return np.asarray(image_s.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2.0)), float)


def _as_stage(kind: str, a: np.ndarray, b: np.ndarray, center: np.ndarray) -> Any:
    """A SimpleITK transform of the stage's family approximating ``y = a x + b``, centred at ``center``."""
    import SimpleITK as sitk

    d = len(b)
    if kind in ("rigid", "similarity", "translation"):
        u, s, vt = np.linalg.svd(a)
        r = u @ vt
        if np.linalg.det(r) < 0:
            u[:, -1] *= -1
            r = u @ vt
        scale = float(np.mean(s)) if kind == "similarity" else 1.0
        a_use = scale * r if kind != "translation" else np.eye(d)
    else:
        a_use = a
    trans = a @ center + b - center  # keep the centre's image exact
    if kind == "translation":
        return sitk.TranslationTransform(d, tuple(float(v) for v in (a @ center + b - center)))
    if kind == "rigid":
        t = sitk.Euler2DTransform() if d == 2 else sitk.Euler3DTransform()
        t.SetCenter(tuple(center))
        t.SetMatrix(tuple(a_use.reshape(-1)))
    elif kind == "similarity":
        t = sitk.Similarity2DTransform() if d == 2 else sitk.Similarity3DTransform()
        t.SetCenter(tuple(center))
        if d == 2:
            t.SetScale(scale)
            t.SetAngle(float(np.arctan2(r[1, 0], r[0, 0])))
        else:
            t.SetMatrix(tuple(r.reshape(-1)))
            t.SetScale(scale)
    else:
        t = sitk.AffineTransform(d)
        t.SetCenter(tuple(center))
        t.SetMatrix(tuple(a_use.reshape(-1)))
    t.SetTranslation(tuple(float(v) for v in trans))
    return t


# ---------------------------------------------------------------------------------------------
# the optimiser
# ---------------------------------------------------------------------------------------------


class _Context:
    """Working images and settings shared by the stages of one registration."""

    def __init__(self, f_s, m_s, fm_s, mm_s, metric, seed, opts, threads):
        self.f, self.m, self.fm, self.mm = f_s, m_s, fm_s, mm_s
        self.metric, self.seed, self.opts, self.threads = metric, int(seed), opts, threads
        self.dim = f_s.GetDimension()
        self.spacing = float(min(f_s.GetSpacing()))
        self._pyramids: dict[tuple[int, float], tuple[Any, Any]] = {}

    def bins(self, n_voxels: float | None = None) -> int:
        """Histogram bins: ``bins`` when given, else 0.75 sqrt(voxels) within [24, 64]."""
        if self.opts.get("bins"):
            return int(self.opts["bins"])
        n = float(np.prod(self.f.GetSize())) if n_voxels is None else float(n_voxels)
        return int(np.clip(round(0.75 * np.sqrt(n)), 24, 64))

    def method(self, sampling: float | None, draw: int = 0, n_voxels: float | None = None) -> Any:
        import SimpleITK as sitk

        reg = sitk.ImageRegistrationMethod()
        if self.metric == "mattes_mi":
            reg.SetMetricAsMattesMutualInformation(self.bins(n_voxels))
        elif self.metric == "ncc":
            reg.SetMetricAsCorrelation()
        else:
            reg.SetMetricAsMeanSquares()
        if sampling is None:  # evaluation: every voxel centre
            reg.SetMetricSamplingStrategy(reg.NONE)
        else:  # optimisation: random voxels, each jittered inside its voxel (fights grid-aligned bias)
            reg.SetMetricSamplingStrategy(reg.RANDOM)
            # ITK: seed 0 = wall clock, so shift; ``draw`` picks another reproducible sample set
            reg.SetMetricSamplingPercentage(float(sampling), self.seed + 1 + 7919 * int(draw))
        reg.SetInterpolator(sitk.sitkLinear)
        if self.fm is not None:
            reg.SetMetricFixedMask(self.fm)
        if self.mm is not None:
            reg.SetMetricMovingMask(self.mm)
        if self.threads:
            reg.SetNumberOfThreads(int(self.threads))
        return reg

    def evaluate(self, t: Any, shrink: int = 1) -> float:
        """Metric value of ``t`` at the working resolution, every voxel sampled."""
        import SimpleITK as sitk

        f, m = self.f, self.m
        if shrink > 1:
            f, m = self.level_images(shrink)
        reg = self.method(None, n_voxels=float(np.prod(f.GetSize())))
        tt = t.sitk if isinstance(t, Transform) else t
        reg.SetInitialTransform(sitk.Transform(tt), inPlace=False)
        try:
            return float(reg.MetricEvaluate(f, m))
        except RuntimeError:
            return float("inf")  # no overlap at this pose

    def level_images(self, shrink: int) -> tuple[Any, Any]:
        """Working images smoothed (sigma = shrink / 2 pixels, in mm) and shrunk; cached."""
        if shrink <= 1:
            return self.f, self.m
        key = (int(shrink), shrink / 2.0)
        if key not in self._pyramids:
            self._pyramids[key] = (_pyramid(self.f, shrink, shrink / 2.0), _pyramid(self.m, shrink, shrink / 2.0))
        return self._pyramids[key]

    def schedule(self, levels: Any) -> list[int]:
        """Shrink factors, coarse to fine; ``None`` picks levels down to a ~32-pixel coarsest image."""
        n = _usable_levels(self.f.GetSize(), 6 if levels is None else int(levels), min_pixels=32 if levels is None else 24)
        return [2**i for i in range(n - 1, -1, -1)]

    def level_fraction(self, f_l: Any, samples: int | None = None) -> float:
        """Sampling fraction of one level: ``sampling`` when given, else ``samples`` voxels (at most all)."""
        if self.opts["sampling"] is not None:
            return float(self.opts["sampling"])
        n = float(np.prod(f_l.GetSize()))
        return float(min(1.0, int(samples or self.opts["samples"]) / n))

    def _run_levels(self, t: Any, shrinks: list[int], configure, moving_initial: Any = None,
                    draw: int = 0, cap_bins: int | None = None, samples: int | None = None) -> tuple[int, str]:
        """Optimise ``t`` in place over a pyramid; returns (iterations, last stop condition)."""
        total, stop = 0, ""
        for shrink in shrinks:
            f_l, m_l = self.level_images(shrink)
            n_vox = float(np.prod(f_l.GetSize()))
            if cap_bins:  # Mattes' derivative arrays grow with bins^2 x parameters: B-splines keep it small
                n_vox = min(n_vox, (cap_bins / 0.75) ** 2)
            reg = self.method(self.level_fraction(f_l, samples), draw, n_voxels=n_vox)
            configure(reg)
            if moving_initial is not None:
                reg.SetMovingInitialTransform(moving_initial)
            reg.SetInitialTransform(t, inPlace=True)
            counter = _IterationCounter(reg)
            reg.Execute(f_l, m_l)
            total += counter.n
            stop = reg.GetOptimizerStopConditionDescription()
        return total, stop

    def run_stage(self, stage: str, current: Any, outer: Transform | None) -> tuple[Any, int, str]:
        """Optimise one stage starting from ``current``; returns (transform, iterations, stop reason)."""
        if stage == "bspline":
            return self._bspline(current, outer)
        a, b = linear_parts(current)
        t = _as_stage(stage, a, b, _center(self.f))
        iters = int(self.opts["iterations"])

        def configure(reg: Any) -> None:
            # the first step moves no voxel by more than a pixel of the level; steps halve down to 1e-4
            reg.SetOptimizerAsRegularStepGradientDescent(
                learningRate=1.0,
                minStep=1e-4,
                numberOfIterations=iters,
                relaxationFactor=0.5,
                gradientMagnitudeTolerance=1e-8,
                estimateLearningRate=reg.Once,
                maximumStepSizeInPhysicalUnits=0.0,
            )
            reg.SetOptimizerScalesFromPhysicalShift()

        moving_initial = outer.sitk if outer is not None else None
        try:
            n, stop = self._run_levels(t, self.schedule(self.opts["levels"]), configure, moving_initial)
            draws = int(self.opts["final_draws"])
            if draws > 1 and self.level_fraction(self.f) >= 1.0:
                # small images: every voxel is already sampled once, so the estimate still carries the
                # noise of one jitter draw; refine with further draws and average the linear maps
                fits = [linear_parts(t)]
                for k in range(1, draws):
                    tk = _as_stage(stage, *fits[0], _center(self.f))
                    n_k, _ = self._run_levels(tk, [1], configure, moving_initial, draw=k)
                    n += n_k
                    fits.append(linear_parts(tk))
                a_mean = np.mean([f[0] for f in fits], axis=0)
                b_mean = np.mean([f[1] for f in fits], axis=0)
                t = _as_stage(stage, a_mean, b_mean, _center(self.f))
        except RuntimeError as exc:
            return current, 0, f"failed: {str(exc).strip().splitlines()[-1][:200]}"
        return t, n, stop

    def _bspline(self, current: Any, outer: Transform | None) -> tuple[Any, int, str]:
        import SimpleITK as sitk

        dim = self.dim
        # 3-D: 10 intervals (about 13 voxels at 128^3, near elastix's 10-voxel final grid); on the 3-D
        # benchmark 8 gave 0.94 mm, 10 gave 0.64 mm, 12 gave 0.76 mm. 2-D: 12 overfits (0.71 vs 0.28 um)
        mesh = self.opts["bspline_mesh"] or (8 if dim == 2 else 10)
        mesh = [int(mesh)] * dim if np.isscalar(mesh) else [int(v) for v in mesh]
        bsp = sitk.BSplineTransformInitializer(self.f, mesh, 3)
        lin = current.sitk if isinstance(current, Transform) else current
        sparse = (self.opts["bspline_optimizer"] == "lbfgsb" and self.metric == "mattes_mi" and outer is None
                  and lin.IsLinear())
        iters = int(self.opts["bspline_iterations"] or (50 if sparse else 100))

        def configure(reg: Any) -> None:
            if self.opts["bspline_optimizer"] == "gd":
                reg.SetOptimizerAsRegularStepGradientDescent(
                    learningRate=1.0, minStep=1e-3, numberOfIterations=iters, relaxationFactor=0.5,
                    gradientMagnitudeTolerance=1e-8, estimateLearningRate=reg.Once,
                    maximumStepSizeInPhysicalUnits=0.0,
                )
                reg.SetOptimizerScalesFromPhysicalShift()
                return
            reg.SetOptimizerAsLBFGS2(
                solutionAccuracy=1e-5,
                numberOfIterations=iters,
                hessianApproximateAccuracy=5,
                deltaConvergenceDistance=0,
                deltaConvergenceTolerance=1e-5,
                lineSearchMaximumEvaluations=40,
            )

        shrinks = self.schedule(max(int(self.opts["bspline_levels"]), 1))
        samples = self.opts["bspline_samples"]
        try:
            if sparse:
                from ._bspline import optimise_bspline

                a, b = linear_parts(lin)
                levels = [self.level_images(s) for s in shrinks]
                if samples is None:  # as the linear stages: ``sampling`` (a fraction) or ``samples``
                    samples = self.level_fraction(levels[-1][0]) * float(np.prod(levels[-1][0].GetSize()))
                n, stop = optimise_bspline(
                    levels, bsp, a, b, samples=max(int(round(samples)), 1),
                    bins=self.bins(float(np.prod(levels[-1][0].GetSize()))), iterations=iters, seed=self.seed,
                    fixed_mask=self.fm, moving_mask=self.mm, unit=self.spacing,
                )
                stop = f"lbfgsb (sparse Mattes MI): {stop}"
            else:
                n, stop = self._run_levels(bsp, shrinks, configure, _full(lin, outer), cap_bins=32,
                                           samples=int(samples or 20000))
        except RuntimeError as exc:
            return current, 0, f"failed: {str(exc).strip().splitlines()[-1][:200]}"
        # the optimised B-spline acts first, then the linear part: p -> lin(bsp(p))
        comp = sitk.CompositeTransform([sitk.Transform(lin), bsp])
        return comp, n, stop


@contextlib.contextmanager
def _thread_count(threads: int | None):
    """Fix SimpleITK's global thread count for the duration (bit-reproducible runs)."""
    import SimpleITK as sitk

    if not threads:
        yield
        return
    pool = sitk.ProcessObject
    old = pool.GetGlobalDefaultNumberOfThreads()
    pool.SetGlobalDefaultNumberOfThreads(int(threads))
    try:
        yield
    finally:
        pool.SetGlobalDefaultNumberOfThreads(old)


class _IterationCounter:
    def __init__(self, reg: Any) -> None:
        import SimpleITK as sitk

        self.n = 0
        reg.AddCommand(sitk.sitkIterationEvent, self._tick)

    def _tick(self) -> None:
        self.n += 1


def _usable_levels(size: Sequence[int], levels: int, min_pixels: int = 24) -> int:
    """Pyramid levels (halving) that keep at least ``min_pixels`` along the shortest side."""
    short = float(min(v for v in size if v > 1)) if any(v > 1 for v in size) else 1.0
    return int(max(1, min(levels, 1 + np.floor(np.log2(max(short / min_pixels, 1.0))))))


def _pyramid(s: Any, shrink: int, smooth_px: float) -> Any:
    import SimpleITK as sitk

    if smooth_px > 0:
        s = sitk.SmoothingRecursiveGaussian(s, float(smooth_px) * float(min(s.GetSpacing())))
    if shrink > 1:
        s = sitk.Shrink(s, [shrink] * s.GetDimension())
    return s


def _initialise(ctx: _Context, dim: int, opts: dict, stages: list[str], outer: Transform | None) -> tuple[Any, dict]:
    """Candidates from centres of mass and of the images (plus rotations in 2-D); the best by metric."""
    import SimpleITK as sitk

    kind = "translation" if stages[0] == "translation" else "rigid"
    base = sitk.Euler2DTransform() if dim == 2 else sitk.Euler3DTransform()
    search = opts["rotation_search"]
    if search is None:
        search = dim == 2 and kind != "translation"
    angles = [0.0]
    if search and dim == 2:
        step = float(opts["rotation_step_deg"])
        angles = list(np.deg2rad(np.arange(0.0, 360.0, step)))
    # search on a coarse copy, about 64 pixels across
    shrink = int(2 ** max(0, np.floor(np.log2(min(ctx.f.GetSize()) / 64.0))))
    cand = []
    for how, flag in (("moments", sitk.CenteredTransformInitializerFilter.MOMENTS),
                      ("geometry", sitk.CenteredTransformInitializerFilter.GEOMETRY)):
        try:
            t0 = sitk.CenteredTransformInitializer(ctx.f, ctx.m, base, flag)
        except RuntimeError:
            continue
        t0 = t0.Downcast() if hasattr(t0, "Downcast") else t0
        c = np.asarray(t0.GetCenter(), float)
        tr = np.asarray(t0.GetTranslation(), float)
        for ang in angles:
            if dim == 2:
                t = sitk.Euler2DTransform(tuple(c), float(ang), tuple(tr))
            else:
                t = sitk.Euler3DTransform()
                t.SetCenter(tuple(c))
                t.SetTranslation(tuple(tr))
            if kind == "translation":
                t = sitk.TranslationTransform(dim, tuple(tr))
            val = ctx.evaluate(_full(t, outer), shrink=shrink)
            cand.append((val, how, float(np.rad2deg(ang)), t))
    cand.sort(key=lambda c: c[0])
    best = cand[0]
    return best[3], {"method": best[1], "angle_deg": best[2], "candidates": len(cand)}


def metric_value(fixed: xr.DataArray, moving: xr.DataArray, transform: Transform | None = None,
                 metric: str = "mattes_mi", bins: int | None = 32) -> float:
    """Value of a SimpleITK metric (lower is better) for ``transform`` at the coarser image's resolution.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.random.default_rng(0).random((32, 32)), spacing=(1.0, 1.0))
    >>> round(metric_value(a, a, metric="ncc"), 6)
    -1.0
    """
    if metric not in METRICS:
        raise RegistrationError(f"metric={metric!r} is not one of {METRICS}")
    f1, m1 = channel_image(fixed, name="fixed"), channel_image(moving, name="moving")
    ws = working_spacing(f1, m1)
    ctx = _Context(to_working(f1, ws), to_working(m1, ws), None, None, metric, 0, {"bins": bins}, None)
    dim = len(mi.spatial_dims(f1))
    return ctx.evaluate(transform.sitk if transform is not None else _identity(dim))


def _s2v_opts(opts: dict) -> dict:
    keep = ("fixed_channel", "moving_channel", "working_spacing", "levels", "iterations", "sampling", "bins",
            "threads", "section_thickness", "verbose")
    return {k: opts[k] for k in keep if opts[k] is not None}
