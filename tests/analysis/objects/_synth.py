"""Synthetic nuclei with known labels (touching pairs included) for the object tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from multiscale.image import spatial_image


def nuclei_truth(seed: int = 0, shape: tuple[int, int] = (360, 360), n_single: int = 40, n_pairs: int = 10,
                 radius_px: tuple[float, float] = (9.0, 13.0)) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Truth labels of discs (two overlapping discs split along their common chord) and the discs (y, x, r)."""
    rng = np.random.default_rng(seed)
    discs: list[tuple[float, float, float]] = []

    def free(y, x, r, gap=4.0):
        return all(np.hypot(y - a, x - b) > r + c + gap for a, b, c in discs)

    tries = 0
    while len(discs) < 2 * n_pairs and tries < 20000:
        tries += 1
        r1, r2 = rng.uniform(*radius_px, 2)
        y, x = rng.uniform(r1 + 14, np.array(shape) - r1 - 14 - 2 * r2)
        ang = rng.uniform(0, 2 * np.pi)
        d = 0.85 * (r1 + r2)   # overlapping by 15 %: touching nuclei
        y2, x2 = y + d * np.sin(ang), x + d * np.cos(ang)
        if not (r2 + 2 < y2 < shape[0] - r2 - 2 and r2 + 2 < x2 < shape[1] - r2 - 2):
            continue
        if free(y, x, r1) and free(y2, x2, r2):
            discs += [(y, x, r1), (y2, x2, r2)]
    while len(discs) < 2 * n_pairs + n_single and tries < 40000:
        tries += 1
        r = rng.uniform(*radius_px)
        y, x = rng.uniform(r + 2, np.array(shape) - r - 2)
        if free(y, x, r):
            discs.append((y, x, r))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    best = np.full(shape, np.inf)
    labels = np.zeros(shape, np.int32)
    for k, (y, x, r) in enumerate(discs, start=1):
        d = np.hypot(yy - y, xx - x)
        power = d * d - r * r
        take = (d <= r) & (power < best)
        # a pixel shared by two discs goes by the power diagram: the split is their common chord
        labels[take] = k
        best[take] = power[take]
    return labels, discs


def nuclei_image(labels: np.ndarray, seed: int = 0, spacing_mm: float = 0.0005, noise: float = 0.08):
    """A DNA-like image of the truth labels: blurred by a 0.7 px PSF, Gaussian noise, with physical spacing."""
    rng = np.random.default_rng(seed + 1)
    img = ndi.gaussian_filter((labels > 0).astype(float), 0.7) + rng.normal(0, noise, labels.shape) + 0.1
    return spatial_image(img, spacing=spacing_mm, origin=(2.0, 3.0), channel="DNA", units="counts")
