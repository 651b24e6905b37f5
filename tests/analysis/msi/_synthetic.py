"""Designed synthetic MSI data: ions with planted spatial patterns, correlations, noise, mass drift, isotopes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from multiscale.image import spatial_image

PX_MM = 0.05


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
    """A positive, spatially smooth random pattern (lognormal of a smoothed Gaussian field), mean ~1."""
    f = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    f = f / f.std()
    return np.exp(0.8 * f)


def planted_stack(seed: int = 0, shape: tuple[int, int] = (48, 48), n_coloc: int = 5, n_null: int = 60,
                  noise: float = 0.3):
    """A reference and an ion stack: ``n_coloc`` ions follow the reference (varying strength), ``n_null`` are
    independent smooth patterns. Returns (stack DataArray, reference DataArray, indices of the co-localised)."""
    rng = np.random.default_rng(seed)
    ref = smooth_field(rng, shape)
    ions = []
    for k in range(n_coloc):
        w = 1.0 - 0.1 * k
        pat = w * ref + (1 - w) * smooth_field(rng, shape)
        ions.append(pat)
    for _ in range(n_null):
        ions.append(smooth_field(rng, shape))
    ions = np.stack(ions) * 100
    ions = ions * (1 + noise * rng.normal(size=ions.shape))
    ions = np.clip(ions, 0, None)
    mz = np.round(np.linspace(300, 900, ions.shape[0]) + rng.uniform(0, 0.5, ions.shape[0]), 4)
    perm = rng.permutation(ions.shape[0])  # the co-localised ions are not the first channels
    stack = spatial_image(ions[perm], spacing=PX_MM, dims=("c", "y", "x"), channels=mz[perm].tolist(),
                          modality="MSI", units="counts")
    reference = spatial_image(ref * 10, spacing=PX_MM, units="SUVbw", modality="PT")
    coloc = [float(mz[perm][i]) for i in range(len(perm)) if perm[i] < n_coloc]
    return stack, reference, coloc


def write_imzml(path: Path, mz: np.ndarray, images: np.ndarray, *, drift_ppm: np.ndarray | None = None,
                extra: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0, pixel_um: float = 50.0,
                min_intensity: float = 0.0, noise_peaks: int = 0) -> Path:
    """Write a processed centroid imzML: ion ``k`` at ``mz[k]`` with intensity ``images[k, y, x]`` in each pixel,
    shifted by ``drift_ppm[y, x]``; zero intensities are not written; ``extra`` (mz, intensity) peaks added
    everywhere; ``noise_peaks`` random low peaks (chemical noise) per pixel. Pixel size added to the scan settings."""
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(seed)
    n, ny, nx = images.shape
    with ImzMLWriter(str(path), mode="processed", spec_type="centroid", mz_dtype=np.float64,
                     intensity_dtype=np.float32, polarity="positive") as w:
        for y in range(ny):
            for x in range(nx):
                d = 0.0 if drift_ppm is None else float(drift_ppm[y, x])
                it = images[:, y, x]
                keep = it > min_intensity
                m = mz[keep] * (1 + d * 1e-6)
                v = it[keep]
                if extra is not None:
                    m = np.concatenate([m, extra[0] * (1 + d * 1e-6)])
                    v = np.concatenate([v, extra[1]])
                if noise_peaks:
                    m = np.concatenate([m, rng.uniform(300.0, 900.0, noise_peaks)])
                    v = np.concatenate([v, rng.exponential(3.0, noise_peaks)])
                o = np.argsort(m)
                w.addSpectrum(m[o], v[o].astype(np.float32), (x + 1, y + 1))
    text = Path(path).read_text(encoding="latin-1")
    anchor = '<cvParam cvRef="IMS" accession="IMS:1000043"'
    i = text.index(anchor)
    j = text.index("\n", i)
    add = (f'\n<cvParam cvRef="IMS" accession="IMS:1000046" name="pixel size (x)" value="{pixel_um}"/>'
           f'\n<cvParam cvRef="IMS" accession="IMS:1000047" name="pixel size y" value="{pixel_um}"/>')
    Path(path).write_text(text[:j] + add + text[j:], encoding="latin-1")
    return Path(path)
