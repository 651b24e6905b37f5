"""Initialisation of 2-D sections (private): tissue detection, then a refined rotation and flip search.

Tissue first: the background level is the mode of the pixels near the image border; a bright
background (brightfield histology on glass: tissue darker) is told from a dark one (fluorescence,
MSI). The search compares tissue with tissue: both images become *tissue images* (0 on the
background, growing with the distance from the background level), and every candidate starts
from the tissue centroids, not the image centres.

Candidates: rotations every ``rotation_step_deg`` (30) degrees, unmirrored and mirrored (a section
mounted face down: mirror about the vertical line through the moving tissue centroid). Each is
refined by a short rigid fit on a copy at most 64 pixels across and scored on the refined Mattes
MI (32 bins, every pixel,
no random sampling, one thread: the result does not depend on the thread count). The best
refined pose wins; the runner-up is the best *distinct* pose (another mirror state, or a
rotation more than 20 degrees away), and the gap between the two says how well the choice is
supported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._optimiser import Context

__all__ = ["tissue_polarity", "tissue_image", "tissue_centroid", "mirror_image", "mirror_transform", "search"]


def tissue_polarity(s: Any) -> dict[str, Any]:
    """Background level (mode near the border) and polarity of a working image in [0, 1]."""
    import SimpleITK as sitk

    a = sitk.GetArrayViewFromImage(s)
    ny, nx = a.shape[-2:]
    w = max(2, int(round(0.04 * min(ny, nx))))
    ring = np.concatenate([a[..., :w, :].ravel(), a[..., -w:, :].ravel(), a[..., :, :w].ravel(), a[..., :, -w:].ravel()])
    hist, edges = np.histogram(ring, bins=32, range=(0.0, 1.0))
    k = int(np.argmax(hist))
    lo, hi = edges[max(k - 1, 0)], edges[min(k + 2, len(edges) - 1)]
    sel = ring[(ring >= lo) & (ring <= hi)]
    bg = float(np.median(sel)) if sel.size else float(np.median(ring))
    bright = bg > float(np.median(a)) and bg > 0.5
    return {"background": bg, "bright": bool(bright)}


def tissue_image(s: Any, pol: dict[str, Any]) -> Any:
    """0 on the background, up to 1 in the tissue (distance from the background level, either way), float32."""
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(s).astype(np.float32)
    bg = pol["background"]
    lo, hi = (float(v) for v in np.percentile(a, [0.5, 99.5]))
    # tissue is what differs from the background, in either direction: stained tissue is darker than the
    # glass, but pale stroma on grey glass is brighter than it (a one-sided test drops it)
    t = np.abs(a - bg) / max(abs(bg - lo), abs(hi - bg), 1e-6)
    out = sitk.GetImageFromArray(np.clip(t, 0.0, 1.0).astype(np.float32))
    out.CopyInformation(s)
    return out


def tissue_centroid(t: Any) -> tuple[np.ndarray | None, float]:
    """Physical centroid (x, y[, z]) of a tissue image, and the tissue's area fraction."""
    import SimpleITK as sitk

    a = sitk.GetArrayViewFromImage(t).astype(np.float64)
    w = np.where(a > 0.1, a, 0.0)
    frac = float((a > 0.1).mean())
    if w.sum() <= 0:
        return None, frac
    idx = np.array(np.nonzero(w))
    c_zyx = (idx * w[tuple(idx)]).sum(1) / w[tuple(idx)].sum()
    return np.asarray(t.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in c_zyx[::-1])), float), frac


def _mirror_matrix(dim: int) -> np.ndarray:
    m = np.eye(dim)
    m[0, 0] = -1.0
    return m


def mirror_transform(center: np.ndarray) -> Any:
    """The mirror ``x -> 2 c_x - x`` (about the vertical line through ``center``) as an AffineTransform."""
    import SimpleITK as sitk

    dim = len(center)
    t = sitk.AffineTransform(dim)
    t.SetMatrix(tuple(_mirror_matrix(dim).reshape(-1)))
    t.SetCenter(tuple(float(v) for v in center))
    return t


def mirror_image(s: Any, center: np.ndarray) -> Any:
    """The same pixels placed at mirrored positions (no resampling): ``out(q) = s(F(q))``."""
    dim = s.GetDimension()
    m = _mirror_matrix(dim)
    c = np.asarray(center, float)
    import SimpleITK as sitk

    out = sitk.Image(s)
    d = np.asarray(s.GetDirection(), float).reshape(dim, dim)
    o = np.asarray(s.GetOrigin(), float)
    out.SetOrigin(tuple(m @ (o - c) + c))
    out.SetDirection(tuple((m @ d).reshape(-1)))
    return out


def _angle_diff(a: float, b: float) -> float:
    return float(abs((a - b + 180.0) % 360.0 - 180.0))


