"""Arterial input functions: population models (Parker, Georgiou, a bi-exponential mouse form) and checks.

All functions take times in **seconds** from the bolus arrival (``delay`` shifts them) and return
concentrations in **mM**. The published models describe *whole blood*; pass ``hematocrit=`` to get the
plasma concentration ``Cb / (1 - Hct)`` that the tracer-kinetic models of :mod:`.models` expect.

* ``"parker"``: Parker et al., Magn Reson Med 56:993-1000 (2006), doi:10.1002/mrm.21066, eq. 1 and
  Table 1: two Gaussians plus an exponential modulated by a sigmoid (A1 = 0.809 mmol min, A2 = 0.330 mmol
  min, T1 = 0.17046 min, T2 = 0.365 min, sigma1 = 0.0563 min, sigma2 = 0.132 min, alpha = 1.050 mM,
  beta = 0.1685 /min, s = 38.078 /min, tau = 0.483 min). Parameters as published in Table 1 and as typed
  in the OSIPI DCE-DSC-MRI_CodeCollection (``PopulationAIF.py``) and PMI (``ParkerAif.pro``).
* ``"georgiou"``: Georgiou et al., Magn Reson Med 81:1955-1963 (2019), doi:10.1002/mrm.27524, eq. 1
  (Horsfield's form: a sum of three exponentials times a train of gamma variates, one per circulation)
  with Table 3: A = (0.37, 0.33, 10.06) mM, m = (0.11, 1.17, 16.02) /min, alpha = 5.26, beta = 0.032 min,
  tau = 0.129 min (the values used by the OSIPI code collection's ``functionalform_GeorgiouAIF``).
* ``"mcgrath"`` (alias ``"preclinical"``): the preclinical (rodent) population AIF of McGrath et al., Magn Reson
  Med 61:1173-1184 (2009), doi:10.1002/mrm.21959, eq. 5 with Table 1 model B: a linear rise over t1 = 7 s to
  A1 + A2, then ``A1 exp(-k1 (t - t1)) + A2 exp(-k2 (t - t1))`` with A1 = 3.4 mM, A2 = 1.81 mM,
  k1 = 0.045 /s, k2 = 0.0015 /s (as typed in the OSIPI code collection's ``preclinicalAIF``). It was measured
  in rats; for mice it is the usual stand-in when no mouse AIF was measured.
* ``"mouse"``: the bi-exponential form used for rodent input functions (Tofts & Kermode's form with a
  linear wash-in of ``injection_s`` seconds): ``a1 exp(-m1 t) + a2 exp(-m2 t)``. Rodent AIFs depend on
  the agent, dose, strain and injection protocol, so **no default numbers are assumed**: give ``a1``,
  ``m1``, ``a2``, ``m2`` from your own measured AIF or from a published preclinical fit (e.g. Loveless et
  al., Magn Reson Med 67:226-236 (2012), for Gd-DTPA in mice).

Examples
--------
>>> import numpy as np
>>> t = np.array([0.0, 10.23, 60.0])
>>> np.round(population_aif("parker", t), 3).tolist()  # whole blood, mM
[0.08, 6.069, 0.887]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from multiscale.errors import AnalysisError

__all__ = ["population_aif", "parker_aif", "georgiou_aif", "mcgrath_aif", "mouse_aif", "AIF_MODELS", "check_times"]

PARKER_2006 = dict(
    a1=0.809, a2=0.330, t1=0.17046, t2=0.365, sigma1=0.0563, sigma2=0.132, alpha=1.050, beta=0.1685, s=38.078, tau=0.483
)
MCGRATH_2009_B = dict(a1=3.4, a2=1.81, k1=0.045, k2=0.0015, t1=7.0)
GEORGIOU_2019 = dict(a1=0.37, m1=0.11, a2=0.33, m2=1.17, a3=10.06, m3=16.02, alpha=5.26, beta=0.032, tau=0.129)


def check_times(times: Any, what: str = "times") -> np.ndarray:
    """Frame times (s) as a 1-D float array; refuses NaN and non-increasing times.

    Examples
    --------
    >>> check_times([0, 5, 10]).tolist()
    [0.0, 5.0, 10.0]
    >>> check_times([0, 5, 4])
    Traceback (most recent call last):
    ...
    multiscale.errors.AnalysisError: times must increase strictly: times[2] = 4 s follows 5 s; sort the frames by time
    """
    t = np.asarray(times, dtype=float).reshape(-1)
    if t.size == 0:
        raise AnalysisError(f"{what} is empty; give one time (s) per frame")
    if not np.all(np.isfinite(t)):
        raise AnalysisError(f"{what} contains NaN or infinity; every frame needs a time (s)")
    d = np.diff(t)
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0)) + 1
        raise AnalysisError(
            f"{what} must increase strictly: {what}[{i}] = {t[i]:g} s follows {t[i - 1]:g} s; sort the frames by time"
        )
    return t


def _shift(times: Any, delay: float) -> np.ndarray:
    return np.asarray(times, dtype=float) - float(delay)


def parker_aif(times: Any, *, delay: float = 0.0, hematocrit: float = 0.0, **params: float) -> np.ndarray:
    """Parker et al. (2006) population AIF (mM) at ``times`` (s); zero before ``delay``.

    Examples
    --------
    >>> float(np.round(parker_aif([0.17046 * 60]), 4)[0])   # at the first peak's centre
    6.0693
    """
    p = dict(PARKER_2006)
    p.update(params)
    t = _shift(times, delay) / 60.0
    g1 = p["a1"] / (p["sigma1"] * np.sqrt(2 * np.pi)) * np.exp(-((t - p["t1"]) ** 2) / (2 * p["sigma1"] ** 2))
    g2 = p["a2"] / (p["sigma2"] * np.sqrt(2 * np.pi)) * np.exp(-((t - p["t2"]) ** 2) / (2 * p["sigma2"] ** 2))
    with np.errstate(over="ignore"):
        sig = p["alpha"] * np.exp(-p["beta"] * t) / (1.0 + np.exp(-p["s"] * (t - p["tau"])))
    cb = np.where(t >= 0, g1 + g2 + sig, 0.0)
    return _plasma(cb, hematocrit)


def georgiou_aif(times: Any, *, delay: float = 0.0, hematocrit: float = 0.0, **params: float) -> np.ndarray:
    """Georgiou et al. (2019) population AIF (mM) at ``times`` (s); zero before ``delay``.

    ``Cb(t) = sum_i A_i exp(-m_i t) * sum_k gamma_k(t - k tau)`` where ``gamma_k`` is a gamma variate of
    shape ``(k + 1) alpha + k`` and scale ``beta`` (unit area), one per circulation started at ``k tau``.

    Examples
    --------
    >>> round(float(georgiou_aif([12.0])[0]), 3)
    5.08
    """
    from scipy.special import gammaln

    p = dict(GEORGIOU_2019)
    p.update(params)
    t = _shift(times, delay) / 60.0
    out = np.zeros(t.shape, dtype=float)
    pos = t > 0
    if not np.any(pos):
        return out
    tp = t[pos]
    trains = np.zeros_like(tp)
    for k in range(int(np.floor(tp.max() / p["tau"])) + 1):
        s = tp - k * p["tau"]
        ok = s > 0
        shape = (k + 1) * p["alpha"] + k
        log_f = (
            shape * np.log(np.where(ok, s, 1.0)) - s / p["beta"] - (shape + 1) * np.log(p["beta"]) - gammaln(shape + 1)
        )
        trains += np.where(ok, np.exp(log_f), 0.0)
    exps = p["a1"] * np.exp(-p["m1"] * tp) + p["a2"] * np.exp(-p["m2"] * tp) + p["a3"] * np.exp(-p["m3"] * tp)
    out[pos] = exps * trains
    return _plasma(out, hematocrit)


def mcgrath_aif(times: Any, *, delay: float = 0.0, hematocrit: float = 0.0, **params: float) -> np.ndarray:
    """McGrath et al. (2009) model B preclinical AIF (mM) at ``times`` (s); zero before ``delay``.

    Examples
    --------
    >>> mcgrath_aif([0.0, 3.5, 7.0]).round(3).tolist()
    [0.0, 2.605, 5.21]
    """
    p = dict(MCGRATH_2009_B)
    p.update(params)
    t = _shift(times, delay)
    rise = (p["a1"] + p["a2"]) * t / p["t1"]
    s = np.maximum(t - p["t1"], 0.0)
    fall = p["a1"] * np.exp(-p["k1"] * s) + p["a2"] * np.exp(-p["k2"] * s)
    cb = np.where(t < 0, 0.0, np.where(t <= p["t1"], rise, fall))
    return _plasma(cb, hematocrit)


def mouse_aif(
    times: Any,
    *,
    a1: float | None = None,
    m1: float | None = None,
    a2: float | None = None,
    m2: float | None = None,
    injection_s: float = 0.0,
    delay: float = 0.0,
    hematocrit: float = 0.0,
) -> np.ndarray:
    """Bi-exponential rodent AIF ``a1 exp(-m1 t) + a2 exp(-m2 t)`` (a in mM, m in /min, t from arrival).

    With ``injection_s > 0`` the bolus is a constant infusion of that length (the bi-exponential convolved
    with a box of unit area), so the curve rises linearly instead of jumping.

    Examples
    --------
    >>> float(mouse_aif([0.0], a1=2.0, m1=1.0, a2=1.0, m2=0.1)[0])
    3.0
    >>> mouse_aif([0.0])
    Traceback (most recent call last):
    ...
    multiscale.errors.AnalysisError: mouse AIF: give a1, m1, a2, m2 (mM and /min) from a measured or published preclinical AIF; no default is assumed
    """
    if None in (a1, m1, a2, m2):
        raise AnalysisError(
            "mouse AIF: give a1, m1, a2, m2 (mM and /min) from a measured or published "
            "preclinical AIF; no default is assumed"
        )
    t = _shift(times, delay) / 60.0
    d = float(injection_s) / 60.0
    terms = ((float(a1), float(m1)), (float(a2), float(m2)))
    if d <= 0:
        cb = sum(a * np.exp(-m * np.maximum(t, 0)) for a, m in terms)
        cb = np.where(t >= 0, cb, 0.0)
    else:  # box of width d and unit area convolved with each exponential
        cb = np.zeros_like(t)
        for a, m in terms:
            rise = np.clip(t, 0, d)
            part = (1 - np.exp(-m * rise)) / (m * d) if m > 0 else rise / d
            part = part * np.exp(-m * np.maximum(t - d, 0))
            cb += a * np.where(t >= 0, part, 0.0)
    return _plasma(cb, hematocrit)


def _plasma(cb: np.ndarray, hematocrit: float) -> np.ndarray:
    if not 0 <= hematocrit < 1:
        raise AnalysisError(f"hematocrit must be in [0, 1), got {hematocrit}")
    return cb / (1.0 - hematocrit)


AIF_MODELS: dict[str, Callable[..., np.ndarray]] = {
    "parker": parker_aif,
    "georgiou": georgiou_aif,
    "mcgrath": mcgrath_aif,
    "preclinical": mcgrath_aif,
    "mouse": mouse_aif,
}


def population_aif(name: str, times: Any, **params: Any) -> np.ndarray:
    """A population arterial input function (mM) at ``times`` (s).

    Parameters
    ----------
    name : {"parker", "georgiou", "mcgrath" (= "preclinical"), "mouse"}
        The model (see the module docstring for sources and numbers).
    times : array_like
        Seconds; the bolus arrives at ``delay`` (default 0).
    **params
        ``delay`` (s), ``hematocrit`` (plasma = blood / (1 - Hct)), or the model's own parameters.

    Examples
    --------
    >>> population_aif("parker", [0.0, 30.0], hematocrit=0.42).round(3).tolist()
    [0.139, 2.112]
    >>> population_aif("weinmann", [0.0])
    Traceback (most recent call last):
    ...
    multiscale.errors.AnalysisError: unknown population AIF 'weinmann'; choose one of ['parker', 'georgiou', 'mcgrath', 'preclinical', 'mouse']
    """
    key = str(name).lower()
    if key not in AIF_MODELS:
        raise AnalysisError(f"unknown population AIF {name!r}; choose one of {list(AIF_MODELS)}")
    t = np.asarray(times, dtype=float)
    if not np.all(np.isfinite(t)):
        raise AnalysisError("population_aif: times contain NaN or infinity")
    try:
        return AIF_MODELS[key](t, **params)
    except TypeError as exc:
        raise AnalysisError(f"population_aif({name!r}): {exc}") from None
