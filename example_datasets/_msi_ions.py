"""Endogenous ions for the example MSI: lipids and metabolites with planted spatial patterns.

``endogenous_ions(maps, seed)`` returns ions the generator adds to ``msi.imzML`` beside the drug, carrier and
haem: some follow the released drug, some the hypoxic viable rim (far from vessels), some the vessels, one the
whole tissue and one an independent texture (unrelated to everything). The ranking analyses of the demo
(``msi_colocalisation``) should find the drug-like ions co-localised with doxorubicin (on top of the ranking,
p <= 0.05 within the tissue), the vessel-like ion with the vessel stain, and not the unrelated one. The demo also
ranks against the PET on the section plane; at 1.5 mm FWHM the PET is too smooth for the section-scale drug
pattern to stand out there, so the truth claims no PET co-localisation.

The m/z are the published monoisotopic values of each adduct (LIPID MAPS / HMDB), which
``multiscale.analysis.msi.adduct_mz`` reproduces from the formulas (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

#: name -> (formula, adduct, m/z, pattern, amplitude)
ENDOGENOUS: dict[str, tuple[str, str, float, str, float]] = {
    "LPC 16:0": ("C24H50NO7P", "[M+H]+", 496.3398, "drug", 400.0),
    "PC 32:0": ("C40H80NO8P", "[M+Na]+", 756.5514, "drug_mixed", 350.0),
    "LPC 18:1": ("C26H52NO7P", "[M+H]+", 522.3554, "hypoxia", 300.0),
    "SM 34:1": ("C39H79N2O6P", "[M+Na]+", 725.5568, "hypoxia", 250.0),
    "bilirubin": ("C33H36N4O6", "[M+H]+", 585.2708, "vessels", 500.0),
    "PC 34:1": ("C42H82NO8P", "[M+H]+", 760.5851, "tissue", 300.0),
    "cholesterol": ("C27H46O", "[M+H-H2O]+", 369.3516, "viable", 250.0),
    "PE 38:4": ("C43H78NO8P", "[M+H]+", 768.5538, "independent", 300.0),
}


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.clip(np.asarray(a, dtype=np.float64), 0, None)
    hi = float(np.percentile(a[a > 0], 99)) if np.any(a > 0) else 1.0
    return np.clip(a / hi, 0, 1.5)


def hypoxia_map(viable: np.ndarray, vessels: np.ndarray, sigma_px: float = 3.0) -> np.ndarray:
    """Viable tissue far from vessels: viable x (1 - smoothed vessel density, scaled to [0, 1])."""
    near = ndimage.gaussian_filter(np.asarray(vessels, dtype=np.float64), sigma_px)
    near = near / (float(np.percentile(near, 90)) or 1.0)
    return np.clip(viable, 0, 1) * np.clip(1 - near, 0, 1)


def endogenous_ions(maps: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """Ions to add to the example MSI, on its grid.

    Parameters
    ----------
    maps : dict
        Noise-free maps on the MSI grid (same shape): ``tissue`` (0..1), ``viable`` (0..1), ``drug`` (released
        doxorubicin), ``vessels`` (vessel fraction).
    seed : int
        For the independent texture.

    Returns
    -------
    dict
        ``names`` (list), ``mz`` (array), ``patterns`` (array ``(n_ions, ny, nx)`` of noise-free intensities, in
        the generator's counts), ``truth`` (JSON-able: each ion's formula, adduct, m/z and pattern, and which
        references it co-localises with).
    """
    tissue = np.clip(np.asarray(maps["tissue"], dtype=np.float64), 0, 1)
    drug = _unit(maps["drug"])
    vessels = _unit(maps["vessels"])
    hyp = hypoxia_map(maps["viable"], maps["vessels"])
    rng = np.random.default_rng(seed + 1801)
    field = ndimage.gaussian_filter(rng.normal(size=tissue.shape), 3.0)
    field = np.exp(0.8 * field / (field.std() or 1.0))
    patterns = {
        "drug": drug,
        "drug_mixed": 0.6 * drug + 0.4 * tissue,
        "hypoxia": _unit(hyp),
        "vessels": vessels,
        "tissue": tissue,
        "viable": np.clip(maps["viable"], 0, 1),
        "independent": tissue * field / float(np.percentile(field, 99)),
    }
    coloc = {"drug": ["doxorubicin"], "drug_mixed": ["doxorubicin"], "hypoxia": ["hypoxia"],
             "vessels": ["vessels"], "tissue": [], "viable": [], "independent": []}
    names = list(ENDOGENOUS)
    mz = np.array([ENDOGENOUS[n][2] for n in names])
    out = np.stack([ENDOGENOUS[n][4] * patterns[ENDOGENOUS[n][3]] for n in names])
    truth = {n: {"formula": ENDOGENOUS[n][0], "adduct": ENDOGENOUS[n][1], "mz": ENDOGENOUS[n][2],
                 "pattern": ENDOGENOUS[n][3], "colocalised_with": coloc[ENDOGENOUS[n][3]]} for n in names}
    return {"names": names, "mz": mz, "patterns": out, "truth": truth}


def _demo_maps(shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """Small noise-free maps for a stand-alone section: tissue disc, viable rim, vessels, a released-drug field."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    r = np.hypot((yy - ny / 2) / (0.42 * ny), (xx - nx / 2) / (0.45 * nx))
    tissue = ndimage.gaussian_filter((r < 1).astype(float), 0.7)
    viable = tissue * ndimage.gaussian_filter((r > 0.45).astype(float), 1.0)
    ves = np.zeros(shape)
    for _ in range(5):
        y0, x0, ang = rng.uniform(0.2 * ny, 0.8 * ny), rng.uniform(0.2 * nx, 0.8 * nx), rng.uniform(0, np.pi)
        t = np.linspace(-0.3 * nx, 0.3 * nx, 200)
        iy = np.clip(np.round(y0 + t * np.sin(ang)).astype(int), 0, ny - 1)
        ix = np.clip(np.round(x0 + t * np.cos(ang)).astype(int), 0, nx - 1)
        ves[iy, ix] = 1.0
    ves = ndimage.gaussian_filter(ves, 0.7) * tissue
    carrier = ndimage.gaussian_filter(rng.random(shape) * viable, 2.0) + 0.5 * ves
    drug = ndimage.gaussian_filter(carrier, 1.5) * tissue
    return {"tissue": tissue, "viable": viable, "vessels": ves, "drug": drug}


