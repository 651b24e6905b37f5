"""Demo data for cells and spatial patterns: a small multiplex (IMC-like) section with planted cell types.

:func:`write_cells` writes ``cells.ome.tif`` into ``folder``: 256 x 256 px at 1 µm (IMC's step), four channels
of ion counts (uint16, Poisson noise):

* ``DNA``: every nucleus (discs of radius 4 µm);
* ``PanCK``: the cytoplasm (a 4 µm ring around the nucleus) of tumour cells, packed in a nest;
* ``CD68``: the cytoplasm of macrophages, each placed 10-16 µm from a tumour cell of the nest's edge;
* ``NP``: nanoparticle counts in the cytoplasm, planted per type (macrophages take up most; nothing in nuclei),
  over a low background.

Other (stromal) cells are scattered over the rest of the section. The returned truth holds the number of cells
of each type, the per-type mean of the cells' mean NP computed from the noiseless planted map on the true cell
masks (what the ``cells`` family measures), the nucleus vs cytoplasm NP means, and the mean distance from a
macrophage to its nearest tumour cell (and the same under random labelling of the true positions), and the area of
a macrophage's cytoplasm ring (the size of an NP hotspot patch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from example_datasets._writers import deterministic_uuid, write_ome_tiff

__all__ = ["write_cells", "FILES", "CHANNELS", "NP_LEVEL"]

FILES = ("cells.ome.tif",)
CHANNELS = ("DNA", "CD68", "PanCK", "NP")
SIZE, PX_UM = 256, 1.0
NUCLEUS_UM, CELL_UM = 4.0, 8.0
#: planted NP counts in the cytoplasm of each type; background everywhere
NP_LEVEL = {"macrophage": 40.0, "tumour": 10.0, "other": 4.0}
NP_BACKGROUND = 1.0
DNA_LEVEL, MARKER_LEVEL = 40.0, 30.0


def _place(rng: np.random.Generator, n: int, ok, existing: list[np.ndarray], min_d: float, tries: int = 4000
           ) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for _ in range(tries):
        if len(out) == n:
            break
        p = ok(rng)
        if p is None:
            continue
        allp = existing + out
        if allp and np.min(np.linalg.norm(np.array(allp) - p, axis=1)) < min_d:
            continue
        out.append(p)
    return out


def write_cells(folder: Path, seed: int) -> dict[str, Any]:
    """Write the multiplex section into ``folder``; return the planted truth (JSON-able)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lo, hi = CELL_UM + 1, SIZE - CELL_UM - 1
    nest_c, nest_r = np.array([150.0, 140.0]), 55.0
    min_d = 2 * CELL_UM
    tumour = _place(rng, 70, lambda g: (lambda p: p if np.linalg.norm(p - nest_c) < nest_r else None)(
        g.uniform(lo, hi, 2)), [], min_d)

    def near_tumour(g: np.random.Generator):
        t = tumour[g.integers(len(tumour))]
        if np.linalg.norm(t - nest_c) < nest_r - 20:
            return None
        ang = g.uniform(0, 2 * np.pi)
        p = t + g.uniform(CELL_UM * 2, CELL_UM * 2 + 6) * np.array([np.sin(ang), np.cos(ang)])
        if not (lo < p[0] < hi and lo < p[1] < hi) or np.linalg.norm(p - nest_c) < nest_r:
            return None
        return p

    macro = _place(rng, 25, near_tumour, list(tumour), min_d)
    other = _place(rng, 45, lambda g: (lambda p: p if np.linalg.norm(p - nest_c) > nest_r + 25 else None)(
        g.uniform(lo, hi, 2)), list(tumour) + list(macro), min_d)
    cells = [("tumour", p) for p in tumour] + [("macrophage", p) for p in macro] + [("other", p) for p in other]
    yy, xx = (np.mgrid[:SIZE, :SIZE] + 0.0) * PX_UM
    nuclei = np.zeros((SIZE, SIZE), np.int32)
    cell_lab = np.zeros((SIZE, SIZE), np.int32)
    for k, (_, p) in enumerate(cells, 1):
        d = np.hypot(yy - p[0], xx - p[1])
        cell_lab[d <= CELL_UM] = k
        nuclei[d <= NUCLEUS_UM] = k
    cyto = (cell_lab > 0) & (nuclei == 0)
    kinds = np.array([""] + [c[0] for c in cells], dtype=object)
    kind_map = kinds[cell_lab]
    clean = np.zeros((4, SIZE, SIZE))
    clean[0] = np.where(nuclei > 0, DNA_LEVEL, 0.5)
    clean[1] = np.where(cyto & (kind_map == "macrophage"), MARKER_LEVEL, 0.3)
    clean[2] = np.where(cyto & (kind_map == "tumour"), MARKER_LEVEL, 0.3)
    np_map = np.full((SIZE, SIZE), NP_BACKGROUND)
    for kind, level in NP_LEVEL.items():
        np_map[cyto & (kind_map == kind)] += level
    clean[3] = np_map
    counts = rng.poisson(clean).astype(np.uint16)
    write_ome_tiff(folder / "cells.ome.tif", counts, PX_UM, CHANNELS, deterministic_uuid("cells", seed))
    # truth: per-type mean of the cells' mean NP (noiseless), compartments, nearest neighbours
    per_cell = np.bincount(cell_lab.ravel(), weights=np_map.ravel()) / np.maximum(np.bincount(cell_lab.ravel()), 1)
    truth_types = {}
    for kind in ("macrophage", "tumour", "other"):
        ids = [k for k, (t, _) in enumerate(cells, 1) if t == kind]
        truth_types[kind] = {"n": len(ids), "np_cell_mean": float(per_cell[ids].mean()),
                             "np_cytoplasm_level": NP_LEVEL[kind] + NP_BACKGROUND}
    pos = np.array([p for _, p in cells])
    lab = np.array([t for t, _ in cells])
    m, t = pos[lab == "macrophage"], pos[lab == "tumour"]
    nn = np.linalg.norm(m[:, None] - t[None], axis=2).min(axis=1)
    nn_random = []
    for _ in range(200):
        perm = rng.permutation(lab)
        a, b = pos[perm == "macrophage"], pos[perm == "tumour"]
        nn_random.append(np.linalg.norm(a[:, None] - b[None], axis=2).min(axis=1).mean())
    return {
        "file": "cells.ome.tif", "pixel_size_um": PX_UM, "channels": list(CHANNELS),
        "nucleus_radius_um": NUCLEUS_UM, "cell_radius_um": CELL_UM,
        "types": truth_types,
        "gates": {"macrophage": f"CD68 > {MARKER_LEVEL / 4:g}", "tumour": f"PanCK > {MARKER_LEVEL / 4:g}"},
        "np_nucleus_mean": float(np_map[nuclei > 0].mean()), "np_cytoplasm_mean": float(np_map[cyto].mean()),
        "np_global_mean": float(np_map.mean()),
        "macrophage_to_tumour_nn_mean_um": float(nn.mean()),
        "macrophage_to_tumour_nn_random_um": float(np.mean(nn_random)),
        "macrophages_near_tumour": True,
        # an NP hotspot patch per macrophage: its cytoplasm ring (the hotspots family's patch_size_median)
        "macrophage_cytoplasm_area_mm2": float((cyto & (kind_map == "macrophage")).sum() / max(len(macro), 1)
                                               * PX_UM ** 2 / 1e6),
    }
