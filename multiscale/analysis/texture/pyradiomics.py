"""pyradiomics parity: read a pyradiomics parameter file and return pyradiomics' values under its names.

A pyradiomics user brings a parameter file (``setting:``, ``featureClass:``, ``imageType: {Original: {}}``)
and expects the numbers pyradiomics 3.0.1 gives. :func:`pyradiomics_features` computes them with this
package's IBSI features plus what pyradiomics does differently:

* **binning**: pyradiomics anchors fixed-bin-width edges at ``floor(min / binWidth) * binWidth``
  (``imageoperations.getBinEdges``: ``lowBound = minimum - (minimum % binWidth)``), not at the
  re-segmentation lower bound (IBSI), and uses ``numpy.histogram`` edges for ``binCount``; ``Ng`` is the
  highest grey level present (:func:`~multiscale.analysis.texture._discretise.pyradiomics_bins`);
* **image processing**, in pyradiomics' order and with its SimpleITK calls: ``normalize``
  (``sitk.Normalize`` of the whole image, ``removeOutliers`` clipping, ``normalizeScale``), then
  ``resampledPixelSpacing`` with ``interpolator`` on pyradiomics' grid (the mask's bounding box padded by
  ``padDistance``, in the image's pixel type), then ``resegmentRange``/``resegmentMode`` (the shape keeps the
  mask before re-segmentation);
* **first order**: ``voxelArrayShift`` in Energy, TotalEnergy (Energy x voxel volume) and RootMeanSquared;
  Kurtosis is not excess kurtosis (IBSI's + 3);
* **flat regions**: where IBSI leaves a feature undefined (NaN), pyradiomics returns a number: Correlation 1,
  Imc1 0, Imc2 0, Skewness 0, Kurtosis 0, NGTDM Coarseness 1e6, Contrast/Busyness/Complexity/Strength 0.

Aggregation as pyradiomics: GLCM and GLRLM features per direction, averaged over the 13 directions (IBSI
``3D_avg``); GLSZM, GLDM (IBSI NGLDM with ``gldm_a`` as coarseness) and NGTDM on the whole volume (``3D``).

* **pyradiomics-only features**: GLCM MCC (second eigenvalue of pyradiomics' Q matrix) and shape
  Maximum2DDiameterSlice/Column/Row (mesh vertices sharing a z, y or x position).

Not reproduced (an error names them): image types other than ``Original`` (LoG, Wavelet, ...), ``force2D``,
``weightingNorm``, ``resegmentShape``, ``resegmentMode: relative``, ``shape2D``.

Checked against pyradiomics 3.0.1 on all 107 features it computes by default plus the four deprecated ones
(values typed into ``tests/analysis/_pyradiomics_reference.py`` with their source; synthetic volumes and the IBSI
STS_019 CT): within 1e-6 relative for every intensity and texture feature, 1 % for shape (mesh) features.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale import image as msi
from multiscale.errors import RoiError, TextureSettingsError

from ._roi import TextureWarning

__all__ = ["PyradiomicsParams", "read_params", "pyradiomics_features", "PYRADIOMICS_TAGS", "FLAT_VALUES",
           "DEFAULT_SETTINGS"]

#: pyradiomics 3.0.1 defaults for the settings that change values
DEFAULT_SETTINGS: dict[str, Any] = {
    "binWidth": 25.0, "binCount": None, "label": 1, "symmetricalGLCM": True, "gldm_a": 0, "distances": [1],
    "voxelArrayShift": 0, "normalize": False, "normalizeScale": 1.0, "removeOutliers": None,
    "resampledPixelSpacing": None, "interpolator": "sitkBSpline", "padDistance": 5, "resegmentRange": None,
    "resegmentMode": "absolute", "resegmentShape": False, "force2D": False, "weightingNorm": None,
}

#: settings that do not change feature values (checks, cropping, diagnostics): accepted and ignored
IGNORED_SETTINGS = frozenset({
    "minimumROIDimensions", "minimumROISize", "geometryTolerance", "correctMask", "additionalInfo", "preCrop",
    "label_channel", "force2Ddimension", "sigma", "start_level", "level", "wavelet", "gradientUseSpacing",
    "lbp2DRadius", "lbp2DSamples", "lbp2DMethod", "lbp3DLevels", "lbp3DIcosphereRadius", "lbp3DIcosphereSubdivision",
})

_AGG = {"firstorder": "", "shape": "", "glcm": "_3D_avg", "glrlm": "_3D_avg", "glszm": "_3D", "gldm": "_3D",
        "ngtdm": "_3D"}
_FAMILY = {"firstorder": ["stat", "ih"], "shape": ["morph"], "glcm": ["glcm"], "glrlm": ["glrlm"],
           "glszm": ["glszm"], "gldm": ["ngldm"], "ngtdm": ["ngtdm"]}

#: pyradiomics feature -> IBSI tag (without aggregation); "=..." marks features computed here from pyradiomics'
#: own definition, None features left out
PYRADIOMICS_TAGS: dict[str, dict[str, str | None]] = {
    "firstorder": {
        "10Percentile": "stat_p10", "90Percentile": "stat_p90", "Energy": "=energy", "Entropy": "ih_entropy",
        "InterquartileRange": "stat_iqr", "Kurtosis": "=kurtosis", "Maximum": "stat_max", "Mean": "stat_mean",
        "MeanAbsoluteDeviation": "stat_mad", "Median": "stat_median", "Minimum": "stat_min", "Range": "stat_range",
        "RobustMeanAbsoluteDeviation": "stat_rmad", "RootMeanSquared": "=rms", "Skewness": "stat_skew",
        "TotalEnergy": "=total_energy", "Uniformity": "ih_uniformity", "Variance": "stat_var",
        "StandardDeviation": "=std",
    },
    "shape": {
        "Elongation": "morph_pca_elongation", "Flatness": "morph_pca_flatness",
        "LeastAxisLength": "morph_pca_least_axis", "MajorAxisLength": "morph_pca_maj_axis",
        "MinorAxisLength": "morph_pca_min_axis", "Maximum3DDiameter": "morph_diam", "MeshVolume": "morph_volume",
        "Sphericity": "morph_sphericity", "SurfaceArea": "morph_area_mesh", "SurfaceVolumeRatio": "morph_av",
        "VoxelVolume": "=voxel_volume", "Compactness1": "=compactness1", "Compactness2": "morph_comp_2",
        "SphericalDisproportion": "morph_sph_dispr",
        "Maximum2DDiameterSlice": "=diameter_slice", "Maximum2DDiameterColumn": "=diameter_column",
        "Maximum2DDiameterRow": "=diameter_row",
    },
    "glcm": {
        "Autocorrelation": "cm_auto_corr", "JointAverage": "cm_joint_avg", "ClusterProminence": "cm_clust_prom",
        "ClusterShade": "cm_clust_shade", "ClusterTendency": "cm_clust_tend", "Contrast": "cm_contrast",
        "Correlation": "cm_corr", "DifferenceAverage": "cm_diff_avg", "DifferenceEntropy": "cm_diff_entr",
        "DifferenceVariance": "cm_diff_var", "JointEnergy": "cm_energy", "JointEntropy": "cm_joint_entr",
        "Imc1": "cm_info_corr1", "Imc2": "cm_info_corr2", "Idm": "cm_inv_diff_mom", "Idmn": "cm_inv_diff_mom_norm",
        "Id": "cm_inv_diff", "Idn": "cm_inv_diff_norm", "InverseVariance": "cm_inv_var",
        "MaximumProbability": "cm_joint_max", "SumAverage": "cm_sum_avg", "SumEntropy": "cm_sum_entr",
        "SumSquares": "cm_joint_var", "MCC": "=mcc",
    },
    "glrlm": {
        "ShortRunEmphasis": "rlm_sre", "LongRunEmphasis": "rlm_lre", "GrayLevelNonUniformity": "rlm_glnu",
        "GrayLevelNonUniformityNormalized": "rlm_glnu_norm", "RunLengthNonUniformity": "rlm_rlnu",
        "RunLengthNonUniformityNormalized": "rlm_rlnu_norm", "RunPercentage": "rlm_r_perc",
        "GrayLevelVariance": "rlm_gl_var", "RunVariance": "rlm_rl_var", "RunEntropy": "rlm_rl_entr",
        "LowGrayLevelRunEmphasis": "rlm_lgre", "HighGrayLevelRunEmphasis": "rlm_hgre",
        "ShortRunLowGrayLevelEmphasis": "rlm_srlge", "ShortRunHighGrayLevelEmphasis": "rlm_srhge",
        "LongRunLowGrayLevelEmphasis": "rlm_lrlge", "LongRunHighGrayLevelEmphasis": "rlm_lrhge",
    },
    "glszm": {
        "SmallAreaEmphasis": "szm_sze", "LargeAreaEmphasis": "szm_lze", "GrayLevelNonUniformity": "szm_glnu",
        "GrayLevelNonUniformityNormalized": "szm_glnu_norm", "SizeZoneNonUniformity": "szm_zsnu",
        "SizeZoneNonUniformityNormalized": "szm_zsnu_norm", "ZonePercentage": "szm_z_perc",
        "GrayLevelVariance": "szm_gl_var", "ZoneVariance": "szm_zs_var", "ZoneEntropy": "szm_zs_entr",
        "LowGrayLevelZoneEmphasis": "szm_lgze", "HighGrayLevelZoneEmphasis": "szm_hgze",
        "SmallAreaLowGrayLevelEmphasis": "szm_szlge", "SmallAreaHighGrayLevelEmphasis": "szm_szhge",
        "LargeAreaLowGrayLevelEmphasis": "szm_lzlge", "LargeAreaHighGrayLevelEmphasis": "szm_lzhge",
    },
    "gldm": {
        "SmallDependenceEmphasis": "ngl_lde", "LargeDependenceEmphasis": "ngl_hde",
        "GrayLevelNonUniformity": "ngl_glnu",
        "DependenceNonUniformity": "ngl_dcnu", "DependenceNonUniformityNormalized": "ngl_dcnu_norm",
        "GrayLevelVariance": "ngl_gl_var", "DependenceVariance": "ngl_dc_var", "DependenceEntropy": "ngl_dc_entr",
        "LowGrayLevelEmphasis": "ngl_lgce", "HighGrayLevelEmphasis": "ngl_hgce",
        "SmallDependenceLowGrayLevelEmphasis": "ngl_ldlge", "SmallDependenceHighGrayLevelEmphasis": "ngl_ldhge",
        "LargeDependenceLowGrayLevelEmphasis": "ngl_hdlge", "LargeDependenceHighGrayLevelEmphasis": "ngl_hdhge",
    },
    "ngtdm": {
        "Coarseness": "ngt_coarseness", "Contrast": "ngt_contrast", "Busyness": "ngt_busyness",
        "Complexity": "ngt_complexity", "Strength": "ngt_strength",
    },
}

#: features pyradiomics 3.0.1 computes only when named (deprecated there); the rest of a class is on by default
NOT_DEFAULT: dict[str, frozenset[str]] = {
    "firstorder": frozenset({"StandardDeviation"}),
    "shape": frozenset({"Compactness1", "Compactness2", "SphericalDisproportion"}),
}

#: pyradiomics' value where the feature is undefined (a flat region: one grey level, or no neighbour differences)
FLAT_VALUES: dict[tuple[str, str], float] = {
    ("glcm", "Correlation"): 1.0, ("glcm", "Imc1"): 0.0, ("glcm", "Imc2"): 0.0,
    ("firstorder", "Skewness"): 0.0, ("firstorder", "Kurtosis"): 0.0,
    ("ngtdm", "Coarseness"): 1e6, ("ngtdm", "Contrast"): 0.0, ("ngtdm", "Busyness"): 0.0,
    ("ngtdm", "Complexity"): 0.0, ("ngtdm", "Strength"): 0.0,
}


@dataclass(frozen=True)
class PyradiomicsParams:
    """A pyradiomics parameter file, read: its settings (pyradiomics names, defaults filled in) and the features
    it enables per class (``None``: the class's default features)."""

    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    feature_classes: dict[str, list[str] | None] = field(default_factory=lambda: {c: None for c in PYRADIOMICS_TAGS})
    source: str = "<defaults>"

    def with_label(self, label: int) -> PyradiomicsParams:
        """The same parameters for another mask label."""
        return replace(self, settings={**self.settings, "label": int(label)})

    def texture_settings(self) -> dict[str, Any]:
        """Keyword settings for :func:`multiscale.analysis.texture.features` that give pyradiomics' binning."""
        s = self.settings
        out: dict[str, Any] = {"binning": "pyradiomics", "glcm_symmetric": bool(s["symmetricalGLCM"]),
                               "ngldm_alpha": int(s["gldm_a"]), "label": int(s["label"])}
        if s.get("binCount") is not None:
            out.update(discretisation="fbn", n_bins=int(s["binCount"]))
        else:
            out.update(discretisation="fbs", bin_width=float(s["binWidth"]))
        d = list(s["distances"]) if isinstance(s["distances"], (list, tuple)) else [s["distances"]]
        if len(d) != 1:
            raise TextureSettingsError(f"{self.source}: setting.distances={d!r}: give one distance, e.g. [1]")
        out.update(glcm_distance=int(d[0]), ngldm_distance=int(d[0]), ngtdm_distance=int(d[0]))
        rng = s.get("resegmentRange")
        if rng is not None:
            mode = str(s.get("resegmentMode") or "absolute").lower()
            rng = list(rng)
            if mode == "sigma":
                if len(rng) != 2 or float(rng[0]) != -float(rng[1]):
                    raise TextureSettingsError(f"{self.source}: resegmentMode sigma needs resegmentRange [-k, k]")
                out["outlier_sigma"] = float(rng[1])
            else:
                out["resegment_range"] = (float(rng[0]), float(rng[1]) if len(rng) > 1 else None)
        return out


def _load_yaml(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "<dict>"
    import yaml

    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise TextureSettingsError(f"{path}: cannot read the pyradiomics parameter file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise TextureSettingsError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise TextureSettingsError(f"{path}: a pyradiomics parameter file is a mapping (setting:, featureClass:)")
    return data, path


def read_params(source: str | os.PathLike | Mapping[str, Any]) -> PyradiomicsParams:
    """Read a pyradiomics parameter file (YAML path or the same as a dict).

    Parameters
    ----------
    source : path-like or mapping
        ``setting:`` (binWidth/binCount, label, resampledPixelSpacing, interpolator, padDistance, normalize,
        normalizeScale, removeOutliers, resegmentRange, resegmentMode, voxelArrayShift, symmetricalGLCM,
        gldm_a, distances, ...), ``featureClass:`` (class -> list of features, or empty for the class's
        defaults), ``imageType:`` (only ``Original`` is reproduced).

    Returns
    -------
    PyradiomicsParams

    Raises
    ------
    TextureSettingsError
        An unknown section, class, feature or setting, or one whose effect is not reproduced, named with the file.

    Examples
    --------
    >>> p = read_params({"setting": {"binWidth": 10, "label": 2}, "featureClass": {"glcm": ["Idmn"]}})
    >>> p.settings["binWidth"], p.settings["label"], p.feature_classes
    (10, 2, {'glcm': ['Idmn']})
    """
    data, where = _load_yaml(source)
    unknown = set(data) - {"setting", "featureClass", "imageType", "voxelSetting"}
    if unknown:
        raise TextureSettingsError(f"{where}: unknown section(s) {sorted(unknown)}; pyradiomics parameter files have "
                                   "setting:, featureClass:, imageType:")
    settings = dict(DEFAULT_SETTINGS)
    for key, value in (data.get("setting") or {}).items():
        if key in IGNORED_SETTINGS:
            continue
        if key not in DEFAULT_SETTINGS:
            raise TextureSettingsError(f"{where}: setting.{key}: unknown pyradiomics setting; known: "
                                       f"{', '.join(sorted(set(DEFAULT_SETTINGS) | IGNORED_SETTINGS))}")
        settings[key] = value
    if "binCount" in (data.get("setting") or {}) and "binWidth" not in (data.get("setting") or {}):
        settings["binWidth"] = None
    for key, bad in (("force2D", True), ("resegmentShape", True)):
        if settings.get(key) == bad:
            raise TextureSettingsError(f"{where}: setting.{key}: {bad} is not reproduced; remove it")
    if settings.get("weightingNorm") is not None:
        raise TextureSettingsError(f"{where}: setting.weightingNorm: only the default (None: mean over directions) "
                                   "is reproduced")
    if str(settings.get("resegmentMode") or "absolute").lower() not in ("absolute", "sigma"):
        raise TextureSettingsError(f"{where}: setting.resegmentMode: {settings['resegmentMode']!r} is not reproduced; "
                                   "use absolute or sigma")
    image_types = data.get("imageType") or {"Original": {}}
    other = [t for t in image_types if t != "Original"]
    if other:
        raise TextureSettingsError(f"{where}: imageType {', '.join(other)}: only Original is reproduced (filtered "
                                   "images are not)")
    for key, value in ((image_types.get("Original") or {}).items()):
        if key not in DEFAULT_SETTINGS and key not in IGNORED_SETTINGS:
            raise TextureSettingsError(f"{where}: imageType.Original.{key}: unknown pyradiomics setting")
        settings[key] = value
    classes: dict[str, list[str] | None]
    if data.get("featureClass") is None:
        classes = {c: None for c in PYRADIOMICS_TAGS}
    else:
        classes = {}
        for cls, names in data["featureClass"].items():
            if cls not in PYRADIOMICS_TAGS:
                hint = " (shape2D: 2-D shape is not reproduced)" if cls == "shape2D" else ""
                raise TextureSettingsError(f"{where}: featureClass.{cls}: unknown class{hint}; choose from "
                                           f"{', '.join(PYRADIOMICS_TAGS)}")
            if names:
                bad = [n for n in names if n not in PYRADIOMICS_TAGS[cls]]
                if bad:
                    raise TextureSettingsError(f"{where}: featureClass.{cls}: unknown feature(s) {bad}; "
                                               f"choose from {', '.join(PYRADIOMICS_TAGS[cls])}")
            classes[cls] = list(names) if names else None
    return PyradiomicsParams(settings=settings, feature_classes=classes, source=where)


def _interpolator(name: Any) -> int:
    import SimpleITK as sitk

    if isinstance(name, int):
        return name
    value = getattr(sitk, str(name), None)
    if not isinstance(value, int):
        raise TextureSettingsError(f"setting.interpolator={name!r}: not a SimpleITK interpolator (e.g. sitkBSpline, "
                                   "sitkLinear)")
    return value


def _resample(image: Any, mask: Any, s: Mapping[str, Any]) -> tuple[Any, Any]:
    """pyradiomics 3.0.1 ``imageoperations.resampleImage`` (SimpleITK images in, SimpleITK images out)."""
    import SimpleITK as sitk

    label = int(s["label"])
    mask_spacing = np.array(mask.GetSpacing())
    nd = mask.GetDimension()
    target = np.array([float(v) for v in s["resampledPixelSpacing"]])
    if target.size != nd:
        raise TextureSettingsError(f"setting.resampledPixelSpacing={list(target)}: give {nd} values (x, y, z)")
    target = np.where(target == 0, mask_spacing, target)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask, sitk.sitkUInt32))
    if label not in stats.GetLabels():
        raise TextureSettingsError(f"label {label} is not in the mask (labels {list(stats.GetLabels())})")
    bb = np.array(stats.GetBoundingBox(label))
    target = np.where(bb[nd:] != 1, target, mask_spacing)
    if np.allclose(np.array(image.GetSpacing()), target):
        rif = sitk.ResampleImageFilter()
        rif.SetReferenceImage(image)
        rif.SetInterpolator(sitk.sitkNearestNeighbor)
        return image, rif.Execute(mask)
    ratio = mask_spacing / target
    pad = int(s["padDistance"])
    lo = np.floor((bb[:nd] - 0.5) * ratio - pad)
    hi = np.ceil((bb[:nd] + bb[nd:] - 0.5) * ratio + pad)
    top = np.ceil(np.array(mask.GetSize()) * ratio) - 1
    lo = np.where(lo < 0, 0, lo)
    hi = np.where(hi > top, top, hi)
    size = np.array(hi - lo + 1, dtype=int).tolist()
    origin_index = 0.5 * (target - mask_spacing) / mask_spacing + lo / ratio
    origin = mask.TransformContinuousIndexToPhysicalPoint(origin_index.tolist())
    rif = sitk.ResampleImageFilter()
    rif.SetOutputSpacing(target.tolist())
    rif.SetOutputDirection(mask.GetDirection())
    rif.SetSize(size)
    rif.SetOutputOrigin(origin)
    rif.SetOutputPixelType(image.GetPixelID())
    rif.SetInterpolator(_interpolator(s["interpolator"]))
    out_image = rif.Execute(image)
    rif.SetOutputPixelType(mask.GetPixelID())
    rif.SetInterpolator(sitk.sitkNearestNeighbor)
    return out_image, rif.Execute(mask)


def _normalise(image: Any, s: Mapping[str, Any]) -> Any:
    """pyradiomics 3.0.1 ``imageoperations.normalizeImage``."""
    import SimpleITK as sitk

    out = sitk.Normalize(image)
    if s.get("removeOutliers") is not None:
        k = float(s["removeOutliers"])
        arr = sitk.GetArrayFromImage(out)
        arr[arr > k] = k
        arr[arr < -k] = -k
        clipped = sitk.GetImageFromArray(arr)
        clipped.CopyInformation(out)
        out = clipped
    return out * float(s["normalizeScale"])


def _prepared(image: Any, mask: Any, params: PyradiomicsParams, spacing: Any = None) -> tuple[xr.DataArray, np.ndarray]:
    """Image and mask after pyradiomics' processing (normalise, resample), on one grid."""
    image = msi.as_image(image, spacing=spacing) if not isinstance(image, xr.DataArray) else image
    s = params.settings
    m = mask.values if isinstance(mask, xr.DataArray) else np.asarray(mask)
    if m.shape != tuple(image.shape):
        raise TextureSettingsError(f"the mask's shape {m.shape} differs from the image's {tuple(image.shape)}: "
                                   "give a mask on the image's grid")
    if not (s["normalize"] or s["resampledPixelSpacing"]):
        return image, m
    import SimpleITK as sitk

    img_itk = msi.to_sitk(image)
    mask_itk = sitk.GetImageFromArray(m.astype(np.uint32 if m.max() > 255 else np.uint8))
    mask_itk.CopyInformation(img_itk)
    if s["normalize"]:
        img_itk = _normalise(img_itk, s)
    if s["resampledPixelSpacing"]:
        img_itk, mask_itk = _resample(img_itk, mask_itk, s)
    out = msi.from_sitk(img_itk)
    out.attrs.update({k: v for k, v in image.attrs.items() if k not in out.attrs})
    return out, sitk.GetArrayFromImage(mask_itk)


def _wanted(params: PyradiomicsParams) -> list[tuple[str, str]]:
    out = []
    for cls, names in params.feature_classes.items():
        if names is None:
            names = [n for n in PYRADIOMICS_TAGS[cls] if n not in NOT_DEFAULT.get(cls, frozenset())]
        out += [(cls, n) for n in names]
    return out


def pyradiomics_features(image: Any, mask: Any, params: PyradiomicsParams | str | os.PathLike | Mapping | None = None,
                         *, spacing: Any = None) -> pd.DataFrame:
    """Features of ``image`` in ``mask`` as pyradiomics 3.0.1 computes them from the parameter file ``params``.

    Parameters
    ----------
    image : xarray.DataArray or numpy.ndarray
        A 3-D image (:func:`multiscale.image.spatial_image`), or an array with ``spacing=`` (mm, z y x).
    mask : xarray.DataArray or numpy.ndarray
        Label image on the image's grid; the region is ``setting.label`` (pyradiomics' default 1).
    params : PyradiomicsParams, path, mapping or None
        A parameter file (:func:`read_params`); None: pyradiomics' defaults (binWidth 25, label 1, all classes).
    spacing : float or sequence, optional
        Voxel spacing in mm when ``image`` is a plain array.

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``pyradiomics`` (pyradiomics' output key, ``original_glcm_Idmn``),
        ``feature_class``, ``feature``, ``tag`` (the IBSI tag computed, or ``""`` for pyradiomics-only
        definitions), ``value``. ``df.attrs``: the settings, ``n_levels`` and the bin anchor used.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(64.0).reshape(4, 4, 4)
    >>> df = pyradiomics_features(img, np.ones((4, 4, 4), int), {"setting": {"binWidth": 16},
    ...                           "featureClass": {"firstorder": ["Mean", "Kurtosis", "Uniformity"]}}, spacing=1.0)
    >>> df.set_index("feature")["value"].round(4).to_dict()
    {'Mean': 31.5, 'Kurtosis': 1.7994, 'Uniformity': 0.25}
    """
    from . import features

    if params is None:
        params = PyradiomicsParams()
    elif not isinstance(params, PyradiomicsParams):
        params = read_params(params)
    img, m = _prepared(image, mask, params, spacing)
    s = params.settings
    label = int(s["label"])
    if not (m == label).any():
        raise TextureSettingsError(f"label {label} is not in the mask (labels {sorted(np.unique(m).tolist())[:10]}); "
                                   "set setting.label (or --label)")
    if int((m == label).sum()) == 1:
        raise RoiError(f"label {label} has one voxel: pyradiomics refuses a one-voxel region, and so does this")
    wanted = _wanted(params)
    fams = sorted({f for cls, _ in wanted for f in _FAMILY[cls]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextureWarning)  # flat regions: pyradiomics' values replace the NaN below
        df = features(img, m, families=fams, aggregation=sorted({a.lstrip("_") for a in _AGG.values() if a}),
                      **params.texture_settings())
    values = dict(zip(df["tag"], df["value"]))
    shift = float(s["voxelArrayShift"] or 0)
    roi_values = _roi_values(img, m, label, params)
    voxel_mm3 = float(np.prod(msi.spacing(img)))
    names = {name for _, name in wanted}
    if "MCC" in names:
        values["=mcc"] = _mcc(img, m, label, params)
    if names & {"Maximum2DDiameterSlice", "Maximum2DDiameterColumn", "Maximum2DDiameterRow"}:
        values.update(_diameters_2d(m == label, msi.spacing(img)))
    rows, missing = [], []
    for cls, name in wanted:
        tag = PYRADIOMICS_TAGS[cls][name]
        if tag is None:
            missing.append(f"{cls} {name}")
            continue
        if tag.startswith("="):
            value = _own(tag[1:], values, roi_values, shift, voxel_mm3, int((m == label).sum()))
            tag_out = ""
        else:
            tag_out = tag + _AGG[cls]
            value = float(values.get(tag_out, np.nan))
        if not math.isfinite(value) and (cls, name) in FLAT_VALUES:
            value = FLAT_VALUES[(cls, name)]
        rows.append({"pyradiomics": f"original_{cls}_{name}", "feature_class": cls, "feature": name, "tag": tag_out,
                     "value": value})
    if missing:
        warnings.warn(f"pyradiomics features not reproduced, left out: {', '.join(missing)}", TextureWarning,
                      stacklevel=2)
    out = pd.DataFrame(rows, columns=["pyradiomics", "feature_class", "feature", "tag", "value"])
    out.attrs.update(settings=dict(s), n_levels=df.attrs.get("n_levels"), bin_anchor=df.attrs.get("min_anchor"),
                     source=params.source)
    return out


def _roi_values(img: xr.DataArray, m: np.ndarray, label: int, params: PyradiomicsParams) -> np.ndarray:
    """The intensities pyradiomics' first-order features see: the label's voxels after re-segmentation."""
    return np.asarray(img.values, dtype=float)[_intensity_mask(img, m, label, params)]


def _intensity_mask(img: xr.DataArray, m: np.ndarray, label: int, params: PyradiomicsParams) -> np.ndarray:
    """The label's voxels after re-segmentation (range, then sigma outliers), as pyradiomics keeps them."""
    v = np.asarray(img.values, dtype=float)
    keep = m == label
    ts = params.texture_settings()
    rng = ts.get("resegment_range")
    if rng is not None:
        lo, hi = rng
        keep &= (v >= lo) & (v <= (np.inf if hi is None else hi))
    if ts.get("outlier_sigma") is not None:
        mu, sd = v[keep].mean(), v[keep].std()
        k = ts["outlier_sigma"]
        keep &= (v >= mu - k * sd) & (v <= mu + k * sd)
    return keep


def _mcc(img: xr.DataArray, m: np.ndarray, label: int, params: PyradiomicsParams) -> float:
    """pyradiomics' GLCM Maximal Correlation Coefficient: per direction ``sqrt`` of the second largest eigenvalue of
    ``Q(i, j) = sum_k p(i, k) p(j, k) / (p_x(i) p_y(k) + eps)`` on the matrix without empty grey levels, averaged
    over the directions with pairs; 1 for a flat region (``glcm.getMCCFeatureValue`` of pyradiomics 3.0.1)."""
    from ._discretise import pyradiomics_bins
    from .glcm import glcm_matrices

    keep = _intensity_mask(img, m, label, params)
    ts = params.texture_settings()
    v = np.asarray(img.values, dtype=float)
    qv, _ = pyradiomics_bins(v[keep], ts.get("n_bins") if ts["discretisation"] == "fbn" else None,
                             ts.get("bin_width"))
    q = np.zeros(v.shape, dtype=np.int64)
    q[keep] = qv
    ng = int(qv.max()) if qv.size else 1
    counts = glcm_matrices(q, ng, ts["glcm_distance"], ts["glcm_symmetric"], planar=q.ndim == 2)
    present = np.unique(qv) - 1
    counts = counts[:, present][:, :, present]
    if counts.shape[1] < 2:
        return 1.0
    sums = counts.sum(axis=(1, 2))
    p = counts[sums > 0] / sums[sums > 0, None, None]
    px, py = p.sum(axis=2), p.sum(axis=1)
    eps = np.spacing(1)
    qm = np.einsum("dik,djk->dij", p / (px[:, :, None] * py[:, None, :] + eps), p)
    ev = np.sort(np.linalg.eigvals(qm), axis=-1)
    return float(np.nanmean(np.sqrt(ev[:, -2])).real)


def _diameters_2d(mask: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """pyradiomics' Maximum2DDiameterSlice/Column/Row: the largest distance between surface-mesh vertices that share
    a z (slice), a y (column: the row-slice plane) or an x (row) position (marching-cubes mesh vertices)."""
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    from .morphology import mesh_of_mask

    verts = mesh_of_mask(mask, tuple(float(s) for s in spacing))[0]  # z, y, x in mm
    out = {}
    for key, axis in (("=diameter_slice", 0), ("=diameter_column", 1), ("=diameter_row", 2)):
        best = 0.0
        coords = np.round(verts[:, axis], 6)
        for c in np.unique(coords):
            pts = np.delete(verts[coords == c], axis, axis=1)
            if len(pts) > 64:
                try:
                    pts = pts[ConvexHull(pts).vertices]
                except Exception:  # noqa: BLE001 - degenerate (collinear) plane: all points
                    pass
            if len(pts) > 1:
                best = max(best, float(pdist(pts).max()))
        out[key] = best
    return out


def _own(what: str, values: Mapping[str, float], v: np.ndarray, shift: float, voxel_mm3: float, n_mask: int) -> float:
    """Features whose pyradiomics definition differs from IBSI's, computed from the ROI's intensities."""
    if what in ("mcc", "diameter_slice", "diameter_column", "diameter_row"):
        return float(values[f"={what}"])
    if what == "energy":
        return float(np.sum((v + shift) ** 2))
    if what == "total_energy":
        return float(np.sum((v + shift) ** 2)) * voxel_mm3
    if what == "rms":
        return float(np.sqrt(np.mean((v + shift) ** 2))) if v.size else 0.0
    if what == "kurtosis":  # pyradiomics: m4 / m2^2 (not excess), 0 for a flat region
        k, var = values.get("stat_kurt", np.nan), values.get("stat_var", np.nan)
        return 0.0 if var == 0 else float(k) + 3.0 if math.isfinite(k) else np.nan
    if what == "std":
        return float(np.sqrt(values.get("stat_var", np.nan)))
    if what == "voxel_volume":
        return n_mask * voxel_mm3
    if what == "compactness1":
        vol, area = values.get("morph_volume", np.nan), values.get("morph_area_mesh", np.nan)
        return float(vol / (math.sqrt(math.pi) * area ** 1.5))
    raise KeyError(what)
