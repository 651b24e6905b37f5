"""Signal to concentration: SPGR (with T10 from variable-flip-angle T1 mapping) and CT enhancement.

* :func:`vfa_t1`: DESPOT1 (Deoni et al., Magn Reson Med 49:515 (2003)): for the spoiled gradient echo
  ``S = M0 sin a (1 - E1) / (1 - cos a E1)`` with ``E1 = exp(-TR / T1)``, the points
  ``(S / tan a, S / sin a)`` lie on a line of slope ``E1``; a least-squares line per voxel, vectorised.
* :func:`spgr_concentration`: the same equation solved for ``R1(t)`` frame by frame (``M0`` from the
  pre-contrast baseline and T10), then ``C = (R1 - R10) / r1`` (mM, with the relaxivity ``r1`` in /mM/s).
* :func:`ct_concentration`: ``C = (HU - HU_baseline) / k`` with ``k`` the scanner's enhancement per unit
  concentration (e.g. HU per mg I/mL at the tube voltage used).
* :func:`ct_enhancement_per_mg_ml`: ``k`` for a monoenergetic beam (or a virtual monoenergetic image) from the
  mass attenuation coefficients (NIST XCOM via xraydb): adding ``c`` mg/mL of an agent adds
  ``c 1e-3 (mu/rho)_agent`` to ``mu``, so ``dHU = 1000 c 1e-3 (mu/rho)_agent / (mu/rho)_water``. Iodine gives
  82.4 HU per mg/mL at 40 keV and 26.0 at 70 keV, the effective energy of a 120 kVp beam, matching the 25-27 HU
  per mg/mL measured on phantoms at 120 kVp. A polychromatic scanner's own value depends on its spectrum,
  filtration and the patient's size: calibrate it on a phantom and give it as ``enhancement_per_unit``.

Examples
--------
>>> import numpy as np
>>> fa = np.deg2rad([2, 5, 10, 15]); tr = 0.005
>>> s = spgr_signal(1000.0, 1.2, fa, tr)
>>> round(float(vfa_t1(s, np.rad2deg(fa), tr)["t1"]), 6)
1.2
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multiscale.errors import AnalysisError

__all__ = ["spgr_signal", "vfa_t1", "spgr_concentration", "ct_concentration", "ct_enhancement_per_mg_ml", "baseline"]


def spgr_signal(m0: Any, t1: Any, flip_rad: Any, tr: float) -> np.ndarray:
    """Spoiled gradient-echo signal for ``T1`` (s), flip angles (rad) and ``TR`` (s)."""
    e1 = np.exp(-tr / np.asarray(t1, float))
    a = np.asarray(flip_rad, float)
    return np.asarray(m0, float) * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)


def vfa_t1(signals: Any, flip_angles_deg: Any, tr: float) -> dict[str, np.ndarray]:
    """T1 (s) and M0 per voxel from SPGR signals at several flip angles (last axis), DESPOT1 linear fit.

    Returns ``{"t1", "m0"}``; voxels whose fitted slope is outside (0, 1) (no recovery, noise) get NaN.
    """
    s = np.asarray(signals, float)
    a = np.deg2rad(np.asarray(flip_angles_deg, float))
    if s.shape[-1] != a.size or a.size < 2:
        raise AnalysisError(
            f"vfa_t1: {s.shape[-1]} signals per voxel for {a.size} flip angles; give one per angle (>= 2)"
        )
    if tr <= 0:
        raise AnalysisError(f"vfa_t1: TR must be > 0 s, got {tr}")
    y = s / np.sin(a)
    x = s / np.tan(a)
    xm, ym = x.mean(-1, keepdims=True), y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = ((x - xm) * (y - ym)).sum(-1) / ((x - xm) ** 2).sum(-1)
        icpt = ym[..., 0] - slope * xm[..., 0]
        ok = (slope > 0) & (slope < 1)
        t1 = np.where(ok, -tr / np.log(np.where(ok, slope, 0.5)), np.nan)
        m0 = np.where(ok, icpt / (1 - slope), np.nan)
    return {"t1": t1, "m0": m0}


def baseline(series: np.ndarray, n_baseline: int) -> np.ndarray:
    """Mean of the first ``n_baseline`` frames (last axis)."""
    if not 1 <= n_baseline <= series.shape[-1]:
        raise AnalysisError(f"n_baseline must be in 1..{series.shape[-1]} frames, got {n_baseline}")
    return series[..., :n_baseline].mean(-1)


def spgr_concentration(
    signal: Any, t10: Any, *, flip_angle_deg: float, tr: float, relaxivity: float, n_baseline: int
) -> np.ndarray:
    """Concentration (mM) from an SPGR series (time on the last axis), T10 (s) per voxel, r1 in /mM/s.

    Frames whose signal exceeds the fully relaxed limit (``E1 <= 0``) give NaN.

    Examples
    --------
    >>> import numpy as np
    >>> tr, fa, r1, t10 = 0.005, 25.0, 4.5, 1.4
    >>> c_true = np.array([0.0, 0.0, 0.5, 1.0, 0.3])
    >>> r1t = 1 / t10 + r1 * c_true
    >>> s = spgr_signal(800.0, 1 / r1t, np.deg2rad(fa), tr)
    >>> np.round(spgr_concentration(s, t10, flip_angle_deg=fa, tr=tr, relaxivity=r1, n_baseline=2), 6).tolist()
    [0.0, 0.0, 0.5, 1.0, 0.3]
    """
    if relaxivity <= 0 or tr <= 0:
        raise AnalysisError(f"relaxivity ({relaxivity} /mM/s) and TR ({tr} s) must be > 0")
    s = np.asarray(signal, float)
    t10 = np.asarray(t10, float)
    a = np.deg2rad(flip_angle_deg)
    e10 = np.exp(-tr / t10)
    s0 = baseline(s, n_baseline)
    m0 = s0 * (1 - np.cos(a) * e10) / (np.sin(a) * (1 - e10))
    m = (m0 * np.sin(a))[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        e1 = (m - s) / (m - s * np.cos(a))
        r1 = np.where(e1 > 0, -np.log(np.where(e1 > 0, e1, 1.0)) / tr, np.nan)
    return (r1 - (1 / t10)[..., None]) / relaxivity


def ct_concentration(hu: Any, *, enhancement_per_unit: float, n_baseline: int) -> np.ndarray:
    """Concentration from CT numbers: ``(HU - baseline) / enhancement_per_unit`` (time on the last axis).

    Examples
    --------
    >>> ct_concentration([40.0, 40.0, 90.0], enhancement_per_unit=25.0, n_baseline=2).tolist()
    [0.0, 0.0, 2.0]
    """
    if enhancement_per_unit <= 0:
        raise AnalysisError("enhancement_per_unit (HU per unit concentration) must be > 0")
    h = np.asarray(hu, float)
    return (h - baseline(h, n_baseline)[..., None]) / enhancement_per_unit


def ct_enhancement_per_mg_ml(effective_kev: float, agent: str = "iodine") -> float:
    """CT enhancement (HU) per mg/mL of ``agent`` at a monoenergetic ``effective_kev`` (NIST XCOM via xraydb).

    Examples
    --------
    >>> round(ct_enhancement_per_mg_ml(40.0), 1), round(ct_enhancement_per_mg_ml(70.0), 1)   # iodine
    (82.4, 26.0)
    """
    from ..spectral_ct import mass_attenuation

    if not 10.0 <= float(effective_kev) <= 200.0:
        raise AnalysisError(f"ct_effective_kev {effective_kev} is not a CT effective energy (10-200 keV)")
    agent_mu = float(mass_attenuation(agent, [float(effective_kev)])[0])
    water_mu = float(mass_attenuation("water", [float(effective_kev)])[0])
    return 1000.0 * 1e-3 * agent_mu / water_mu