def write_msi_ions(folder: Any, seed: int = 0, shape: tuple[int, int] = (40, 44), pixel_um: float = 75.0) -> dict:
    """A small stand-alone ``msi_ions.imzML`` (processed, centroid) with doxorubicin and the endogenous ions, and
    its tissue mask ``msi_tissue.ome.tif`` (same grid).

    Written with pyimzML (``example`` extra) through the example study's deterministic writer; 40 x 44 pixels,
    < 1 s. Returns the planted truth (JSON-able): ``mz`` by ion name, each ion's pattern and co-localisation.
    """
    from pathlib import Path

    from ._writers import deterministic_uuid, write_imzml, write_ome_tiff

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    maps = _demo_maps(shape, seed)
    endo = endogenous_ions(maps, seed)
    names = ["doxorubicin"] + endo["names"]
    mz = np.concatenate([[544.1813], endo["mz"], [190.0499, 379.0925]])  # + CHCA matrix peaks, everywhere
    matrix = 40.0 * (1 - 0.7 * np.clip(maps["tissue"], 0, 1))
    clean = np.concatenate([900.0 * _unit(maps["drug"])[None], endo["patterns"], matrix[None], matrix[None]])
    clean = clean.reshape(len(mz), -1).T
    rng = np.random.default_rng(seed + 7)
    npix = clean.shape[0]
    noisy = clean * np.exp(rng.normal(0, 0.1, (npix, 1))) * (1 + 0.1 * rng.normal(size=clean.shape)) \
        + rng.normal(0, 3.0, clean.shape)
    detected = noisy > 8.0
    mz_all = mz[None, :] * (1 + 1e-6 * rng.normal(0, 0.5, clean.shape))
    ny, nx = shape

    def spectra():
        for i in range(npix):
            keep = detected[i]
            o = np.argsort(mz_all[i, keep])
            yield mz_all[i, keep][o], noisy[i, keep][o].astype(np.float32), (int(i % nx) + 1, int(i // nx) + 1)

    write_imzml(folder / "msi_ions.imzML", spectra(), (pixel_um, pixel_um), shape,
                deterministic_uuid("msi_ions", seed))
    tissue_mask = (maps["tissue"] > 0.5).astype(np.uint8)[None]
    write_ome_tiff(folder / "msi_tissue.ome.tif", tissue_mask, pixel_um, ["tissue"],
                   deterministic_uuid("msi_tissue", seed))
    truth = dict(endo["truth"])
    truth["doxorubicin"] = {"formula": "C27H29NO11", "adduct": "[M+H]+", "mz": 544.1813, "pattern": "drug",
                            "colocalised_with": ["doxorubicin"]}
    return {"file": "msi_ions.imzML", "mask": "msi_tissue.ome.tif", "mz": {n: float(m) for n, m in zip(names, mz[: len(names)])}, "ions": truth,
            "shape": list(shape), "pixel_um": pixel_um}
