"""The unit of every IBSI feature tag, given the units of the image's intensities.

IBSI features fall in a few kinds: intensity statistics and local-intensity peaks carry the image's
units (the variance and energy its square), morphology carries lengths, areas and volumes in mm,
intensity-volume histogram intensities carry the image's units and its volume fractions are
dimensionless, and every feature computed on discretised grey levels (intensity histogram, GLCM,
GLRLM, GLSZM, GLDZM, NGTDM, NGLDM) is dimensionless (``1``).

Examples
--------
>>> feature_unit("stat_var", "SUVbw"), feature_unit("morph_volume", "SUVbw"), feature_unit("cm_contrast_3D_comb", "HU")
('(SUVbw)^2', 'mm3', '1')
"""

from __future__ import annotations

__all__ = ["feature_unit"]

_INTENSITY = {"mean", "median", "min", "max", "p10", "p90", "iqr", "range", "mad", "rmad", "medad", "rms",
              "peak_loc", "peak_glob"}
_MORPH = {"volume": "mm3", "vol_approx": "mm3", "area_mesh": "mm2", "av": "1/mm", "com": "mm", "diam": "mm",
          "pca_maj_axis": "mm", "pca_min_axis": "mm", "pca_least_axis": "mm"}
_GREY_LEVEL_FAMILIES = ("ih", "cm", "rlm", "szm", "dzm", "ngt", "ngl")


def feature_unit(tag: str, units: str) -> str:
    """The unit of the IBSI feature ``tag`` (e.g. ``stat_mean``, ``cm_joint_avg_3D_comb``) for intensities in ``units``.

    Raises
    ------
    KeyError
        A tag of an unknown family (so a new family cannot silently get no unit).
    """
    family, _, name = tag.partition("_")
    u = units or "1"
    if family in ("stat", "loc"):
        if name in _INTENSITY:
            return u
        if name in ("var", "energy"):
            return f"({units})^2" if units else "1"
        return "1"
    if family == "morph":
        if name in _MORPH:
            return _MORPH[name]
        if name == "integ_int":
            return f"{units}*mm3" if units else "mm3"
        return "1"
    if family == "ivh":
        return u if name.startswith(("i", "diff_i")) else "1"
    if family in _GREY_LEVEL_FAMILIES:
        return "1"
    raise KeyError(f"texture: no unit defined for feature {tag!r}")
