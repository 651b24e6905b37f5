"""Voxel-wise DCE fitting: a dictionary start and a batched Levenberg-Marquardt, chunked on dask.

How a chunk of voxels is fitted (every step is vectorised over the chunk's voxels):

1. **Dictionary start (variable projection).** The models are linear in their amplitudes (``Ktrans``,
   ``vp``, ``Fp``...) once the rates (``kep``, ``K+``, ``K-``) are fixed. The convolution of the AIF
   with ``exp(-k t)`` is computed once for a log-spaced grid of rates (independent of the voxels), the
   non-negative least-squares amplitudes for every rate (or pair of rates) follow from one matrix
   product ``curves @ basis.T`` and small precomputed normal equations, and each voxel keeps the best
   grid point. Patlak is linear and solved exactly here.
2. **Levenberg-Marquardt** refines amplitudes and log-rates of all voxels together (``(J^T J + lambda
   diag) d = J^T r``, solved as a batch of tiny systems), with amplitudes kept >= 0. A voxel whose cost
   stops changing (relative 1e-6) or whose damping exceeds 1e10 has converged; one still moving after
   ``max_iter`` iterations gets NaN parameters and the ``not_converged`` flag.
3. **Delay** (``fit_delay=True``): the AIF is shifted on a grid of delays and every voxel keeps the delay
   with the smallest dictionary residual (grid step ``delay_step`` s).

``flag`` is a bit mask per voxel (:data:`FLAGS`); a flagged parameter is NaN where it is undefined,
never a silent number (``nonphysical``: ve or vp above 1, kept but flagged; ``rate_at_bound``: a rate
reached its bound, 1e-6 or 20 /s).

Examples
--------
>>> import numpy as np
>>> from multiscale.analysis.kinetics import population_aif, models
>>> t = np.arange(0, 300.0, 4.0)
>>> cp = population_aif("parker", t, delay=20, hematocrit=0.42)
>>> c = np.stack([models.tofts(t, cp, 0.25, 0.3), models.tofts(t, cp, 0.05, 0.1)])
>>> ds = fit_dce(c, t, cp, model="tofts")
>>> np.round(ds.ktrans.values, 4).tolist(), np.round(ds.ve.values, 4).tolist()
([0.25, 0.05], [0.3, 0.1])
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError, KineticsWarning

from . import models as _models
from .aif import check_times

__all__ = ["fit_dce", "fit_curves", "FLAGS", "PARAMETERS", "UNITS"]

#: flag bits of the ``flag`` variable
FLAGS: dict[str, int] = {
    "not_converged": 1,
    "negative_concentration": 2,
    "no_uptake": 4,
    "nonfinite_input": 8,
    "rate_at_bound": 16,
    "nonphysical": 32,
}
#: the maps each model defines (besides delay, r_squared, rmse, flag)
PARAMETERS: dict[str, tuple[str, ...]] = {
    "tofts": ("ktrans", "ve", "kep"),
    "etofts": ("ktrans", "ve", "vp", "kep"),
    "patlak": ("ktrans", "vp"),
    "2cxm": ("fp", "ps", "vp", "ve", "ktrans"),
    "2cum": ("fp", "ps", "vp", "ktrans"),
}
UNITS: dict[str, str] = {
    "ktrans": "1/min",
    "kep": "1/min",
    "ps": "1/min",
    "fp": "mL/100mL/min",
    "ve": "1",
    "vp": "1",
    "delay": "s",
    "r_squared": "1",
    "rmse": "mM",
    "flag": "1",
}
_QUALITY = ("delay", "r_squared", "rmse", "flag")
_K_MIN, _K_MAX = 1e-6, 20.0  # rate bounds, /s
_LOG_K = (np.log(_K_MIN), np.log(_K_MAX))
_BATCH = 8192  # voxels fitted together (memory: ~ _BATCH x frames x 8 bytes x a dozen arrays)


# ---------------------------------------------------------------------------------------------
# grids and inputs
# ---------------------------------------------------------------------------------------------


def _grid(
    times: np.ndarray, aif: np.ndarray, aif_times: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's time grid (frames plus the AIF's own samples), the AIF on it, and the frames' indices."""
    if aif_times is None:
        return times, aif, np.arange(times.size)
    if times[0] < aif_times[0] - 1e-9 or times[-1] > aif_times[-1] + 1e-9:
        raise AnalysisError(
            f"the AIF covers {aif_times[0]:g}..{aif_times[-1]:g} s but the frames span "
            f"{times[0]:g}..{times[-1]:g} s; give an AIF over every frame"
        )
    tg = np.union1d(aif_times, times)
    cpg = np.interp(tg, aif_times, aif)
    idx = np.searchsorted(tg, times)
    return tg, cpg, idx


