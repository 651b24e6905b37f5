"""Intensity registration: a robust multimodal pipeline on SimpleITK's ``ImageRegistrationMethod``.

``register(fixed, moving)`` returns a :class:`~multiscale.registration.transform.Transform` that
maps fixed-frame points into the moving frame; resample the moving image with it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale.errors import RegistrationError

from ._grids import grid_box_xyz, grid_from_reference
from ._multires import channel_image, to_working, working_spacing
from ._optimiser import METRICS, Context, full_transform, sitk_identity, thread_count
from ._search import mirror_image, mirror_transform, search, tissue_image, tissue_polarity
from .landmarks import landmark_transform
from .slice_to_volume import register_slice_to_volume
from .transform import Transform, linear_parts
from .warnings import RegistrationWarning

__all__ = ["register", "RegistrationError", "RegistrationWarning", "METRICS", "STAGES", "metric_value"]

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
    "rotation_search": None,  # default: on in 2-D (not for a translation), off in 3-D
    "rotation_step_deg": 30.0,  # candidates of the refined search (each refined by a short rigid fit)
    "flip_search": None,  # default: with the rotation search, also try the mirrored section (face down)
    "rotation_margin": 0.05,  # a kept rotation > 30 deg or a flip needs the runner-up this much worse
    "accept_worse": False,  # keep a result that the final check finds worse than the initial pose
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

    The default, ``transform="auto"``, is a robust multimodal pipeline: initialisation (in 2-D a
    refined rotation and mirror search from the tissue centroids; in 3-D centres of mass and of
    the images; or the landmarks / ``initial`` when given), then rigid, affine and B-spline
    stages. The first stage is always kept; in ``"auto"`` affine and B-spline are kept only when
    they lower the metric at the working resolution (full sampling) by 1% and 5% respectively
    and, when landmarks are given, do not increase their error by more than 5%; explicit presets
    keep a later stage unless it raises the metric. Finally the result is checked against the
    initial pose (see ``accept_worse`` below): it is never silently worse than where it started.

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
        Seed of the metric's random sampling. With ``threads=1`` the same seed gives the same result to
        the bit; with several threads SimpleITK's threaded sums differ between calls, by up to a few
        tenths of a pixel on 512 px sections (measured in ``benchmarks/registration.py --workloads sections``).
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
        Initialisation: ``rotation_search`` (default on in 2-D unless the first stage is a
        translation), ``rotation_step_deg`` (30), ``flip_search`` (default: with the rotation
        search, unless ``initial`` is non-linear), ``rotation_margin`` (0.05); ``landmark_kind``
        ("rigid", "similarity", "affine"). The 2-D search detects the tissue first (background =
        the mode near the border; bright background = brightfield histology, tissue darker), starts
        every candidate from the tissue centroids, refines each rotation (and mirror: a section
        mounted face down) by a short rigid fit on a copy of the tissue images at most 64 pixels
        across and keeps the best refined Mattes MI; it runs on one thread and every pixel, so it does not depend on
        ``threads``. With ``metric="ncc"`` or ``"mean_squares"``, a bright-background image is
        inverted when the other image has a dark background.
        Final check: the result is compared with the initial pose (identity, ``initial`` or the
        landmark fit) on the metric at the working resolution (every voxel), on the landmark error
        and on the Dice of the two masks when given. When it is worse, the initial pose is returned
        instead (unless ``accept_worse=True``) and a :class:`RegistrationWarning` is issued; so it
        is when the search keeps a rotation over 30 degrees (or a mirror) whose runner-up scores
        within ``rotation_margin``. Both are recorded in ``info["warnings"]`` and
        ``info["quality_check"]``.
        Keeping stages in ``"auto"``: ``keep_tolerance`` (0.01) and ``bspline_keep_tolerance``
        (0.05), the relative metric gain affine and B-spline must bring.
        Other: ``threads`` (``threads=1`` with a fixed ``seed`` for bit-identical runs; the study pipeline
        uses 1); ``slice_to_volume``;
        ``section_thickness`` (mm); ``verbose``.

    Returns
    -------
    Transform
        ``info`` records the metric (as SimpleITK reports it: lower is better, Mattes MI negated)
        before and after, each stage with kept/iterations/time, the working spacing, the
        initialisation (``angle_deg``, ``flipped``, ``margin``, the refined candidates), the
        tissue detection, ``quality_check`` and ``warnings`` (a list of str, empty when all is well).

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
            with thread_count(opts["threads"]):
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
    threads = opts["threads"]

    with thread_count(threads):
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

    # ---------------- tissue: background level and polarity of each image
    pol_f, pol_m = tissue_polarity(f_s), tissue_polarity(m_s)
    tissue_record = {"fixed": pol_f, "moving": pol_m, "inverted": []}
    if metric != "mattes_mi" and pol_f["bright"] != pol_m["bright"]:
        # correlation / mean squares compare intensities: make the tissue bright in both
        if pol_f["bright"]:
            f_s = sitk_invert(f_s)
            tissue_record["inverted"].append("fixed")
        else:
            m_s = sitk_invert(m_s)
            tissue_record["inverted"].append("moving")
    ctx = Context(f_s, m_s, fm_s, mm_s, metric, seed, opts, threads)
    ctx0 = ctx  # the unmirrored context: the final check compares poses on it

    # ---------------- initialisation
    ident = Transform(sitk_identity(dim))
    metric_identity = ctx.evaluate(ident.sitk)
    outer = None  # a non-linear initial transform stays outside the optimised linear part
    if initial is not None and not initial.is_linear:
        outer, current = initial, None
    else:
        current = initial
    post = None  # a mirror of the moving frame chosen by the search: the result is post(T(x))
    init_record: dict[str, Any] = {}
    warn: list[str] = []
    kind = "translation" if stages[0] == "translation" else "rigid"
    rotate = opts["rotation_search"]
    if rotate is None:
        rotate = dim == 2 and kind != "translation"
    if current is None and dim == 2 and rotate:
        flips = opts["flip_search"]
        if flips is None:
            flips = outer is None
        if flips and outer is not None:
            raise RegistrationError("flip_search=True cannot be combined with a non-linear initial transform")
        t_search = time.perf_counter()
        # the search sees copies at most ~128 px across (the stages' own cached pyramid level; the
        # smoothing and shrinking are line-wise, so they do not depend on the thread count)
        s0 = int(2 ** max(0, np.ceil(np.log2(min(f_s.GetSize()) / 128.0) - 1e-9)))
        f_small, m_small = ctx.level_images(s0)
        with thread_count(1):  # every filter and metric of the search on one thread: thread-invariant
            found = search(tissue_image(f_small, pol_f), tissue_image(m_small, pol_m), fm_s, mm_s, opts,
                           flips=bool(flips), rotate=True, outer=outer.sitk if outer is not None else None)
        current = found.pop("transform")
        if found["flipped"]:
            c_m = np.asarray(found["mirror_center"], float)
            post = mirror_transform(c_m)
            ctx = Context(f_s, mirror_image(m_s, c_m), fm_s, mirror_image(mm_s, c_m) if mm_s is not None else None,
                          metric, seed, opts, threads)
        init_record = {"method": "refined rotation search", **found,
                       "time_s": float(time.perf_counter() - t_search)}
        angle = (found["angle_deg"] + 180.0) % 360.0 - 180.0
        if (abs(angle) > 30.0 or found["flipped"]) and found["margin"] is not None \
                and found["margin"] < float(opts["rotation_margin"]):
            ru = found["runner_up"]
            warn.append(
                f"the initial pose search kept a rotation of {angle:.0f} deg{' with a mirror' if found['flipped'] else ''}"
                f" but the runner-up ({(ru['angle_deg'] + 180) % 360 - 180:.0f} deg"
                f"{' mirrored' if ru['flipped'] else ''}) scores within {100 * found['margin']:.1f}% of it; "
                "check the result, or pass initial= (or landmarks=) to place the section"
            )
    elif current is None:
        current, init_record = _initialise(ctx, dim, opts, stages, outer)
    else:
        init_record = {"method": "given" if landmarks is None or initial is not lm_init else "landmarks"}

    def finish(t: Any) -> Any:
        full = full_transform(t, outer)
        if post is None:
            return full
        import SimpleITK as sitk

        if full.IsLinear():
            a, b = linear_parts(full)
            pa, pb = linear_parts(post)
            out = sitk.AffineTransform(dim)
            out.SetMatrix(tuple((pa @ a).reshape(-1)))
            out.SetTranslation(tuple(pa @ b + pb))
            return out
        return sitk.CompositeTransform([post, full])

    metric_init = ctx.evaluate(full_transform(current, outer))
    init_record["metric"] = metric_init

    # ---------------- stages
    records = []
    kept: list[str] = []
    best = current
    best_metric = metric_init
    best_tre = _tre(lm, finish(best)) if lm is not None else None
    checked = transform == "auto"
    for k, stage in enumerate(stages):
        t0 = time.perf_counter()
        cand, iters, stop = ctx.run_stage(stage, best, outer)
        after = ctx.evaluate(full_transform(cand, outer))
        tre_after = _tre(lm, finish(cand)) if lm is not None else None
        keep = True
        if k > 0:
            # "auto" asks a clear gain of an optional stage; an explicit stage must not make it worse
            tol = (opts["bspline_keep_tolerance"] if stage == "bspline" else opts["keep_tolerance"]) if checked else 0.0
            keep = after < best_metric - tol * abs(best_metric) if checked else after <= best_metric
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
    final = finish(best)

    # ---------------- never silently worse: the result against the initial pose
    pose0 = initial.sitk if initial is not None else sitk_identity(dim)
    check = _quality_check(ctx0, pose0, final, lm, fm_s, mm_s)
    returned_initial = False
    if check["worse"]:
        what = "identity" if initial is None else ("the landmark fit" if lm is not None and initial is lm_init
                                                   else "the initial transform")
        if opts["accept_worse"]:
            warn.append(f"the registration ended worse than {what} ({'; '.join(check['reasons'])}); "
                        "kept because accept_worse=True")
        else:
            warn.append(f"the registration ended worse than {what} ({'; '.join(check['reasons'])}); returning "
                        f"{what} instead: check that the images show the same tissue, or give landmarks=/initial=,"
                        " or pass accept_worse=True to keep the result")
            final = pose0
            kept = []
            returned_initial = True
    check["returned_initial"] = returned_initial
    info = _base_info(fixed, moving, metric, seed, kept, time.perf_counter() - t_start)
    info.update(
        {
            "metric_identity": float(metric_identity),
            "metric_before": float(metric_init),
            "metric_after": float(check["metric_after"] if not returned_initial else check["metric_initial"]),
            "initialisation": init_record,
            "tissue": tissue_record,
            "stages": records,
            "iterations": int(sum(r["iterations"] for r in records)),
            "working_spacing_mm": float(ws),
            "working_shape": {"fixed": list(f_s.GetSize())[::-1], "moving": list(m_s.GetSize())[::-1]},
            "options": {k: v for k, v in opts.items() if k not in ("verbose",)},
            "quality_check": check,
            "warnings": warn,
        }
    )
    if lm is not None:
        info["landmark_tre_mm"] = float(_tre(lm, final))
    for w in warn:
        warnings.warn(w, RegistrationWarning, stacklevel=3)
    return Transform(final, info)


def sitk_invert(s: Any) -> Any:
    """``1 - s`` for a working image in [0, 1] (a bright background made dark)."""
    import SimpleITK as sitk

    return sitk.Cast(1.0 - s, sitk.sitkFloat32)


def _mask_dice(ctx: Context, t: Any, fm: Any, mm: Any) -> float:
    import SimpleITK as sitk

    moved = sitk.Resample(mm, fm, sitk.Transform(t), sitk.sitkNearestNeighbor, 0)
    a = sitk.GetArrayViewFromImage(fm) > 0
    b = sitk.GetArrayViewFromImage(moved) > 0
    s = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / s) if s else 1.0


def _null_levels(ctx: Context, t: Any, shrink: int = 1, draws: int = 3) -> list[float]:
    """Metric of ``t`` with the fixed image's pixels shuffled (``draws`` reproducible shuffles)."""
    import SimpleITK as sitk

    f, m = ctx.level_images(shrink)
    arr = sitk.GetArrayFromImage(f)
    rng = np.random.default_rng(ctx.seed + 104729)
    out = []
    for _ in range(draws):
        sh = sitk.GetImageFromArray(rng.permutation(arr.reshape(-1)).reshape(arr.shape))
        sh.CopyInformation(f)
        v = Context(sh, m, ctx.fm, ctx.mm, ctx.metric, ctx.seed, ctx.opts, ctx.threads).evaluate(t)
        if np.isfinite(v):
            out.append(float(v))
    return out


