"""Tracer-kinetic models as sums of exponential convolutions, vectorised over voxels.

Every model here is ``C(t) = v0 * Cp(t) + sum_j A_j * (exp(-k_j t) (*) Cp)(t)`` (``(*)`` convolution),
with the plasma input ``Cp`` linear between its samples. The convolution is computed *exactly* for that
piecewise-linear input by the recursion (for a step ``dt`` and ``E = exp(-k dt)``)::

    F_i = E F_{i-1} + Cp_{i-1} (1 - E) / k + (Cp_i - Cp_{i-1}) (k dt - 1 + E) / (k^2 dt)

on the input's own (possibly non-uniform, fine) time grid, for every voxel's ``k`` at once; ``k = 0`` is
the running integral (trapezoid). Models and their parameters (Sourbron & Buckley, Phys Med Biol 2013;
the OSIPI CAPLEX lexicon):

========  ==========================================  ===========================================
model     impulse response                            parameters
========  ==========================================  ===========================================
tofts     Ktrans exp(-kep t)                          Ktrans, ve = Ktrans / kep
etofts    vp delta(t) + Ktrans exp(-kep t)            Ktrans, ve, vp
patlak    vp delta(t) + Ktrans                        Ktrans, vp
2cxm      Fp [E- exp(-K- t) + (1 - E-) exp(-K+ t)]     Fp, PS, vp, ve (and Ktrans = E Fp)
2cum      Fp [(1 - E) exp(-t / Tp) + E]                Fp, PS, vp (and Ktrans = E Fp)
========  ==========================================  ===========================================

Rates are per second inside this module; :mod:`.fit` reports Ktrans and PS in /min and Fp in
mL/100 mL/min.

Examples
--------
>>> import numpy as np
>>> t = np.arange(0, 300.0, 1.0)
>>> cp = np.where(t >= 10, 1.0, 0.0)                      # a step input of 1 mM at 10 s
>>> c = tofts(t, cp, ktrans=0.1, ve=0.2)                  # Ktrans in /min
>>> round(float(c[-1]), 3)                                 # approaches ve * Cp
0.182
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "exp_conv",
    "tissue_curves",
    "tofts",
    "etofts",
    "patlak",
    "two_cxm",
    "two_cum",
    "MODELS",
    "biexp_to_2cxm",
    "biexp_to_2cum",
    "two_cxm_rates",
]

#: the models fit_dce knows: fixed plasma term?, number of exponential terms, whether one rate is fixed to 0
MODELS: dict[str, dict[str, Any]] = {
    "tofts": {"v0": False, "rates": 1, "zero_rate": False},
    "etofts": {"v0": True, "rates": 1, "zero_rate": False},
    "patlak": {"v0": True, "rates": 0, "zero_rate": True},
    "2cxm": {"v0": False, "rates": 2, "zero_rate": False},
    "2cum": {"v0": False, "rates": 1, "zero_rate": True},
}


def exp_conv(t: np.ndarray, cp: np.ndarray, k: Any) -> np.ndarray:
    """``(exp(-k t) (*) Cp)(t_i)`` for a piecewise-linear ``Cp`` on grid ``t`` (s), for every ``k`` (/s).

    Parameters
    ----------
    t : (N,) array
        Strictly increasing times (s), any spacing.
    cp : (N,) array or (V, N) array
        Input concentration; one row per voxel when 2-D.
    k : float or (V,) array
        Rates (/s), >= 0.

    Returns
    -------
    (V, N) array (or (N,) when ``k`` is a scalar and ``cp`` 1-D), in mM*s.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 10, 11); cp = np.ones(11)
    >>> round(float(exp_conv(t, cp, 0.5)[-1]), 6), round(float((1 - np.exp(-5)) / 0.5), 6)   # exact for constant input
    (1.986524, 1.986524)
    """
    scalar = np.ndim(k) == 0 and np.ndim(cp) == 1
    k = np.atleast_1d(np.asarray(k, dtype=float))
    cp = np.asarray(cp, dtype=float)
    cp2 = np.broadcast_to(cp, (k.size, cp.shape[-1])) if cp.ndim == 1 else cp
    t = np.asarray(t, dtype=float)
    n = t.size
    out = np.empty((k.size, n))
    out[:, 0] = 0.0
    f = np.zeros(k.size)
    small = k < 1e-9
    ks = np.where(small, 1.0, k)
    for i in range(1, n):
        dt = t[i] - t[i - 1]
        x = ks * dt
        e = np.exp(-x)
        a = cp2[:, i - 1]
        b = cp2[:, i]
        one_m_e = -np.expm1(-x)
        w0 = one_m_e / ks  # integral of exp over the step
        # (k dt - 1 + E) / (k^2 dt), with a series where k dt is small
        w1 = np.where(x < 1e-3, dt * (0.5 - x / 6.0 + x * x / 24.0), (x - one_m_e) / (ks * ks * dt))
        f_exp = e * f + a * w0 + (b - a) * w1
        f_int = f + 0.5 * (a + b) * dt
        f = np.where(small, f_int, f_exp)
        out[:, i] = f
    return out[0] if scalar else out


def tissue_curves(t: np.ndarray, cp: np.ndarray, v0: Any, amps: list[Any], rates: list[Any]) -> np.ndarray:
    """``v0 Cp + sum_j A_j exp_conv(k_j)`` for every voxel: (V, N) concentrations (mM).

    ``v0`` and each ``A_j``/``k_j`` are (V,) arrays or scalars (``A`` and ``k`` per second).
    """
    amps = [np.atleast_1d(np.asarray(a, float)) for a in amps]
    rates = [np.atleast_1d(np.asarray(k, float)) for k in rates]
    nv = max([np.size(v0)] + [a.size for a in amps] + [k.size for k in rates])
    out = np.zeros((nv, np.asarray(t).size))
    if v0 is not None:
        out += np.atleast_1d(np.asarray(v0, float))[:, None] * np.asarray(cp, float)
    for a, k in zip(amps, rates):
        kv = np.broadcast_to(k, (nv,))
        out += np.broadcast_to(a, (nv,))[:, None] * exp_conv(t, cp, kv)
    return out


def _per_s(per_min: Any) -> np.ndarray:
    return np.asarray(per_min, float) / 60.0


def tofts(t: Any, cp: Any, ktrans: Any, ve: Any) -> np.ndarray:
    """Standard Tofts model: Ktrans (/min), ve; ``t`` in s, ``cp`` plasma mM. Returns (N,) or (V, N)."""
    kt = _per_s(ktrans)
    c = tissue_curves(t, cp, None, [kt], [kt / np.asarray(ve, float)])
    return c[0] if np.ndim(ktrans) == 0 else c


def etofts(t: Any, cp: Any, ktrans: Any, ve: Any, vp: Any) -> np.ndarray:
    """Extended Tofts: ``vp Cp + Ktrans exp(-Ktrans/ve t) (*) Cp``."""
    kt = _per_s(ktrans)
    c = tissue_curves(t, cp, vp, [kt], [kt / np.asarray(ve, float)])
    return c[0] if np.ndim(ktrans) == 0 else c


def patlak(t: Any, cp: Any, ktrans: Any, vp: Any) -> np.ndarray:
    """Patlak: ``vp Cp + Ktrans * integral(Cp)``."""
    c = tissue_curves(t, cp, vp, [_per_s(ktrans)], [0.0])
    return c[0] if np.ndim(ktrans) == 0 else c


def two_cxm_rates(fp: Any, ps: Any, vp: Any, ve: Any) -> tuple[np.ndarray, ...]:
    """2CXM as a bi-exponential: amplitudes ``(A+, A-)`` (/s) and rates ``(K+, K-)`` (/s).

    ``fp`` in mL/100 mL/min, ``ps`` in /min, ``vp`` and ``ve`` fractions.
    """
    fp_s = np.asarray(fp, float) / 6000.0
    ps_s = _per_s(ps)
    vp = np.asarray(vp, float)
    ve = np.asarray(ve, float)
    tp = vp / (fp_s + ps_s)
    te = ve / ps_s
    tb = vp / fp_s
    s = 1 / tp + 1 / te
    root = np.sqrt(np.maximum(s * s - 4 / (te * tb), 0.0))
    kpos, kneg = 0.5 * (s + root), 0.5 * (s - root)
    eneg = (kpos - 1 / tb) / (kpos - kneg)
    return fp_s * (1 - eneg), fp_s * eneg, kpos, kneg


def two_cxm(t: Any, cp: Any, fp: Any, ps: Any, vp: Any, ve: Any) -> np.ndarray:
    """Two-compartment exchange model (Fp mL/100 mL/min, PS /min, vp, ve)."""
    apos, aneg, kpos, kneg = two_cxm_rates(fp, ps, vp, ve)
    c = tissue_curves(t, cp, None, [apos, aneg], [kpos, kneg])
    return c[0] if np.ndim(fp) == 0 else c


def two_cum(t: Any, cp: Any, fp: Any, ps: Any, vp: Any) -> np.ndarray:
    """Two-compartment uptake model (Fp mL/100 mL/min, PS /min, vp)."""
    fp_s = np.asarray(fp, float) / 6000.0
    ps_s = _per_s(ps)
    e = ps_s / (fp_s + ps_s)
    tp = np.asarray(vp, float) / (fp_s + ps_s)
    c = tissue_curves(t, cp, None, [fp_s * (1 - e), fp_s * e], [1 / tp, 0.0])
    return c[0] if np.ndim(fp) == 0 else c


def biexp_to_2cxm(apos: np.ndarray, aneg: np.ndarray, kpos: np.ndarray, kneg: np.ndarray) -> dict[str, np.ndarray]:
    """Invert :func:`two_cxm_rates`: Fp (mL/100 mL/min), PS (/min), vp, ve from the bi-exponential (/s).

    ``kpos >= kneg``; every positive ``(A+, A-, K+ > K- >= 0)`` maps to a valid 2CXM.

    Examples
    --------
    >>> p = biexp_to_2cxm(*two_cxm_rates(25.0, 0.15, 0.1, 0.2))
    >>> [round(float(p[k]), 6) for k in ("fp", "ps", "vp", "ve")]
    [25.0, 0.15, 0.1, 0.2]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        fp = apos + aneg
        eneg = aneg / fp
        inv_tb = kpos - eneg * (kpos - kneg)
        tb = 1 / inv_tb
        inv_te = kpos * kneg * tb
        inv_tp = kpos + kneg - inv_te
        vp = fp * tb
        ps = vp * inv_tp - fp
        ve = ps / inv_te
    return {"fp": fp * 6000.0, "ps": ps * 60.0, "vp": vp, "ve": ve, "ktrans": ps / (1 + ps / fp) * 60.0}


def biexp_to_2cum(a1: np.ndarray, a0: np.ndarray, k1: np.ndarray) -> dict[str, np.ndarray]:
    """Invert the 2CUM: ``Fp (1 - E) exp(-k1 t) + Fp E`` -> Fp (mL/100 mL/min), PS (/min), vp.

    Examples
    --------
    >>> e = 0.01 / (0.01 + 20 / 100); fp = 20 / 6000; k = (fp + 0.01 / 60) / 0.05
    >>> p = biexp_to_2cum(fp * (1 - e), fp * e, k)
    >>> [round(float(p[n]), 6) for n in ("fp", "ps", "vp")]
    [20.0, 0.01, 0.05]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        fp = a1 + a0
        e = a0 / fp
        ps = e * fp / (1 - e)
        vp = (fp + ps) / k1
    return {"fp": fp * 6000.0, "ps": ps * 60.0, "vp": vp, "ktrans": e * fp * 60.0}
