"""The optimiser behind :func:`~multiscale.registration.register` and slice-to-volume (private).

A :class:`Context` holds the working images and settings of one registration and runs its
stages (SimpleITK's ``ImageRegistrationMethod`` over a multi-resolution pyramid; the B-spline
stage through :mod:`._bspline`). Both :mod:`.methods` and :mod:`.slice_to_volume` import from
here, so neither imports the other's internals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._bspline import optimise_bspline
from .transform import Transform, linear_parts

__all__ = [
    "METRICS",
    "Context",
    "IterationCounter",
    "full_transform",
    "sitk_identity",
    "thread_count",
    "usable_levels",
]

METRICS = ("mattes_mi", "ncc", "mean_squares")


# ---------------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------------


def sitk_identity(dim: int) -> Any:
    import SimpleITK as sitk

    return sitk.AffineTransform(dim)


def full_transform(linear: Any, outer: Transform | None) -> Any:
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


class Context:
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
        n = usable_levels(self.f.GetSize(), 6 if levels is None else int(levels), min_pixels=32 if levels is None else 24)
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
            counter = IterationCounter(reg)
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
                n, stop = self._run_levels(bsp, shrinks, configure, full_transform(lin, outer), cap_bins=32,
                                           samples=int(samples or 20000))
        except RuntimeError as exc:
            return current, 0, f"failed: {str(exc).strip().splitlines()[-1][:200]}"
        # the optimised B-spline acts first, then the linear part: p -> lin(bsp(p))
        comp = sitk.CompositeTransform([sitk.Transform(lin), bsp])
        return comp, n, stop


@contextlib.contextmanager
def thread_count(threads: int | None):
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


class IterationCounter:
    def __init__(self, reg: Any) -> None:
        import SimpleITK as sitk

        self.n = 0
        reg.AddCommand(sitk.sitkIterationEvent, self._tick)

    def _tick(self) -> None:
        self.n += 1


def usable_levels(size: Sequence[int], levels: int, min_pixels: int = 24, *, skip_singleton: bool = True) -> int:
    """Pyramid levels (halving) that keep at least ``min_pixels`` along the shortest side.

    ``skip_singleton`` (the default, for :func:`~multiscale.registration.register`): sides of one
    pixel (a 3-D volume that is one slice thick) do not count, so such an image is still
    shrunk in-plane. Slice-to-volume passes ``False``: its section's shortest side, whatever it
    is, bounds the pyramid (a one-pixel side gives one level).

    Examples
    --------
    >>> usable_levels((256, 256, 1), 6), usable_levels((256, 256, 1), 6, skip_singleton=False)
    (4, 1)
    >>> usable_levels((100, 200), 6, min_pixels=32)
    2
    """
    if skip_singleton:
        short = float(min(v for v in size if v > 1)) if any(v > 1 for v in size) else 1.0
    else:
        short = float(min(size))
    return int(max(1, min(levels, 1 + np.floor(np.log2(max(short / min_pixels, 1.0))))))


def _pyramid(s: Any, shrink: int, smooth_px: float) -> Any:
    import SimpleITK as sitk

    if smooth_px > 0:
        s = sitk.SmoothingRecursiveGaussian(s, float(smooth_px) * float(min(s.GetSpacing())))
    if shrink > 1:
        s = sitk.Shrink(s, [shrink] * s.GetDimension())
    return s
