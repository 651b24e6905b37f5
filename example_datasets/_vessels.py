"""Demo data for vessels and perivascular transport, and the truth of the example study's planted vessel tree.

:func:`write_vessels` writes ``vessels.ome.tif`` into ``folder``: an intravital-like 2-D field, 400 x 400 px at
5 µm (2 x 2 mm), three channels of camera counts (uint16, Poisson noise, a 0.8 px optical blur):

* ``dextran``: the vessels (a clean random binary tree of depth 3, radii 30 down to 15 µm, no two tubes touching);
* ``NP 12 nm`` and ``NP 125 nm``: two nanoparticle formulations, equal inside the vessels, falling off outside as
  ``exp(-d / L)`` with the distance ``d`` from the vessel wall; the small particles travel twice as far
  (``L`` = 60 µm vs 30 µm), over a tissue autofluorescence.

The returned truth holds the tree's total centreline length, branch points, length-weighted mean diameter and
each formulation's decay length (its 1/e penetration depth) and 50 % depth (``L ln 2``).

:func:`section_vessel_truth` is the truth of the example study's own fluorescence section (``generate.py``): from
the phantom's planted tubes, the in-plane length of the centrelines lying within one radius of the section plane
and the planted branch points within one radius of it, inside the field of view (and the tissue, or the tumour).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from example_datasets._writers import deterministic_uuid, write_ome_tiff

__all__ = ["write_vessels", "section_vessel_truth", "FILES", "CHANNELS", "DECAY_UM"]

FILES = ("vessels.ome.tif",)
CHANNELS = ("dextran", "NP 12 nm", "NP 125 nm")
SIZE, PX_UM = 400, 5.0
#: decay length (µm) of each formulation's extravascular signal from the vessel wall
DECAY_UM = {"NP 12 nm": 60.0, "NP 125 nm": 30.0}
GAIN, OFFSET, AUTOFLUOR, DEXTRAN, NP_LEVEL = 400.0, 100.0, 0.05, 1.0, 1.0


def _clean_tree(seed: int):
    from multiscale.analysis.vessels.synthetic import branching_tree

    ext = SIZE * PX_UM / 1000.0
    for k in range(200):
        tree = branching_tree((ext, ext), depth=3, root_radius=0.03, seed=int(seed) * 1000 + k,
                              segment_mm=ext / 3.6, margin_mm=0.1)
        if len(tree.branch_points) == 7 and tree.clearance_mm() > 0.05:
            return tree
    raise RuntimeError("no clean vessel tree found")  # pragma: no cover - 200 tries always find one


def write_vessels(folder: Path, seed: int) -> dict[str, Any]:
    """Write ``vessels.ome.tif`` (dextran + two nanoparticle formulations) into ``folder``; return the truth.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> truth = write_vessels(pathlib.Path(tempfile.mkdtemp()), seed=0)
    >>> truth["n_branch_points"], truth["penetration_1_over_e_mm"]["NP 12 nm"]
    (7, 0.06)
    """
    from scipy import ndimage as ndi

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1616]))
    tree = _clean_tree(seed)
    px = PX_UM / 1000.0
    d = tree.axis_distance((SIZE, SIZE), px, reach=5.0)  # mm to the nearest tube surface (negative inside)
    vfrac = np.clip(0.5 - d / px, 0.0, 1.0)  # partial volume at the wall
    chans = [AUTOFLUOR + DEXTRAN * vfrac]
    for name in CHANNELS[1:]:
        L = DECAY_UM[name] / 1000.0
        chans.append(AUTOFLUOR + NP_LEVEL * np.exp(-np.maximum(d, 0.0) / L))
    clean = np.stack([ndi.gaussian_filter(c, 0.8) for c in chans])
    counts = rng.poisson(GAIN * clean) + OFFSET
    write_ome_tiff(folder / FILES[0], np.clip(counts, 0, 65535).astype(np.uint16), PX_UM, list(CHANNELS),
                   deterministic_uuid("vessels", seed), emission_nm=(520.0, 665.0, 720.0))
    lengths = np.array([t.length_mm for t in tree.tubes])
    diam = np.array([2 * t.radius for t in tree.tubes])
    return {
        "file": FILES[0], "pixel_um": PX_UM, "shape_yx": [SIZE, SIZE],
        "total_length_mm": float(lengths.sum()),
        "n_branch_points": int(len(tree.branch_points)),
        "n_segments": int(len(tree.tubes)),
        "branch_points_yx_mm": np.round(tree.branch_points, 4).tolist(),
        "mean_diameter_mm": float((diam * lengths).sum() / lengths.sum()),
        "vessel_area_fraction": float((d < 0).mean()),
        "penetration_1_over_e_mm": {k: v / 1000.0 for k, v in DECAY_UM.items()},
        "penetration_half_mm": {k: v / 1000.0 * float(np.log(2)) for k, v in DECAY_UM.items()},
        "penetration_ratio_12_over_125": DECAY_UM["NP 12 nm"] / DECAY_UM["NP 125 nm"],
        "note": "signals: autofluorescence + level inside vessels, level * exp(-d / L) outside (d from the wall); "
                "camera counts = offset + Poisson(gain * signal blurred by 0.8 px). Depths measured from a "
                "binned profile start at the first bin's mean distance, a few µm from the wall.",
    }


def section_vessel_truth(phantom: Any, z0: float, x_range: tuple[float, float], y_range: tuple[float, float],
                         step_mm: float = 0.001) -> dict[str, Any]:
    """What a perfect 2-D vessel analysis of the example study's section would find, from the planted tree.

    A tube shows in the section where its centreline lies within one radius of the plane ``z = z0``; its
    in-plane length there is the projected length of those centreline points (sampled every ``step_mm``)
    inside the field of view ``x_range`` x ``y_range`` (world mm). A planted branch point (a tube end where
    two children start) counts when it lies within the parent's radius of the plane and in the field.
    Both are given over the tissue and over the tumour (the section mask). Tubes crossing the plane steeply
    show as ellipses; their in-plane length is short, as it should be.

    Examples
    --------
    >>> from example_datasets import _phantom as ph_mod
    >>> ph = ph_mod.make_phantom(0, (3.25, 3.0, 9.1))
    >>> t = section_vessel_truth(ph, ph.section_z0, (0.0, 6.5), (0.0, 6.0))
    >>> t["tissue"]["total_length_mm"] > 1.0, t["tissue"]["n_branch_points"] >= 0
    (True, True)
    """
    tree = phantom.vessels
    out: dict[str, Any] = {}
    regions = {"tissue": phantom.tissue_inside, "tumour": lambda p: phantom.tumour_inside(p) & phantom.tissue_inside(p)}
    starts = np.asarray(tree.start)
    for name, inside in regions.items():
        total, n_tubes = 0.0, 0
        for a, b, r in zip(tree.start, tree.end, tree.radius):
            n = max(int(np.ceil(np.linalg.norm(b - a) / step_mm)), 1)
            t = (np.arange(n) + 0.5) / n
            p = a[None, :] + t[:, None] * (b - a)[None, :]
            keep = (np.abs(p[:, 2] - z0) < r) & (p[:, 0] >= x_range[0]) & (p[:, 0] <= x_range[1]) \
                & (p[:, 1] >= y_range[0]) & (p[:, 1] <= y_range[1])
            if keep.any():
                keep &= inside(p)
            if keep.any():
                total += float(keep.sum()) * float(np.linalg.norm((b - a)[:2])) / n
                n_tubes += 1
        branch = []
        for e, r in zip(tree.end, tree.radius):
            kids = np.flatnonzero(np.linalg.norm(starts - e[None, :], axis=1) < 1e-9)
            if kids.size >= 2 and abs(e[2] - z0) < r and x_range[0] <= e[0] <= x_range[1] \
                    and y_range[0] <= e[1] <= y_range[1] and bool(inside(e[None, :])[0]):
                branch.append([round(float(e[0]), 4), round(float(e[1]), 4)])
        out[name] = {"total_length_mm": total, "n_branch_points": len(branch), "branch_points_xy_mm": branch,
                     "n_tubes_in_plane": n_tubes}
    out["definition"] = ("in-plane length of the planted centrelines within one radius of the section plane, inside "
                         "the field of view and the region; planted branch points within the parent's radius of the "
                         "plane")
    return out
