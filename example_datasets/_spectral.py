"""Demo data for spectral and optical maps: a multi-wavelength optoacoustic stack and an IHC (DAB) whole-slide section.

:func:`write_spectral` writes, into ``folder``:

* ``oa_stack.ome.tif``: a 64 x 64 px optoacoustic-like image (100 um pixels) at 700, 730, 760, 800, 850 and
  900 nm (channel names are the wavelengths), made from Prahl's haemoglobin extinction spectra with a planted
  oxygen saturation: well-oxygenated tissue (sO2 0.8) around a hypoxic core (sO2 0.3), total haemoglobin rising
  across the field, Gaussian noise at SNR 50 (uint16 counts);
* ``oa_tumour_mask.ome.tif``: the tumour (a disc holding the core) on the stack's grid;
* ``ihc_section.tif``: a brightfield IHC section (256 x 256 px RGB at 0.5 um, a 3-level pyramidal TIFF with its
  pixel size in the resolution tags: read by the ``slide`` format): haematoxylin-stained tissue on glass with
  DAB (e.g. CD31) in planted patches, mixed in optical density (Beer-Lambert) with scikit-image's stain vectors;
* ``ihc_annotations.geojson``: a QuPath-style GeoJSON with a ``Tumor`` polygon (label 1) and a ``Necrosis``
  polygon (label 2) in full-resolution pixel coordinates.

The returned truth holds the planted sO2 values, the tumour's expected mean sO2 and hypoxic fraction, and the
DAB-positive fraction of the annotated tumour's tissue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from example_datasets._writers import deterministic_uuid, write_ome_tiff

__all__ = ["write_spectral", "WAVELENGTHS_NM", "FILES"]

WAVELENGTHS_NM = (700, 730, 760, 800, 850, 900)
FILES = ("oa_stack.ome.tif", "oa_tumour_mask.ome.tif", "ihc_section.tif", "ihc_annotations.geojson")
SO2_TISSUE, SO2_CORE, SNR = 0.8, 0.3, 50.0
OA_PX_UM, IHC_PX_UM = 100.0, 0.5


def _haemoglobin(wl: np.ndarray) -> np.ndarray:
    """Prahl's molar extinction (cm^-1/M) of HbO2 and Hb at ``wl`` (columns), from the package's table."""
    from multiscale.analysis.unmixing.spectra import haemoglobin_spectra

    t = haemoglobin_spectra()
    return np.column_stack([np.interp(wl, t.index.to_numpy(), t[k].to_numpy()) for k in ("HbO2", "Hb")])


def _optoacoustic(folder: Path, rng: np.random.Generator) -> dict[str, Any]:
    n = 64
    yy, xx = np.mgrid[:n, :n].astype(float)
    r = np.hypot(yy - 31.5, xx - 33.5)
    tumour = r < 20.0
    core = r < 9.0
    so2 = np.where(core, SO2_CORE, SO2_TISSUE)
    thb = 1.0 + 0.5 * xx / n                       # mM, rising across the field
    conc = np.stack([so2 * thb, (1.0 - so2) * thb])
    A = _haemoglobin(np.asarray(WAVELENGTHS_NM, dtype=float)) / 1000.0   # per mM
    signal = np.einsum("lk,kyx->lyx", A, conc)
    signal = signal + rng.normal(0.0, signal.mean() / SNR, signal.shape)
    counts = np.clip(np.rint(signal * 20000.0), 0, 65535).astype(np.uint16)
    write_ome_tiff(folder / "oa_stack.ome.tif", counts, OA_PX_UM, [str(w) for w in WAVELENGTHS_NM],
                   deterministic_uuid("spectral", "oa"))
    write_ome_tiff(folder / "oa_tumour_mask.ome.tif", tumour.astype(np.uint8)[None], OA_PX_UM, ["tumour"],
                   deterministic_uuid("spectral", "oa-mask"))
    n_t, n_c = int(tumour.sum()), int(core.sum())
    return {"so2_tissue": SO2_TISSUE, "so2_core": SO2_CORE, "snr": SNR,
            "wavelengths_nm": list(WAVELENGTHS_NM), "tumour_pixels": n_t, "core_pixels": n_c,
            "tumour_so2_mean": (n_c * SO2_CORE + (n_t - n_c) * SO2_TISSUE) / n_t,
            "tumour_fraction_below_so2_0.5": n_c / n_t,
            "total_hb_mM_range": [1.0, 1.5], "counts_per_mM_signal": 20000.0}


def _ihc(folder: Path, rng: np.random.Generator) -> dict[str, Any]:
    from skimage.color import hed2rgb

    n = 256
    yy, xx = np.mgrid[:n, :n].astype(float)
    tissue = ((yy - 128) / 110.0) ** 2 + ((xx - 128) / 100.0) ** 2 < 1.0
    dab = np.zeros((n, n), bool)
    for cy, cx, rad in ((90, 100, 14), (150, 160, 18), (170, 80, 10), (100, 170, 12)):
        dab |= np.hypot(yy - cy, xx - cx) < rad
    dab &= tissue
    # optical densities (decadic) of each stain; scikit-image's hed2rgb takes OD / log10(1e6)
    h_od = np.where(tissue, 0.35 + rng.normal(0, 0.02, (n, n)), 0.0)
    d_od = np.where(dab, 0.9, 0.0)
    hed = np.stack([h_od, np.zeros((n, n)), d_od], axis=-1) / 6.0
    rgb = (np.clip(hed2rgb(hed), 0, 1) * 255).round().astype(np.uint8)
    rgb[~tissue] = 242                           # glass
    with tifffile.TiffWriter(folder / "ihc_section.tif") as tw:
        per_cm = 1e4 / IHC_PX_UM
        tw.write(rgb, subifds=2, tile=(64, 64), photometric="rgb", compression="zlib", metadata=None,
                 resolution=(per_cm, per_cm), resolutionunit="CENTIMETER", datetime=False, software=False)
        tw.write(rgb[::2, ::2], subfiletype=1, tile=(64, 64), photometric="rgb", compression="zlib",
                 datetime=False, software=False)
        tw.write(rgb[::4, ::4], subfiletype=1, tile=(64, 64), photometric="rgb", compression="zlib",
                 datetime=False, software=False)
    # QuPath-style annotations, full-resolution pixel coordinates (x, y)
    tumour_poly = [[60, 40], [200, 40], [220, 150], [190, 220], [70, 215], [40, 130], [60, 40]]
    necrosis_poly = [[110, 110], [140, 110], [140, 135], [110, 135], [110, 110]]
    feats = [{"type": "Feature", "id": "tumour", "geometry": {"type": "Polygon", "coordinates": [tumour_poly]},
              "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
             {"type": "Feature", "id": "necrosis", "geometry": {"type": "Polygon", "coordinates": [necrosis_poly]},
              "properties": {"objectType": "annotation",
                             "classification": {"name": "Necrosis", "color": [50, 50, 50]}}}]
    (folder / "ihc_annotations.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    from skimage.draw import polygon

    ann = np.zeros((n, n), np.uint8)
    for value, poly in ((1, tumour_poly), (2, necrosis_poly)):
        p = np.asarray(poly, dtype=float)
        rr, cc = polygon(p[:, 1] - 0.5, p[:, 0] - 0.5, shape=(n, n))
        ann[rr, cc] = value
    region = (ann == 1) & tissue
    return {"pixel_size_um": IHC_PX_UM, "dab_od": 0.9, "haematoxylin_od": 0.35,
            "tissue_fraction_of_slide": float(tissue.mean()),
            "dab_positive_fraction_of_tissue": float(dab[tissue].mean()),
            "tumour_annotation_dab_positive_fraction": float(dab[region].mean()),
            "tumour_annotation_pixels": int((ann == 1).sum())}


def write_spectral(folder: Path, seed: int) -> dict[str, Any]:
    """Write the optoacoustic stack, its tumour mask, the IHC slide and its annotations; return the planted truth.

    Examples
    --------
    >>> import tempfile
    >>> truth = write_spectral(Path(tempfile.mkdtemp()), seed=0)
    >>> truth["optoacoustic"]["so2_core"], round(truth["ihc"]["dab_positive_fraction_of_tissue"], 3)
    (0.3, 0.068)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return {"optoacoustic": _optoacoustic(folder, rng), "ihc": _ihc(folder, rng), "files": list(FILES)}