def _quality_check(ctx: Context, pose0: Any, final: Any, lm, fm, mm) -> dict[str, Any]:
    """The final pose against the initial one: metric (every voxel), landmark error, mask Dice."""
    m0, m1 = ctx.evaluate(pose0), ctx.evaluate(final)
    out: dict[str, Any] = {"measure": f"{ctx.metric} at the working resolution, every voxel (lower is better)",
                           "metric_initial": float(m0), "metric_after": float(m1)}
    reasons = []
    tol = 1e-6 * max(abs(m0), 1e-12)
    if not np.isfinite(m1) or (np.isfinite(m0) and m1 > m0 + tol):
        reasons.append(f"metric {m1:.5g} vs {m0:.5g} at the start")
    if lm is not None:
        e0, e1 = _tre(lm, pose0), _tre(lm, final)
        out["landmark_tre_mm_initial"], out["landmark_tre_mm_after"] = float(e0), float(e1)
        if e1 > e0 * 1.05 + 1e-9:
            reasons.append(f"landmark error {e1:.4g} mm vs {e0:.4g} mm at the start")
    if fm is not None and mm is not None:
        d0, d1 = _mask_dice(ctx, pose0, fm, mm), _mask_dice(ctx, final, fm, mm)
        out["mask_dice_initial"], out["mask_dice_after"] = d0, d1
        if d1 < d0 - 0.02:
            reasons.append(f"mask Dice {d1:.3f} vs {d0:.3f} at the start")
    # is any structure matched at all? the same evaluation with the fixed pixels shuffled is the
    # metric's chance level (Mattes MI's bias for this many samples and bins); the result must beat
    # it clearly, or what the optimiser found is noise fitted (a pair that cannot be registered)
    # (on a copy at most ~256 px across in 2-D, ~64 voxels in 3-D: chance is a matter of structure, not of
    # fine detail, and a full-size 3-D B-spline evaluation costs about a second each)
    sides = [v for v in ctx.f.GetSize() if v > 1]
    across = 256.0 if len(sides) < 3 else 64.0
    shrink = int(2 ** max(0, np.ceil(np.log2(min(sides) / across) - 1e-9)))
    null = _null_levels(ctx, final, shrink)
    if shrink > 1:
        m1 = ctx.evaluate(final, shrink=shrink)
        out["metric_after_coarse"] = float(m1)
    if null:
        mean, sd = float(np.mean(null)), float(np.std(null))
        need = max(0.25 * abs(mean), 4.0 * sd, 1e-9)
        out["metric_chance"] = mean
        out["supported"] = bool(np.isfinite(m1) and mean - m1 > need)
        if not out["supported"]:
            reasons.append(f"no structure matched: metric {m1:.5g} is within chance of {mean:.5g} (the same "
                           "images with the fixed pixels shuffled)")
    out["worse"] = bool(reasons)
    out["reasons"] = reasons
    return out


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


def _initialise(ctx: Context, dim: int, opts: dict, stages: list[str], outer: Transform | None) -> tuple[Any, dict]:
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
            val = ctx.evaluate(full_transform(t, outer), shrink=shrink)
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
    ctx = Context(to_working(f1, ws), to_working(m1, ws), None, None, metric, 0, {"bins": bins}, None)
    dim = len(mi.spatial_dims(f1))
    return ctx.evaluate(transform.sitk if transform is not None else sitk_identity(dim))


def _s2v_opts(opts: dict) -> dict:
    keep = ("fixed_channel", "moving_channel", "working_spacing", "levels", "iterations", "sampling", "bins",
            "threads", "section_thickness", "verbose")
    return {k: opts[k] for k in keep if opts[k] is not None}