def search(f_t: Any, m_t: Any, fm: Any, mm: Any, opts: dict, *, flips: bool, rotate: bool, outer: Any = None) -> dict[str, Any]:
    """Refined rotation (and mirror) search on tissue images; the best pose and its support.

    Returns a record with ``transform`` (an Euler2DTransform mapping fixed points into the moving
    frame, or into the *mirrored* moving frame when ``flipped``), ``flipped``, ``mirror_center``,
    ``angle_deg``, ``score``, ``runner_up`` (score, angle, flipped of the best distinct pose),
    ``margin`` (runner-up minus best, relative to |best|) and ``candidates`` (all refined scores).
    """
    import SimpleITK as sitk

    c_f, frac_f = tissue_centroid(f_t)
    c_m, frac_m = tissue_centroid(m_t)
    geometric = c_f is None or c_m is None or not (0.002 < frac_f < 0.97) or not (0.002 < frac_m < 0.97)

    def image_centre(s: Any) -> np.ndarray:
        size = np.asarray(s.GetSize(), float)
        return np.asarray(s.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2.0)), float)

    if geometric:  # no separable tissue (it fills the image, or there is none): image centres
        c_f, c_m = image_centre(f_t), image_centre(m_t)
    step = float(opts.get("rotation_step_deg") or 30.0)
    angles = list(np.arange(0.0, 360.0, step)) if rotate else [0.0]
    shrink = int(2 ** max(0, np.ceil(np.log2(min(f_t.GetSize()) / 64.0) - 1e-9)))  # at most 64 px across
    iters = int(opts.get("_search_iters", 30))

    variants = [(False, m_t, mm)]
    if flips:
        variants.append((True, mirror_image(m_t, c_m), mirror_image(mm, c_m) if mm is not None else None))
    # one thread and every pixel: the refined scores depend neither on the seed nor on the thread count
    ctxs = [Context(f_t, m_img, fm, m_mask, "mattes_mi", 0, {**opts, "bins": 32}, 1) for _, m_img, m_mask in variants]

    def refine(ctx: Any, t: Any, level: int, iters: int, exact: bool = True) -> float:
        """Short rigid fit of ``t`` (in place) on one pyramid level; its metric there (every pixel)."""
        f_l, m_l = ctx.level_images(level)
        reg = ctx.method(None, n_voxels=float(np.prod(f_l.GetSize())))
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=1.0, minStep=1e-3, numberOfIterations=iters, relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8, estimateLearningRate=reg.Once, maximumStepSizeInPhysicalUnits=0.0,
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        if outer is not None:
            reg.SetMovingInitialTransform(outer)
        keep = sitk.Euler2DTransform(t)
        reg.SetInitialTransform(t, inPlace=True)
        try:
            reg.Execute(f_l, m_l)
        except RuntimeError:
            t.SetParameters(keep.GetParameters())
            return float("inf")
        if not exact:  # the metric at the last iteration: enough to rank the coarse candidates
            return float(reg.GetMetricValue())
        full = t if outer is None else sitk.CompositeTransform([outer, t])
        return ctx.evaluate(full, shrink=level)

    # every candidate refined on a copy half as fine (at most 32 px), then the best few distinct
    # poses refined again and scored at the search level (at most 64 px)
    cands: list[dict[str, Any]] = []
    for v, (flipped, _, _) in enumerate(variants):
        for ang in angles:
            t = sitk.Euler2DTransform(tuple(float(v) for v in c_f), float(np.deg2rad(ang)),
                                      tuple(float(v) for v in (c_m - c_f)))
            score = refine(ctxs[v], t, 2 * shrink, iters, exact=False)
            cands.append({"start_deg": float(ang), "flipped": flipped, "variant": v, "coarse_score": float(score),
                          "transform": t, "angle_deg": float(np.rad2deg(t.GetAngle())) % 360.0})
    coarse = sorted(range(len(cands)), key=lambda i: (cands[i]["coarse_score"], i))
    finalists: list[int] = []
    for i in coarse:
        c = cands[i]
        if all(c["flipped"] != cands[j]["flipped"] or _angle_diff(c["angle_deg"], cands[j]["angle_deg"]) > 20.0
               for j in finalists):
            finalists.append(i)
        if len(finalists) == int(opts.get("_search_finalists", 4)):
            break
    for c in cands:
        c["score"] = float("inf")
    for i in finalists:
        c = cands[i]
        c["score"] = refine(ctxs[c["variant"]], c["transform"], shrink, iters)
        c["angle_deg"] = float(np.rad2deg(c["transform"].GetAngle())) % 360.0
    order = sorted(range(len(cands)), key=lambda i: (cands[i]["score"], i))
    best = cands[order[0]]
    runner = None
    for i in order[1:]:
        c = cands[i]
        if c["flipped"] != best["flipped"] or _angle_diff(c["angle_deg"], best["angle_deg"]) > 20.0:
            runner = c
            break
    margin = None
    if runner is not None and np.isfinite(runner["score"]) and np.isfinite(best["score"]):
        margin = float((runner["score"] - best["score"]) / max(abs(best["score"]), 1e-12))
    return {
        "transform": best["transform"],
        "flipped": bool(best["flipped"]),
        "mirror_center": [float(v) for v in c_m],
        "centres": "image centres" if geometric else "tissue centroids",
        "angle_deg": float(best["angle_deg"]),
        "start_deg": float(best["start_deg"]),
        "score": float(best["score"]),
        "runner_up": None if runner is None else {
            "score": float(runner["score"]), "angle_deg": float(runner["angle_deg"]), "flipped": bool(runner["flipped"]),
        },
        "margin": margin,
        "shrink": shrink,
        "candidates": [
            {"start_deg": c["start_deg"], "angle_deg": round(c["angle_deg"], 3), "flipped": c["flipped"],
             "coarse_score": c["coarse_score"], "score": c["score"] if np.isfinite(c["score"]) else None}
            for c in cands
        ],
    }
