"""Mass-spectrometry imaging analysis: preprocessing, feature lists, colocalisation ranking, segmentation,
ROI composition, quantitation and several acquisitions of one section.

Plain functions over ion images (the image object, dims ``("c", ["z",] "y", "x")``, ``c`` = m/z) and
over an opened dataset (what :func:`multiscale.io.read_imzml` returns, used duck-typed through its
``ion_images``, ``mean_spectrum``, ``pixel_mask`` and ``datacube`` methods: analysis never imports io).

Modules
-------
preprocessing
    Normalisation (TIC, RMS, median, reference ion), hotspot clipping, peak picking.
features
    Feature lists from the mean spectrum, recalibration (lock mass or reference peaks, ppm shift per
    pixel), isotope envelopes and adduct m/z of a formula (molmass).
colocalisation
    ``rank_colocalised``: every feature ranked by similarity to a reference (ColocML preprocessing, cosine),
    block-permutation p-values and Benjamini-Hochberg q-values; the ``msi_colocalisation`` family.
segmentation
    PCA/NMF and k-means "habitats" from the lazy datacube or an ion-image stack; the ``msi_segmentation`` family.
composition
    Mean spectrum per region, parent/metabolite enrichment, ratio maps with LOD masking, virtual homogenate;
    the ``msi_composition`` family.
quantitation
    Calibration curves with an internal standard, LOD/LOQ, concentration maps; the ``msi_quantitation`` family.
acquisitions
    Several acquisitions of one section on one grid; multi-ion RGB composites.
figures
    Top hits beside the reference, cluster maps, calibration curves, RGB composites, single maps.
"""

from __future__ import annotations

from .acquisitions import combine_acquisitions, rgb_composite
from .colocalisation import colocml_preprocess, rank_colocalised, rank_images
from .composition import enrichment, ratio_map, ratio_summary, region_spectra, virtual_homogenate
from .features import (
    adduct_mz,
    feature_list,
    group_isotopes,
    isotope_envelope,
    pixel_shifts,
    recalibrate_mz,
    recalibrated_ion_images,
)
from .preprocessing import (
    MAD_TO_SIGMA,
    clip_hotspots,
    normalization_factors,
    normalize,
    pick_peaks,
    reference_ion_normalize,
)
from .quantitation import calibration_curve, concentration_map, standard_responses
from .segmentation import segment

__all__ = [
    "normalization_factors",
    "normalize",
    "reference_ion_normalize",
    "clip_hotspots",
    "pick_peaks",
    "MAD_TO_SIGMA",
    "feature_list",
    "adduct_mz",
    "isotope_envelope",
    "group_isotopes",
    "pixel_shifts",
    "recalibrate_mz",
    "recalibrated_ion_images",
    "colocml_preprocess",
    "rank_colocalised",
    "rank_images",
    "segment",
    "region_spectra",
    "enrichment",
    "ratio_map",
    "ratio_summary",
    "virtual_homogenate",
    "calibration_curve",
    "standard_responses",
    "concentration_map",
    "combine_acquisitions",
    "rgb_composite",
]