def _check_aif(aif: Any, times: np.ndarray, aif_times: Any) -> tuple[np.ndarray, np.ndarray | None]:
    a = np.asarray(aif, dtype=float).reshape(-1)
    if aif_times is None:
        if a.size != times.size:
            raise AnalysisError(
                f"the AIF has {a.size} samples but the curves have {times.size} frames; give one AIF "
                "value per frame, or pass aif_times= with the AIF's own times (s)"
            )
        at = None
    else:
        at = check_times(aif_times, "aif_times")
        if a.size != at.size:
            raise AnalysisError(f"the AIF has {a.size} samples but aif_times has {at.size}; give one time per sample")
    if not np.all(np.isfinite(a)):
        raise AnalysisError("the AIF contains NaN or infinity; interpolate or drop those samples")
    return a, at


# ---------------------------------------------------------------------------------------------
# the core: a (V, N) block of curves
# ---------------------------------------------------------------------------------------------


def _combos(model: str, nk: int) -> np.ndarray:
    spec = _models.MODELS[model]
    if spec["rates"] == 0:
        return np.zeros((1, 0), dtype=int)
    if spec["rates"] == 1:
        return np.arange(nk)[:, None]
    i, j = np.triu_indices(nk, k=1)
    return np.stack([j, i], axis=1)  # (faster rate, slower rate): kgrid increases with index


