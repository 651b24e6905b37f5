"""Texture settings: IBSI names, pyradiomics-style aliases, and the IBSI digital-phantom preset.

:func:`texture_settings` turns whatever the user passed into one dict with IBSI names, so the
family modules read one vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from multiscale.errors import TextureSettingsError

from .processing import check_processing

__all__ = ["DEFAULTS", "ALIASES", "IBSI_PHANTOM", "texture_settings", "TextureSettingsError"]




#: the IBSI-named settings and their defaults
DEFAULTS: dict[str, Any] = {
    "discretisation": "fbn",  # "fbn" (fixed bin number) or "fbs" (fixed bin size)
    "n_bins": 32,
    "bin_width": None,
    "min_anchor": None,  # FBS X_min; default: re-segmentation lower bound, else the ROI minimum
    "resegment_range": None,  # (lower, upper); either may be None / +-inf
    "outlier_sigma": None,  # e.g. 3.0: drop voxels outside mean +- 3 SD (IBSI outlier filtering)
    "glcm_distance": 1,
    "glcm_symmetric": True,
    "ngldm_alpha": 0,
    "ngldm_distance": 1,
    "ngtdm_distance": 1,
    "ivh_discretisation": "none",  # "none", "fbn" or "fbs"
    "ivh_bin_width": None,
    "ivh_n_bins": None,
    "ivh_range": None,  # (X_min, X_max) for the intensity fraction; default: re-segmentation range, else ROI
    "local_volume_cm3": 1.0,  # volume of the local-intensity sphere
    "nan_policy": "omit",  # "omit" (drop NaN voxels, warn), "propagate" (NaN features, warn), "raise"
    "label": None,  # mask value that is the ROI; None: every non-zero voxel
    "binning": "ibsi",  # "ibsi" (IBSI 2.7), or "pyradiomics": its bin edges (FBS anchored at floor(min / w) * w)
    # IBSI image processing before the features (see .processing): None keeps the image's grid
    "resample_spacing": None,  # mm: isotropic float, or (z, y, x) with None keeping an axis (2-D: (None, 2, 2))
    "interpolation": "linear",  # "nearest", "linear" or "cubic" (spline)
    "round_intensities": False,  # round to the nearest integer after interpolation (CT)
    "mask_interpolation": "linear",  # "linear" then the partial-volume threshold, or "nearest"
    "partial_volume": 0.5,  # ROI voxel kept when its interpolated fraction >= this
}

#: pyradiomics-style (and other common) names mapped to IBSI names
ALIASES: dict[str, str] = {
    "discretization": "discretisation",
    "binCount": "n_bins",
    "bin_count": "n_bins",
    "bins": "n_bins",
    "binWidth": "bin_width",
    "resegmentRange": "resegment_range",
    "resegment": "resegment_range",
    "re_segmentation_range": "resegment_range",
    "symmetricalGLCM": "glcm_symmetric",
    "gldm_a": "ngldm_alpha",
    "coarseness": "ngldm_alpha",
    "label_value": "label",
}

#: settings the IBSI manual prescribes for the digital phantom (no discretisation needed: FBS width 1)
IBSI_PHANTOM: dict[str, Any] = {
    "discretisation": "fbs",
    "bin_width": 1.0,
    "n_bins": None,
    "min_anchor": None,
    "resegment_range": None,
    "outlier_sigma": None,
    "glcm_distance": 1,
    "glcm_symmetric": True,
    "ngldm_alpha": 0,
    "ngldm_distance": 1,
    "ngtdm_distance": 1,
    "ivh_discretisation": "none",
    "ivh_bin_width": 1.0,
    "ivh_range": None,
}


def _range(value: Any, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TextureSettingsError(f"{name} must be a pair (lower, upper), got {value!r}") from None
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    if not lo < hi:
        raise TextureSettingsError(f"{name} lower bound {lo} must be below the upper bound {hi}")
    return (lo, hi)


def texture_settings(ibsi_phantom: bool = False, **settings: Any) -> dict[str, Any]:
    """Normalised texture settings (IBSI names) from user keywords.

    Parameters
    ----------
    ibsi_phantom : bool
        Start from the IBSI digital-phantom settings (FBS width 1, symmetric GLCM at distance 1,
        NGLDM coarseness 0, IVH on unit steps) instead of :data:`DEFAULTS`.
    **settings
        IBSI names (see :data:`DEFAULTS`) or pyradiomics-style names (see :data:`ALIASES`).
        Giving ``bin_width`` alone selects FBS; ``n_bins`` alone selects FBN. pyradiomics'
        ``resegmentMode="sigma"`` with ``resegmentRange=(-3, 3)`` means ``outlier_sigma=3``;
        ``distances=[d]`` means ``glcm_distance=d``.

    Returns
    -------
    dict
        Every key of :data:`DEFAULTS`, plus ``ibsi_phantom``.

    Raises
    ------
    TextureSettingsError
        Unknown names, or values that cannot work (naming the setting and the fix).

    Examples
    --------
    >>> s = texture_settings(binWidth=25, resegmentRange=[-500, 400])
    >>> s["discretisation"], s["bin_width"], s["resegment_range"]
    ('fbs', 25.0, (-500.0, 400.0))
    """
    out = dict(DEFAULTS)
    if ibsi_phantom:
        out.update(IBSI_PHANTOM)
    given: dict[str, Any] = {}
    mode = settings.pop("resegmentMode", None)
    distances = settings.pop("distances", None)
    for key, value in settings.items():
        name = ALIASES.get(key, key)
        if name not in DEFAULTS:
            known = sorted(set(DEFAULTS) | set(ALIASES) | {"resegmentMode", "distances"})
            raise TextureSettingsError(f"unknown texture setting {key!r}; known settings: {', '.join(known)}")
        if name in given and given[name] != value:
            raise TextureSettingsError(f"setting {name!r} given twice (as {key!r} and an alias) with different values")
        given[name] = value
    if distances is not None:
        ds = list(distances) if not isinstance(distances, (int, float)) else [distances]
        if len(ds) != 1:
            raise TextureSettingsError(f"distances={distances!r}: give one GLCM distance, e.g. distances=[1]")
        given["glcm_distance"] = ds[0]
    if mode is not None:
        mode = str(mode).lower()
        if mode == "sigma":
            rng = given.pop("resegment_range", None)
            if rng is None:
                raise TextureSettingsError("resegmentMode='sigma' needs resegmentRange=(-k, k)")
            lo, hi = rng
            if float(lo) != -float(hi):
                raise TextureSettingsError(f"resegmentMode='sigma' needs a symmetric range, got {rng!r}")
            given["outlier_sigma"] = float(hi)
        elif mode != "absolute":
            raise TextureSettingsError(f"resegmentMode={mode!r} is not supported; use 'absolute' or 'sigma'")
    if "bin_width" in given and "n_bins" not in given and "discretisation" not in given:
        given["discretisation"] = "fbs"
    if "n_bins" in given and "bin_width" not in given and "discretisation" not in given:
        given["discretisation"] = "fbn"
    out.update(given)

    disc = str(out["discretisation"]).lower()
    if disc not in ("fbn", "fbs"):
        raise TextureSettingsError(f"discretisation={out['discretisation']!r}: use 'fbn' (n_bins) or 'fbs' (bin_width)")
    out["discretisation"] = disc
    if disc == "fbn":
        if out["n_bins"] is None or int(out["n_bins"]) < 1:
            raise TextureSettingsError(f"n_bins={out['n_bins']!r}: fixed bin number needs n_bins >= 1, e.g. n_bins=32")
        out["n_bins"] = int(out["n_bins"])
    else:
        if out["bin_width"] is None or not float(out["bin_width"]) > 0:
            raise TextureSettingsError(f"bin_width={out['bin_width']!r}: fixed bin size needs bin_width > 0, e.g. bin_width=25")
        out["bin_width"] = float(out["bin_width"])
    out["resegment_range"] = _range(out["resegment_range"], "resegment_range")
    out["ivh_range"] = _range(out["ivh_range"], "ivh_range")
    if out["outlier_sigma"] is not None and not float(out["outlier_sigma"]) > 0:
        raise TextureSettingsError(f"outlier_sigma={out['outlier_sigma']!r} must be > 0, e.g. 3")
    for key in ("glcm_distance", "ngldm_distance", "ngtdm_distance"):
        if int(out[key]) < 1:
            raise TextureSettingsError(f"{key}={out[key]!r} must be >= 1 voxel (Chebyshev distance)")
        out[key] = int(out[key])
    out["ngldm_alpha"] = int(out["ngldm_alpha"])
    out["glcm_symmetric"] = bool(out["glcm_symmetric"])
    ivh = str(out["ivh_discretisation"]).lower()
    if ivh not in ("none", "fbn", "fbs"):
        raise TextureSettingsError(f"ivh_discretisation={ivh!r}: use 'none', 'fbn' or 'fbs'")
    out["ivh_discretisation"] = ivh
    if ivh == "fbn" and not out["ivh_n_bins"]:
        raise TextureSettingsError("ivh_discretisation='fbn' needs ivh_n_bins, e.g. ivh_n_bins=1000")
    if ivh == "fbs" and not out["ivh_bin_width"]:
        raise TextureSettingsError("ivh_discretisation='fbs' needs ivh_bin_width, e.g. 2.5 (HU) or 0.1 (SUV)")
    check_processing(out)
    out["binning"] = str(out["binning"]).lower()
    if out["binning"] not in ("ibsi", "pyradiomics"):
        raise TextureSettingsError(f"binning={out['binning']!r}: use 'ibsi' or 'pyradiomics' (pyradiomics' bin edges)")
    if out["nan_policy"] not in ("omit", "propagate", "raise"):
        raise TextureSettingsError(f"nan_policy={out['nan_policy']!r}: use 'omit', 'propagate' or 'raise'")
    if not float(out["local_volume_cm3"]) > 0:
        raise TextureSettingsError("local_volume_cm3 must be > 0")
    out["ibsi_phantom"] = bool(ibsi_phantom)
    return out


def family_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The subset handed to the matrix families."""
    keys = ("glcm_distance", "glcm_symmetric", "ngldm_alpha", "ngldm_distance", "ngtdm_distance")
    return {k: settings[k] for k in keys}
