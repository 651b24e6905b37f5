"""IBSI texture features of a region, voxel-wise texture maps, and features of many regions at once.

* :func:`features`: every IBSI chapter-1 family for one ROI, one row per feature, tagged with the IBSI
  short tag (``cm_joint_avg_3D_comb``) and feature id.
* :func:`feature_map`: per-voxel features in a sliding kernel, computed chunk by chunk on dask.
* :func:`regional_features`: one pass over a label image for many regions.

Families (``families=``): ``"morph"``, ``"loc"``, ``"stat"``, ``"ih"``, ``"ivh"``, ``"glcm"``, ``"glrlm"``,
``"glszm"``, ``"gldzm"``, ``"ngtdm"``, ``"ngldm"`` (long and pyradiomics-style names are accepted too).
Settings follow IBSI, with pyradiomics-style aliases: see :func:`texture_settings`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.image import as_image
from multiscale.image import origin as msi_origin
from multiscale.image import spacing as msi_spacing

from ..family import Family, image_units
from ._discretise import discretise, n_levels_of, pyradiomics_bins
from ._roi import Roi, RoiError, TextureWarning, mask_bounds, prepare_roi, warn_once
from ._rows import COLUMNS
from ._settings import ALIASES, DEFAULTS, TextureSettingsError, family_settings, texture_settings
from .processing import IBSI_CT_CONFIGURATIONS, process_roi
from .units import feature_unit

if TYPE_CHECKING:
    from ._aggregate import NeighbourhoodMatrices

__all__ = [
    "FAMILIES",
    "features",
    "feature_map",
    "regional_features",
    "texture_settings",
    "discretise",
    "RoiError",
    "TextureSettingsError",
    "TextureWarning",
    "feature_unit",
    "IBSI_CT_CONFIGURATIONS",
    "texture_table",
    "FAMILY",
]

#: families in output order
FAMILIES: tuple[str, ...] = ("morph", "loc", "stat", "ih", "ivh", "glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")
MATRIX_FAMILIES: tuple[str, ...] = ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")

_FAMILY_ALIASES = {
    "morphology": "morph", "shape": "morph", "morphological": "morph",
    "local_intensity": "loc", "local": "loc",
    "intensity": "stat", "statistics": "stat", "firstorder": "stat", "first_order": "stat",
    "histogram": "ih", "intensity_histogram": "ih",
    "intensity_volume_histogram": "ivh",
    "cm": "glcm", "rlm": "glrlm", "szm": "glszm", "dzm": "gldzm", "ngt": "ngtdm", "ngl": "ngldm", "gldm": "ngldm",
}


def resolve_families(families: str | Iterable[str] | None) -> list[str]:
    """Canonical family names (in :data:`FAMILIES` order) from user names; all when None."""
    if families is None:
        return list(FAMILIES)
    if isinstance(families, str):
        families = [families]
    wanted = set()
    for name in families:
        key = str(name).lower()
        key = _FAMILY_ALIASES.get(key, key)
        if key not in FAMILIES:
            raise TextureSettingsError(f"unknown texture family {name!r}; choose from {', '.join(FAMILIES)}")
        wanted.add(key)
    return [f for f in FAMILIES if f in wanted]


def _matrix_module(family: str):
    return importlib.import_module(f"{__name__}.{family}")


def _aggregations(module: Any, aggregation: str | Sequence[str] | None) -> list[str]:
    available = list(module.AGGREGATIONS)
    if aggregation is None:
        return available
    tokens = [aggregation] if isinstance(aggregation, str) else list(aggregation)
    out = []
    for agg in available:
        for t in tokens:
            t = str(t).replace(".", "_")
            if agg == t or agg.startswith(t + "_"):
                out.append(agg)
                break
    return out


def check_aggregation(aggregation: str | Sequence[str] | None) -> None:
    if aggregation is None:
        return
    tokens = [aggregation] if isinstance(aggregation, str) else list(aggregation)
    known = ("2D", "2_5D", "3D", "2D_avg", "2D_comb", "2_5D_avg", "2_5D_comb", "3D_avg", "3D_comb")
    for t in tokens:
        if str(t).replace(".", "_") not in known:
            raise TextureSettingsError(f"unknown aggregation {t!r}; choose from {', '.join(known)}")


def _discretised(s: dict[str, Any], v: np.ndarray) -> tuple[np.ndarray, int, float | None, list[str]]:
    """Grey levels of ``v`` (the intensity-mask values, in mask order), Ng, the FBS anchor used, and notes."""
    notes: list[str] = []
    anchor = None
    if v.size == 0:
        return np.zeros(0, dtype=np.int64), int(s["n_bins"] or 1), anchor, notes
    upper = None
    if s["binning"] == "pyradiomics":  # pyradiomics' edges: FBS anchored at floor(min / w) * w; Ng = top level
        qv, edges = pyradiomics_bins(v, s["n_bins"] if s["discretisation"] == "fbn" else None, s["bin_width"])
        anchor = float(edges[0]) if s["discretisation"] == "fbs" else None
        return qv, max(int(qv.max()), 1), anchor, notes
    if s["discretisation"] == "fbs":
        anchor = s["min_anchor"]
        rng = s["resegment_range"]
        if anchor is None and rng is not None and np.isfinite(rng[0]):
            anchor = rng[0]
        if anchor is None:
            anchor = float(v.min())
            if not s["ibsi_phantom"]:
                notes.append(
                    f"FBS anchored at the ROI minimum {anchor:g} (no re-segmentation range); IBSI anchors at the "
                    "lower re-segmentation bound: pass resegment_range=(lower, upper) or min_anchor="
                )
        if rng is not None and np.isfinite(rng[1]):
            upper = rng[1]
    qv = discretise(v, s["discretisation"], s["n_bins"], s["bin_width"], anchor)
    ng = n_levels_of(qv, s["discretisation"], s["n_bins"], s["bin_width"], anchor, upper)
    return qv, ng, anchor, notes


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    bounds = mask_bounds(mask)
    if bounds is None:
        return tuple(slice(0, min(n, 1)) for n in mask.shape)
    return tuple(slice(lo, hi) for lo, hi in bounds)


#: families whose distance-1 3-D matrices come from one shared pass (:func:`._aggregate.neighbourhood_matrices`)
_SHARED_FAMILIES: tuple[str, ...] = ("glcm", "glrlm", "ngtdm", "ngldm")


def _shared_neighbourhood(q: np.ndarray, ng: int, fams: list[str], aggregation: str | Sequence[str] | None,
                          fs: dict[str, Any]) -> NeighbourhoodMatrices | None:
    """The 3-D matrices of GLCM, GLRLM, NGTDM and NGLDM from one pass, when two or more of them want them.

    One pass reads each voxel's 26 neighbours once for all four families (each family alone would read
    them again); for a single family its own kernel is cheaper, so None is returned.
    """
    distance_one = {"glcm": fs["glcm_distance"], "glrlm": 1, "ngtdm": fs["ngtdm_distance"],
                    "ngldm": fs["ngldm_distance"]}
    users = [f for f in fams if f in _SHARED_FAMILIES and int(distance_one[f] or 1) == 1
             and any(a.startswith("3D") for a in _aggregations(_matrix_module(f), aggregation))]
    if len(users) < 2:
        return None
    from ._aggregate import neighbourhood_matrices

    return neighbourhood_matrices(q, ng, planar=False, symmetric=bool(fs["glcm_symmetric"]),
                                  alpha=float(fs["ngldm_alpha"] or 0), width=max(q.shape))


def roi_feature_rows(roi: Roi, s: dict[str, Any], fams: list[str],
                     aggregation: str | Sequence[str] | None = None) -> tuple[list[dict], list[str], dict]:
    """Feature rows of a prepared ROI (the body of :func:`features`; also used per region)."""
    from . import histogram, intensity, ivh, local_intensity, morphology

    notes: list[str] = []
    rows: list[dict] = []
    values = roi.int_values
    q_values, ng, anchor, dnotes = _discretised(s, values)
    notes += dnotes
    fs = family_settings(s)
    shared = None
    if any(f in MATRIX_FAMILIES for f in fams):
        # the matrix families work on the grey levels of the ROI's box (0 outside the intensity mask), built
        # once for all of them; the box holds every intensity-mask voxel, in the same C order
        box = _bbox(roi.morph_mask)
        morph_box = np.ascontiguousarray(roi.morph_mask[box])
        q_box = np.zeros(morph_box.shape, dtype=np.int32)
        q_box[roi.int_mask[box]] = q_values
        shared = _shared_neighbourhood(q_box, ng, fams, aggregation, fs)
    for fam in fams:
        if fam == "morph":
            if roi.is_2d:
                continue
            rows += morphology.morphology_features(roi.values, roi.morph_mask, roi.int_mask, roi.spacing)
        elif fam == "loc":
            rows += local_intensity.local_intensity_features(roi.values, roi.int_mask, roi.spacing,
                                                             s["local_volume_cm3"])
        elif fam == "stat":
            rows += intensity.intensity_features(values)
        elif fam == "ih":
            rows += histogram.histogram_features(q_values, ng)
        elif fam == "ivh":
            rows += ivh.ivh_features(values, s)
        else:
            try:
                mod = _matrix_module(fam)
            except ImportError as exc:
                notes.append(f"texture family {fam!r} is not available ({exc})")
                continue
            aggs = _aggregations(mod, aggregation)
            if not aggs:
                continue
            extra = {"shared": shared} if shared is not None and fam in _SHARED_FAMILIES else {}
            rows += mod.family_features(q_box, ng, morph_box, roi.spacing, aggs, fs, **extra)
    meta = {"n_levels": ng, "min_anchor": anchor, "n_voxels": int(roi.int_mask.sum()),
            "n_voxels_morphological": int(roi.morph_mask.sum())}
    return rows, notes, meta


def features(
    image: xr.DataArray,
    mask: Any = None,
    families: str | Iterable[str] | None = None,
    aggregation: str | Sequence[str] | None = None,
    *,
    spacing: Any = None,
    **settings: Any,
) -> pd.DataFrame:
    """IBSI features of one region of interest.

    Parameters
    ----------
    image : xarray.DataArray or numpy.ndarray
        A 2-D or 3-D spatial image (:func:`multiscale.image.spatial_image`); spacing in mm. A plain array
        needs ``spacing=``.
    mask : xarray.DataArray or numpy.ndarray, optional
        The ROI on the image's grid (non-zero voxels, or ``label=`` value). A mask on another grid
        is an error. None: the whole image.
    families : str or iterable of str, optional
        Families to compute (see :data:`FAMILIES`); all by default (morphology only for 3-D images).
    aggregation : str or sequence of str, optional
        Texture aggregations to keep, e.g. ``"3D"``, ``"3D_comb"``, ``["2D_avg", "2_5D"]``; all by default.
    **settings
        IBSI settings or pyradiomics-style aliases (:func:`texture_settings`): ``n_bins``/``binCount``,
        ``bin_width``/``binWidth``, ``min_anchor``, ``resegment_range``/``resegmentRange``,
        ``outlier_sigma``, ``glcm_distance``, ``glcm_symmetric``, ``ngldm_alpha``, ``ngldm_distance``,
        ``ngtdm_distance``, ``ivh_discretisation``, ``ivh_bin_width``, ``ivh_n_bins``, ``ivh_range``,
        ``nan_policy`` (``"omit"``, ``"propagate"``, ``"raise"``), ``label``; ``ibsi_phantom=True`` applies
        the IBSI digital-phantom settings; ``binning="pyradiomics"`` bins as pyradiomics does (see
        :mod:`.pyradiomics` for parameter files). IBSI image processing first (:mod:`.processing`):
        ``resample_spacing`` (mm; ``(None, 2, 2)`` in-plane), ``interpolation`` (``"nearest"``, ``"linear"``,
        ``"cubic"``), ``round_intensities``, ``mask_interpolation``, ``partial_volume`` (0.5); each IBSI
        CT-phantom configuration is ``features(ct, gtv, **IBSI_CT_CONFIGURATIONS["C"])``.
    spacing : float or sequence of float, optional
        Voxel spacing in mm when ``image`` is a plain array.

    Returns
    -------
    pandas.DataFrame
        Columns ``tag``, ``ibsi_id``, ``aggregation``, ``family``, ``feature``, ``value``; one row per
        feature. ``df.attrs`` holds the settings used, ``n_levels``, the FBS ``min_anchor`` and voxel counts.
        Lengths in mm, areas in mm^2, volumes in mm^3. Undefined values (empty ROI, one voxel, constant
        intensity) are NaN, with one :class:`TextureWarning`.

    Raises
    ------
    RoiError
        Mask on another grid or of another shape; NaN in the ROI with ``nan_policy="raise"``.
    TextureSettingsError
        Unknown family, aggregation or setting.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.arange(64.0).reshape(4, 4, 4), spacing=(2.0, 1.0, 1.0))
    >>> df = features(img, img > 10, families=["stat", "morph"])
    >>> float(df.set_index("tag").loc["stat_max", "value"])
    63.0
    """
    s = texture_settings(**settings)
    fams = resolve_families(families)
    check_aggregation(aggregation)
    if spacing is not None:
        image = as_image(image, spacing=spacing)
    resampled = None
    if s["resample_spacing"] is not None or s["round_intensities"]:
        image, mask = process_roi(image, mask, s)
        if s["resample_spacing"] is not None:
            s = {**s, "label": None}  # the re-interpolated mask is 0/1
            resampled = {"shape": tuple(int(n) for n in image.shape), "spacing": msi_spacing(image),
                         "origin": msi_origin(image), "n_voxels_mask": int(np.count_nonzero(mask.values))}
    roi = prepare_roi(image, mask, s)
    if families is not None and roi.is_2d and "morph" in fams:
        raise TextureSettingsError("morphological features need a 3-D image; drop 'morph' from families")
    notes = list(roi.notes)
    if not roi.int_mask.any():
        notes.append("the ROI is empty (no voxels inside the intensity mask): feature values are NaN")
    rows, fnotes, meta = roi_feature_rows(roi, s, fams, aggregation)
    notes += fnotes
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if roi.nan_inside and s["nan_policy"] == "propagate":
        df["value"] = np.nan
    n_nan = int(df["value"].isna().sum())
    if n_nan and not notes:
        nan_tags = df.loc[df["value"].isna(), "tag"].tolist()
        notes.append(
            f"{n_nan} features are undefined for this ROI ({meta['n_voxels']} voxels) and set to NaN, e.g. "
            + ", ".join(nan_tags[:5])
        )
    warn_once(notes)
    df.attrs.update(meta)
    df.attrs["settings"] = s
    if resampled is not None:
        df.attrs["resampled"] = resampled  # the IBSI interpolation grid the features were computed on
    return df


def feature_map(image: xr.DataArray, mask: Any = None, family: str = "glcm", features: Sequence[str] | None = None,
                radius: int = 2, bins: int = 32, **settings: Any) -> xr.DataArray:
    """Voxel-wise texture map: one ``c`` channel per feature of ``family`` in a sliding kernel.

    Thin wrapper over :func:`multiscale.analysis.texture.maps.feature_map` (see there for the
    options: ``radius_mm``, masked kernels, chunking); imported on first use.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.random.default_rng(0).random((6, 6, 6)), spacing=1.0)
    >>> m = feature_map(img, family="glcm", features=["cm_joint_avg"], radius=1, bins=8)  # doctest: +SKIP
    """
    from .maps import feature_map as _feature_map

    return _feature_map(image, mask=mask, family=family, features=features, radius=radius, bins=bins, **settings)


def regional_features(image: xr.DataArray, labels: Any, *args: Any, **kwargs: Any) -> pd.DataFrame:
    """Features of many regions of a label image in one pass (see :mod:`.regional`)."""
    from .regional import regional_features as _regional_features

    return _regional_features(image, labels, *args, **kwargs)




def _setting_names() -> list[str]:
    return sorted(set(DEFAULTS) | set(ALIASES) | {"ibsi_phantom"})


def texture_table(
    image: xr.DataArray,
    mask: Any,
    *,
    families: str | Sequence[str] = ("intensity",),
    aggregation: str | Sequence[str] | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """:func:`features` as tidy rows with IBSI units; the study's ``texture``.

    ``metric`` is the IBSI tag, ``detail`` the IBSI id, the feature's name and its aggregation;
    ``units`` from :func:`feature_unit`. Only first-order intensity statistics by default
    (``families: [glcm, ...]`` for more).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.arange(27.0).reshape(3, 3, 3), spacing=1.0, units="SUVbw")
    >>> rows = {r["metric"]: r for r in texture_table(img, None)}
    >>> rows["stat_mean"]["value"], rows["stat_mean"]["units"], rows["stat_var"]["units"]
    (13.0, 'SUVbw', '(SUVbw)^2')
    """
    res = features(image, mask, families=list(families) if not isinstance(families, str) else families,
                   aggregation=aggregation, **settings)
    units = image_units(image)
    rows = []
    for _, r in res.iterrows():
        agg = str(r.get("aggregation", "") or "")
        detail = f"IBSI {r.get('ibsi_id', '')}: {r.get('feature', '')}" + (f" ({agg})" if agg else "")
        rows.append(dict(metric=str(r["tag"]), value=float(r["value"]), units=feature_unit(str(r["tag"]), units),
                         detail=detail))
    return rows


FAMILY = Family(
    name="texture",
    table=texture_table,
    inputs=("image", "mask"),
    settings=_setting_names,
    description="IBSI chapter-1 features of a region (first-order statistics by default; any family by name)",
)