class _Design:
    """The dictionary of one model on one AIF: fixed columns, rate columns, and every subset's normal equations."""

    def __init__(self, model: str, tg: np.ndarray, cpg: np.ndarray, idx: np.ndarray, n_rates: int):
        spec = _models.MODELS[model]
        self.model, self.tg, self.cpg, self.idx = model, tg, cpg, idx
        self.kgrid = np.geomspace(2e-5, 5.0, n_rates)
        fixed = []
        if spec["v0"]:
            fixed.append(cpg[idx])
        if spec["zero_rate"]:
            fixed.append(_models.exp_conv(tg, cpg, 0.0)[idx])
        self.n_fixed = len(fixed)
        basis = _models.exp_conv(tg, cpg, self.kgrid)[:, idx] if spec["rates"] else np.zeros((0, idx.size))
        self.columns = np.vstack(fixed + [basis]) if (fixed or spec["rates"]) else np.zeros((0, idx.size))
        combos = _combos(model, n_rates)
        fixed_idx = np.tile(np.arange(self.n_fixed), (combos.shape[0], 1))
        self.cols = np.concatenate([fixed_idx, combos + self.n_fixed], axis=1)  # (C, m)
        self.combos = combos
        m = self.cols.shape[1]
        gram = self.columns @ self.columns.T
        g = gram[self.cols[:, :, None], self.cols[:, None, :]]  # (C, m, m)
        self.subsets = []
        for mask in range(1, 2**m):
            sel = np.array([b for b in range(m) if mask >> b & 1])
            gs = g[:, sel[:, None], sel[None, :]]
            self.subsets.append((sel, np.linalg.pinv(gs)))

    def start(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best (combo, amplitudes, residual) per voxel of ``y`` (V, N)."""
        nv, m = y.shape[0], self.cols.shape[1]
        b_all = y @ self.columns.T  # (V, ncols)
        yy = np.einsum("vn,vn->v", y, y)
        best_red = np.zeros(nv)
        best_combo = np.zeros(nv, dtype=int)
        best_amp = np.zeros((nv, m))
        ncombo = self.cols.shape[0]
        step = max(1, int(4e6 // max(ncombo * m, 1)))
        for s0 in range(0, nv, step):
            sl = slice(s0, s0 + step)
            b = b_all[sl][:, self.cols]  # (v, C, m)
            for sel, ginv in self.subsets:
                bs = b[:, :, sel]
                a = np.einsum("cij,vcj->vci", ginv, bs)
                red = np.einsum("vci,vci->vc", a, bs)
                red = np.where(np.all(a >= 0, axis=2), red, -np.inf)
                c = np.argmax(red, axis=1)
                r = red[np.arange(red.shape[0]), c]
                better = r > best_red[sl]
                if np.any(better):
                    rows = np.flatnonzero(better) + s0
                    best_red[rows] = r[better]
                    best_combo[rows] = c[better]
                    amp = np.zeros((better.sum(), m))
                    amp[:, sel] = a[better, c[better]]
                    best_amp[rows] = amp
        return best_combo, best_amp, np.maximum(yy - best_red, 0.0)


def _evaluate(
    design: _Design, v0: np.ndarray | None, amps: np.ndarray, logk: np.ndarray, jac: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Model curves at the frames (V, N) and, optionally, the Jacobian (V, N, P) in [v0, amps, logk] order."""
    tg, cpg, idx = design.tg, design.cpg, design.idx
    spec = _models.MODELS[design.model]
    nv = amps.shape[0]
    cols, out = [], np.zeros((nv, idx.size))
    if spec["v0"]:
        out += v0[:, None] * cpg[idx]
        cols.append(np.broadcast_to(cpg[idx], (nv, idx.size)))
    nr = logk.shape[1]
    conv = [_models.exp_conv(tg, cpg, np.exp(logk[:, j]))[:, idx] for j in range(nr)]
    if spec["zero_rate"]:
        conv.append(np.broadcast_to(_models.exp_conv(tg, cpg, 0.0)[idx], (nv, idx.size)))
    for j, e in enumerate(conv):
        out += amps[:, j : j + 1] * e
        cols.append(e)
    if not jac:
        return out, None
    h = 1e-5
    for j in range(nr):
        e2 = _models.exp_conv(tg, cpg, np.exp(logk[:, j] + h))[:, idx]
        cols.append(amps[:, j : j + 1] * (e2 - conv[j]) / h)
    return out, np.stack(cols, axis=2)


def _unpack(model: str, theta: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    spec = _models.MODELS[model]
    p = 0
    v0 = None
    if spec["v0"]:
        v0, p = theta[:, 0], 1
    na = spec["rates"] + int(spec["zero_rate"])
    amps = theta[:, p : p + na]
    logk = theta[:, p + na : p + na + spec["rates"]]
    return v0, amps, logk


def _project(model: str, theta: np.ndarray) -> np.ndarray:
    spec = _models.MODELS[model]
    na = spec["rates"] + int(spec["zero_rate"]) + int(spec["v0"])
    theta[:, :na] = np.maximum(theta[:, :na], 0.0)
    theta[:, na:] = np.clip(theta[:, na:], *_LOG_K)
    return theta


def _lm(design: _Design, y: np.ndarray, theta: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Batched Levenberg-Marquardt; returns (theta, converged)."""
    model = design.model
    nv, npar = theta.shape
    converged = np.zeros(nv, dtype=bool)
    lam = np.full(nv, 1e-3)
    f, j = _evaluate(design, *_unpack(model, theta), jac=True)
    r = y - f
    cost = np.einsum("vn,vn->v", r, r)
    active = np.arange(nv)
    eye = np.eye(npar)
    spec = _models.MODELS[model]
    na = spec["rates"] + int(spec["zero_rate"]) + int(spec["v0"])
    for _ in range(max_iter):
        if active.size == 0:
            break
        ja, ra = j[active], r[active]
        jt_ = ja.transpose(0, 2, 1)
        jtj = jt_ @ ja
        g = (jt_ @ ra[:, :, None])[:, :, 0]
        diag = np.einsum("vpp->vp", jtj)
        a = jtj + lam[active, None, None] * (diag[:, :, None] * eye + 1e-30 * eye)
        th_a = theta[active]
        pinned = np.zeros_like(th_a, dtype=bool)  # at a bound and pushed outwards: fixed this step
        pinned[:, :na] = (th_a[:, :na] <= 0) & (g[:, :na] < 0)
        pinned[:, na:] = ((th_a[:, na:] <= _LOG_K[0]) & (g[:, na:] < 0)) | (
            (th_a[:, na:] >= _LOG_K[1]) & (g[:, na:] > 0)
        )
        free = ~pinned
        a = a * free[:, :, None] * free[:, None, :] + pinned[:, :, None] * eye
        g = g * free
        try:
            step = np.linalg.solve(a, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.einsum("vpq,vq->vp", np.linalg.pinv(a), g)
        trial = _project(model, theta[active] + step)
        moved = trial - theta[active]
        ft, jt = _evaluate(design, *_unpack(model, trial), jac=True)
        rt = y[active] - ft
        ct = np.einsum("vn,vn->v", rt, rt)
        old = cost[active]
        better = ct < old
        idx = active[better]
        theta[idx], cost[idx] = trial[better], ct[better]
        j[idx], r[idx] = jt[better], rt[better]
        lam[idx] /= 10.0
        lam[active[~better]] *= 10.0
        done = (better & (old - ct <= tol * (old + 1e-30))) | (lam[active] > 1e10)
        done |= np.all(np.abs(moved) <= 1e-9 * (np.abs(theta[active]) + 1e-9), axis=1)
        converged[active[done]] = True
        active = active[~done]
    return theta, converged


def fit_curves(
    curves: np.ndarray,
    times: np.ndarray,
    aif: np.ndarray,
    *,
    model: str = "tofts",
    aif_times: np.ndarray | None = None,
    fit_delay: bool = False,
    max_delay: float = 20.0,
    delay_step: float | None = None,
    n_rates: int | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> dict[str, np.ndarray]:
    """Fit ``curves`` (V, N) in mM at ``times`` (s) with the plasma ``aif`` (mM); a dict of (V,) maps.

    The keys are :data:`PARAMETERS` ``[model]`` plus ``delay``, ``r_squared``, ``rmse`` and ``flag``.
    See :func:`fit_dce` for the image/array front end.
    """
    if model not in _models.MODELS:
        raise AnalysisError(f"unknown DCE model {model!r}; choose one of {list(_models.MODELS)}")
    y_all = np.asarray(curves, dtype=float)
    if y_all.ndim != 2 or y_all.shape[1] != times.size:
        raise AnalysisError(f"curves must be (voxels, {times.size}) with one column per frame; got {y_all.shape}")
    nv = y_all.shape[0]
    spec = _models.MODELS[model]
    n_rates = n_rates or (40 if spec["rates"] == 2 else 120)
    out = {k: np.full(nv, np.nan) for k in PARAMETERS[model] + ("delay", "r_squared", "rmse")}
    flag = np.zeros(nv, dtype=np.int32)
    finite = np.all(np.isfinite(y_all), axis=1)
    flag[~finite] |= FLAGS["nonfinite_input"]
    neg = finite & (np.mean(np.where(np.isfinite(y_all), y_all, 0.0), axis=1) < 0)
    flag[neg] |= FLAGS["negative_concentration"]
    if np.any(neg):
        warnings.warn(
            f"{int(neg.sum())} of {nv} curves are negative on average (baseline not subtracted, or the "
            "signal-to-concentration conversion failed); their fits are flagged 'negative_concentration'",
            KineticsWarning,
            stacklevel=3,
        )
    if not np.any(finite):
        out["flag"] = flag
        return out
    y = y_all[finite]
    tg0, cp0, idx = _grid(times, aif, aif_times)
    if fit_delay:
        step = delay_step or max(0.5, float(np.min(np.diff(times))) / 2)
        delays = np.arange(0.0, max_delay + 1e-9, step)
    else:
        delays = np.array([0.0])
    designs: list[_Design] = []
    which = combo = amp = res = None
    for di, d in enumerate(delays):
        cpd = np.interp(tg0 - d, tg0, cp0, left=cp0[0]) if d else cp0
        des = _Design(model, tg0, cpd, idx, n_rates)
        c_d, a_d, r_d = des.start(y)
        designs.append(des)
        if which is None:
            which, combo, amp, res = np.zeros(y.shape[0], int), c_d, a_d, r_d
        else:
            better = r_d < res - 1e-15
            which[better], combo[better], amp[better], res[better] = di, c_d[better], a_d[better], r_d[better]
    na = spec["rates"] + int(spec["zero_rate"])
    npar = int(spec["v0"]) + na + spec["rates"]
    theta = np.zeros((y.shape[0], npar))
    conv = np.zeros(y.shape[0], dtype=bool)
    for di, des in enumerate(designs):
        sel = np.flatnonzero(which == di)
        if sel.size == 0:
            continue
        th = np.zeros((sel.size, npar))
        p = 0
        if spec["v0"]:
            th[:, 0] = amp[sel, 0]
            p = 1
        # amplitude columns in the design: fixed (v0, zero-rate) first, then rates; theta: v0, rate amps, zero amp
        nfix = des.n_fixed
        rate_amp = amp[sel, nfix:]
        th[:, p : p + spec["rates"]] = rate_amp
        if spec["zero_rate"]:
            th[:, p + spec["rates"]] = amp[sel, nfix - 1]
        if spec["rates"]:
            th[:, p + na :] = np.log(des.kgrid[des.combos[combo[sel]]])
        if npar == int(spec["v0"]) + int(spec["zero_rate"]):  # linear model (Patlak): the start is the answer
            theta[sel], conv[sel] = th, True
            continue
        th, ok = _lm(des, y[sel], th, max_iter, tol)
        theta[sel], conv[sel] = th, ok
    # goodness of fit
    rss = np.zeros(y.shape[0])
    for di, des in enumerate(designs):
        sel = np.flatnonzero(which == di)
        if sel.size:
            f, _ = _evaluate(des, *_unpack(model, theta[sel]), jac=False)
            rss[sel] = np.sum((y[sel] - f) ** 2, axis=1)
    ss = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
    params = _physical(model, theta)
    fl = np.zeros(y.shape[0], dtype=np.int32)
    fl[~conv] |= FLAGS["not_converged"]
    v0, amps, logk = _unpack(model, theta)
    if spec["rates"]:
        at_bound = np.any((logk <= _LOG_K[0] + 1e-9) | (logk >= _LOG_K[1] - 1e-9), axis=1)
        fl[at_bound & np.all(amps[:, : spec["rates"]] > 0, axis=1)] |= FLAGS["rate_at_bound"]
    no_up = np.all(amps[:, : max(spec["rates"], 1)] <= 0, axis=1)
    fl[no_up] |= FLAGS["no_uptake"]
    with np.errstate(invalid="ignore"):
        frac = np.stack([params[n] for n in ("ve", "vp") if n in params] or [np.zeros(y.shape[0])])
        fl[np.any(frac > 1.0, axis=0)] |= FLAGS["nonphysical"]
    for k, v in params.items():
        v = np.where(conv, v, np.nan)
        out[k][finite] = v
    with np.errstate(divide="ignore", invalid="ignore"):
        out["r_squared"][finite] = np.where(conv, 1 - rss / ss, np.nan)
        out["rmse"][finite] = np.where(conv, np.sqrt(rss / times.size), np.nan)
    out["delay"][finite] = delays[which]
    flag[finite] |= fl
    out["flag"] = flag
    if np.any(~conv):
        warnings.warn(
            f"{int((~conv).sum())} of {nv} fits did not converge in {max_iter} iterations; their "
            "parameters are NaN (flag 'not_converged')",
            KineticsWarning,
            stacklevel=3,
        )
    return out


def _physical(model: str, theta: np.ndarray) -> dict[str, np.ndarray]:
    v0, amps, logk = _unpack(model, theta)
    k = np.exp(logk)
    with np.errstate(divide="ignore", invalid="ignore"):
        if model in ("tofts", "etofts"):
            a, kk = amps[:, 0], k[:, 0]
            out = {"ktrans": a * 60.0, "kep": np.where(a > 0, kk * 60.0, np.nan), "ve": np.where(a > 0, a / kk, np.nan)}
            if model == "etofts":
                out["vp"] = v0
            return out
        if model == "patlak":
            return {"ktrans": amps[:, 0] * 60.0, "vp": v0}
        if model == "2cum":
            p = _models.biexp_to_2cum(amps[:, 0], amps[:, 1], k[:, 0])
            ok = amps[:, 0] > 0
            return {n: np.where(ok | (n == "fp"), p[n], np.nan) for n in PARAMETERS[model]}
        # 2cxm: order so that K+ >= K-
        swap = k[:, 1] > k[:, 0]
        kp, kn = np.where(swap, k[:, 1], k[:, 0]), np.where(swap, k[:, 0], k[:, 1])
        ap, an = np.where(swap, amps[:, 1], amps[:, 0]), np.where(swap, amps[:, 0], amps[:, 1])
        p = _models.biexp_to_2cxm(ap, an, kp, kn)
        ok = (ap > 0) & (an > 0)
        return {n: np.where(ok | (n == "fp"), p[n], np.nan) for n in PARAMETERS[model]}


# ---------------------------------------------------------------------------------------------
# front end: images and arrays, numpy or dask
# ---------------------------------------------------------------------------------------------


def _names(model: str) -> tuple[str, ...]:
    return PARAMETERS[model] + _QUALITY


def _fit_block(block: np.ndarray, times: np.ndarray, aif: np.ndarray, kw: dict[str, Any]) -> np.ndarray:
    """(…, N) block -> (P, …) stacked maps (the map_blocks kernel)."""
    shape = block.shape[:-1]
    flat = block.reshape(-1, block.shape[-1])
    names = _names(kw["model"])
    out = np.empty((len(names), flat.shape[0]))
    for s0 in range(0, flat.shape[0], _BATCH):  # bounded working memory, whatever the chunk
        res = fit_curves(flat[s0 : s0 + _BATCH], times, aif, **kw)
        for i, n in enumerate(names):
            out[i, s0 : s0 + _BATCH] = res[n]
    return out.reshape((len(names),) + shape)


def fit_dce(
    concentration: Any,
    times: Any = None,
    aif: Any = None,
    *,
    model: str = "tofts",
    aif_times: Any = None,
    fit_delay: bool = False,
    max_delay: float = 20.0,
    delay_step: float | None = None,
    max_iter: int = 100,
) -> xr.Dataset:
    """Voxel-wise tracer-kinetic maps from a concentration series.

    Parameters
    ----------
    concentration : xarray.DataArray with a ``t`` dim, or array whose **last** axis is time
        Tissue concentration (mM). An image's ``t`` coords are the frame times (s) unless ``times`` is
        given. Dask-backed data are fitted lazily, chunk by chunk (``t`` is merged into one chunk).
    times : array_like, optional
        Frame times (s), strictly increasing; required for a plain array.
    aif : array_like
        Arterial **plasma** concentration (mM), at ``times`` or at ``aif_times``. Use
        :func:`~multiscale.analysis.kinetics.population_aif` (with ``hematocrit=``) for a population AIF.
    model : {"tofts", "etofts", "patlak", "2cxm", "2cum"}
    aif_times : array_like, optional
        The AIF's own times (s), e.g. a finer grid; the models are evaluated on the union of both grids.
    fit_delay : bool
        Fit a bolus arrival delay (0..``max_delay`` s, step ``delay_step``) per voxel.

    Returns
    -------
    xarray.Dataset
        The model's maps (:data:`PARAMETERS`: ``ktrans``, ``ve``, ``vp``, ``fp``, ``ps``, ``kep``) with
        ``attrs["units"]`` (Ktrans, kep, PS in 1/min; Fp in mL/100mL/min; fractions 1), plus ``delay`` (s),
        ``r_squared``, ``rmse`` (mM) and ``flag`` (bit mask of :data:`FLAGS`).

    Raises
    ------
    AnalysisError
        Frames without times, times not increasing, an AIF of the wrong length or with NaN, an unknown
        model.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.analysis.kinetics import population_aif, models
    >>> t = np.arange(0, 240.0, 2.0)
    >>> cp = population_aif("parker", t, delay=10, hematocrit=0.42)
    >>> c = models.etofts(t, cp, 0.12, 0.25, 0.05)
    >>> ds = fit_dce(c[None, :], t, cp, model="etofts")
    >>> [round(float(ds[k][0]), 4) for k in ("ktrans", "ve", "vp")]
    [0.12, 0.25, 0.05]
    """
    if model not in _models.MODELS:
        raise AnalysisError(f"unknown DCE model {model!r}; choose one of {list(_models.MODELS)}")
    if aif is None:
        raise AnalysisError(
            "fit_dce needs an arterial input function: aif= (plasma mM per frame), e.g. "
            "population_aif('parker', times, hematocrit=0.42)"
        )
    image = concentration if isinstance(concentration, xr.DataArray) else None
    if image is not None:
        if "t" not in image.dims:
            raise AnalysisError("the concentration image has no 't' dim; fit_dce needs a time series (t, z, y, x)")
        if "c" in image.dims:
            raise AnalysisError("the concentration image has a 'c' dim; select one channel first (image.sel(c=...))")
        if times is None:
            if "t" not in image.coords:
                raise AnalysisError(
                    "the image's frames have no times: no 't' coords; load it with a reader that "
                    "records frame times, or pass times= (s)"
                )
            times = image["t"].values
        data = image.transpose(*[d for d in image.dims if d != "t"], "t").data
    else:
        if times is None:
            raise AnalysisError("fit_dce on a plain array needs times= (s), one per frame along the last axis")
        data = concentration if hasattr(concentration, "dask") else np.asarray(concentration, dtype=float)
    t = check_times(times)
    if data.shape[-1] != t.size:
        raise AnalysisError(
            f"{t.size} frame times for {data.shape[-1]} frames along the time axis; give one time per frame"
        )
    a, at = _check_aif(aif, t, aif_times)
    kw = dict(
        model=model, aif_times=at, fit_delay=fit_delay, max_delay=max_delay, delay_step=delay_step, max_iter=max_iter
    )
    names = _names(model)
    if hasattr(data, "dask"):
        import dask.array as da

        data = data.rechunk({data.ndim - 1: -1}).astype(float)
        stacked = da.map_blocks(
            _fit_block,
            data,
            t,
            a,
            kw,
            dtype=float,
            drop_axis=data.ndim - 1,
            new_axis=0,
            chunks=((len(names),),) + data.chunks[:-1],
        )
    else:
        stacked = _fit_block(np.asarray(data, dtype=float), t, a, kw)
    sdims = [d for d in image.dims if d != "t"] if image is not None else [f"dim_{i}" for i in range(data.ndim - 1)]
    coords = {d: image.coords[d] for d in sdims if d in image.coords} if image is not None else {}
    base = dict(image.attrs) if image is not None else {}
    variables = {}
    for i, n in enumerate(names):
        attrs = {k: v for k, v in base.items() if k not in ("units", "warnings")}
        attrs.update(units=UNITS.get(n, "1"), model=model)
        if n == "flag":
            attrs["flag_bits"] = dict(FLAGS)
        variables[n] = xr.DataArray(stacked[i], dims=sdims, coords=coords, attrs=attrs, name=n)
    ds = xr.Dataset(variables, attrs={"model": model, "frame_times_s": t.tolist()})
    return ds
