"""Private: the inner loops of ion-image extraction, in numba when it is installed, else in numpy.

A *chunk* of spectra is given as two flat typed buffers and per-spectrum element offsets:
spectrum ``i`` has m/z values ``mz_buf[mz_start[i] : mz_start[i] + length[i]]`` (ascending) and
intensities ``int_buf[int_start[i] : int_start[i] + length[i]]``. The buffers may be zero-copy views
of a memory-mapped .ibd region (mz and intensity views of the same bytes) or decoded copies.

Windows are inclusive: a peak counts for target ``t`` when ``lo[t] <= mz <= hi[t]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

REDUCE_CODES = {"sum": 0, "max": 1, "mean": 2}

try:  # numba is optional (identical results; see benchmarks/msi_ion_images.py for the speed-up)
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised when numba is absent
    numba = None
    HAVE_NUMBA = False


def _lower_bound_py(mz_buf, a, e, lo_t, block):
    """First index in ``mz_buf[a:e]`` (ascending) whose value is >= ``lo_t``.

    Counts the values < ``lo_t`` in blocks of ``block`` (sorted data, so the count is the step:
    branch-light and vectorisable). After 64 values without reaching ``lo_t`` it gallops and
    bisects instead (few probes when targets are sparse).
    """
    blocks = 0
    while True:
        if a + block <= e:
            c = 0
            for k in range(block):
                c += mz_buf[a + k] < lo_t
            a += c
            if c < block:
                return a
            blocks += 1
            if blocks * block >= 64:
                step = 1
                while a + step < e and mz_buf[a + step] < lo_t:
                    a += step
                    step <<= 1
                b = min(a + step, e)
                while a < b:
                    m = (a + b) >> 1
                    if mz_buf[m] < lo_t:
                        a = m + 1
                    else:
                        b = m
                return a
        else:
            while a < e and mz_buf[a] < lo_t:
                a += 1
            return a


def _window_reduce_py(mz_buf, mz_start, int_buf, int_start, length, lo, hi, code, out, rows, cols):
    """out[rows[t], cols[i]] = reduce of spectrum i's intensities in window t."""
    n_t = lo.size
    for i in range(mz_start.size):
        p0 = mz_start[i]
        e = p0 + length[i]
        q0 = int_start[i]
        lb = p0
        # dense targets (fewer than ~12 peaks between consecutive windows) step in blocks of 8,
        # sparse ones in blocks of 16: about 5 % less time per target at 1,000 targets on 5,000 peaks
        dense = length[i] < 12 * n_t
        for t in range(n_t):
            # lo is ascending, so the lower bound only moves right
            if dense:
                a = _lower_bound(mz_buf, lb, e, lo[t], 8)
            else:
                a = _lower_bound(mz_buf, lb, e, lo[t], 16)
            lb = a
            hi_t = hi[t]
            acc = 0.0
            cnt = 0
            j = a
            if code == 0 and j + 2 <= e:
                # sum: the first two peaks without a branch on the window (a narrow window holds 0 or
                # 1 peak, unpredictably), selects instead of jumps: about 20 % less time per target at
                # 1,000 targets. Same sum in the same order (m/z sorted: the second is in only if the
                # first is), so the images are unchanged.
                # (the loads come first and unconditionally, so that the compiler can select; a load
                # inside the conditional expression would have to stay a branch)
                v0 = np.float64(int_buf[q0 + (j - p0)])
                v1 = np.float64(int_buf[q0 + (j + 1 - p0)])
                acc += v0 if mz_buf[j] <= hi_t else 0.0
                acc += v1 if mz_buf[j + 1] <= hi_t else 0.0
                if mz_buf[j + 1] <= hi_t:
                    j += 2
                    while j < e and mz_buf[j] <= hi_t:
                        acc += np.float64(int_buf[q0 + (j - p0)])
                        j += 1
            elif code == 1:
                while j < e and mz_buf[j] <= hi_t:
                    v = np.float64(int_buf[q0 + (j - p0)])
                    if cnt == 0 or v > acc:
                        acc = v
                    cnt += 1
                    j += 1
            else:
                while j < e and mz_buf[j] <= hi_t:
                    acc += np.float64(int_buf[q0 + (j - p0)])
                    cnt += 1
                    j += 1
                if code == 2 and cnt > 0:
                    acc = acc / cnt
            out[rows[t], cols[i]] = acc


def _window_reduce_shared_py(int_buf, int_start, a, b, code, out, rows, cols):
    """Shared m/z axis (continuous files): out[rows[t], cols[i]] = reduce of spectrum i's
    ``int_buf[int_start[i] + a[t] : int_start[i] + b[t]]``, ``a``/``b`` found once on the axis.

    Same arithmetic as :func:`_window_reduce_py` on the same values: float64 accumulation from 0.0 in
    index order (sum, mean = sum / count), max = the first value then every larger one (a NaN first
    value stays, later NaNs are skipped), 0 for an empty window.
    """
    n_t = a.size
    n_s = int_start.size
    # tiles of spectra, targets outside: out[rows[t], cols[i0:i1]] is one short run (the pixels of
    # consecutive spectra are adjacent) instead of n_t writes a whole image row apart per spectrum;
    # at 1,000 targets that is most of the time (TLB misses). Each value is computed as before.
    for i0 in range(0, n_s, _TILE):
        i1 = min(n_s, i0 + _TILE)
        for t in range(n_t):
            at = a[t]
            bt = b[t]
            r = rows[t]
            for i in range(i0, i1):
                q0 = int_start[i]
                j = q0 + at
                e = q0 + bt
                acc = 0.0
                if code == 1:
                    if j < e:
                        acc = np.float64(int_buf[j])
                        j += 1
                        while j < e:
                            v = np.float64(int_buf[j])
                            if v > acc:
                                acc = v
                            j += 1
                else:
                    n = e - j
                    while j < e:
                        acc += np.float64(int_buf[j])
                        j += 1
                    if code == 2 and n > 0:
                        acc = acc / n
                out[r, cols[i]] = acc


_TILE = 64  # spectra per tile of the shared-axis kernel


def _window_bin_py(mz_buf, mz_start, int_buf, int_start, length, lo, hi, table, base, inv_w, code, out, rows, cols,
                   acc, cnt):
    """Peak-major: out[rows[t], cols[i]] = reduce of spectrum i's intensities in window t, for windows sorted
    by ``lo`` whose ``hi`` are in order too (disjoint windows, or overlapping ones of one tolerance).

    Each peak in ``[lo[0], hi[-1]]`` is visited once: ``table[c]`` is a window no later than the first with
    ``hi >= mz`` for any m/z in cell ``c`` of width ``1 / inv_w`` from ``base`` (one cell of slack for
    rounding), a short forward scan finds that window, and the peak counts for it and for the following
    windows that have started (``lo <= mz``; with ``hi`` in order they have not ended). The cost follows
    the peaks, not the targets: for thousands of targets this replaces one search per (target, spectrum).
    Same arithmetic as :func:`_window_reduce_py`: float64 accumulation from 0.0 in index order (a window's
    peaks are visited in index order), max = the first value then every larger one, mean = sum / count, 0
    for an empty window. ``acc`` (``(tile, n_t)``) and ``cnt`` (the same, or ``(1, 1)`` for sums), zero on
    entry and on return, hold one tile of spectra so the image stack is written in runs of ``tile`` values.
    """
    # indices are unsigned (np.uint64) in the loops: numba then emits no negative-index wraparound for each access
    # (a shift and a mask per index, and the registers they take); measured on workload A, 10 -> 6 ns per peak.
    # Offsets between the m/z and intensity views may be negative: unsigned addition wraps to the same index.
    one = np.uint64(1)
    n_t = np.uint64(lo.size)
    n_s = mz_start.size
    n_c1 = np.uint64(table.size - 1)
    lo0 = lo[0]
    hi_last = hi[lo.size - 1]
    tile = acc.shape[0]
    for i0 in range(0, n_s, tile):
        i1 = min(n_s, i0 + tile)
        for i in range(i0, i1):
            il = np.uint64(i - i0)
            p0 = mz_start[i]
            e = np.uint64(p0 + length[i])
            dq = np.uint64(int_start[i] - p0)
            j = np.uint64(_lower_bound(mz_buf, p0, p0 + length[i], lo0, 16))
            while j < e:
                m = mz_buf[j]
                if m > hi_last:
                    break
                if m >= lo0:  # False for NaN: a NaN m/z is in no window
                    c = min(np.uint64((m - base) * inv_w), n_c1)
                    t = np.uint64(table[c])
                    # a few steps at most with cells no wider than the narrowest window; t stays below n_t
                    # because hi[n_t - 1] >= m
                    while hi[t] < m:
                        t += one
                    v = np.float64(int_buf[j + dq])
                    if code == 0:
                        # a peak falls in a window or between two, unpredictably: select, not branch (adding
                        # 0.0 leaves the float64 sum unchanged: it starts at +0.0 and can never be -0.0)
                        acc[il, t] += v if lo[t] <= m else 0.0
                        t += one
                        # overlapping windows (``hi`` non-decreasing, so m <= hi of every later one): the
                        # following windows that have started also hold the peak
                        while t < n_t and lo[t] <= m:
                            acc[il, t] += v
                            t += one
                    else:
                        while t < n_t and lo[t] <= m:
                            if code == 1:
                                if cnt[il, t] == 0 or v > acc[il, t]:
                                    acc[il, t] = v
                            else:
                                acc[il, t] += v
                            cnt[il, t] += 1
                            t += one
                j += one
        # write the tile out in blocks of 32 targets: short runs of ``out`` rows, ``acc`` read in cache
        nl = np.uint64(i1 - i0)
        for t0 in range(0, lo.size, 32):
            ta = np.uint64(t0)
            tb = np.uint64(min(lo.size, t0 + 32))
            t = ta
            while t < tb:
                r = np.uint64(rows[t])
                il = np.uint64(0)
                while il < nl:
                    v = acc[il, t]
                    if code == 2 and cnt[il, t] > 0:
                        v = v / cnt[il, t]
                    out[r, np.uint64(cols[np.uint64(i0) + il])] = v
                    il += one
                t += one
            il = np.uint64(0)
            while il < nl:
                t = ta
                while t < tb:
                    acc[il, t] = 0.0
                    t += one
                il += one
            if code != 0:
                il = np.uint64(0)
                while il < nl:
                    t = ta
                    while t < tb:
                        cnt[il, t] = 0
                        t += one
                    il += one


_lower_bound = _lower_bound_py  # what the pure-Python kernel calls; the numba kernel calls the compiled one (below)


def _spectrum_stats_py(int_buf, int_start, length, out):
    """Per spectrum: sum, sum of squares, count, max."""
    for i in range(int_start.size):
        q0 = int_start[i]
        s = 0.0
        s2 = 0.0
        mx = 0.0
        n = length[i]
        for j in range(n):
            v = np.float64(int_buf[q0 + j])
            s += v
            s2 += v * v
            if j == 0 or v > mx:
                mx = v
        out[i, 0] = s
        out[i, 1] = s2
        out[i, 2] = n
        out[i, 3] = mx


if HAVE_NUMBA:
    # the block size is a literal at both call sites, so numba specialises (and unrolls) each one
    _lower_bound = numba.njit(inline="always", nogil=True)(_lower_bound_py)
    _window_reduce_nb = numba.njit(cache=True, nogil=True)(_window_reduce_py)
    _window_reduce_shared_nb = numba.njit(cache=True, nogil=True)(_window_reduce_shared_py)
    _window_bin_nb = numba.njit(cache=True, nogil=True)(_window_bin_py)
    _spectrum_stats_nb = numba.njit(cache=True, nogil=True)(_spectrum_stats_py)


def window_reduce(
    mz_buf: np.ndarray,
    mz_start: np.ndarray,
    int_buf: np.ndarray,
    int_start: np.ndarray,
    length: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    reduce: str = "sum",
    engine: str = "auto",
) -> np.ndarray:
    """Reduce each spectrum's intensities inside each ``[lo, hi]`` window; ``lo`` ascending.

    Returns a float64 array of shape ``(n_spectra, n_targets)``; empty windows give 0. (The
    dataset calls :func:`window_reduce_into`, which writes straight into the image stack.)

    Examples
    --------
    >>> import numpy as np
    >>> mz = np.array([100.0, 200.0, 300.0]); it = np.array([1.0, 2.0, 4.0])
    >>> window_reduce(mz, np.array([0]), it, np.array([0]), np.array([3]),
    ...               np.array([150.0, 250.0]), np.array([350.0, 260.0])).tolist()
    [[6.0, 0.0]]
    """
    out = np.zeros((lo.size, mz_start.size), dtype=np.float64)
    window_reduce_into(
        out, np.arange(lo.size), np.arange(mz_start.size), mz_buf, mz_start, int_buf, int_start, length, lo, hi, reduce, engine
    )
    return out.T.copy()


def window_reduce_into(
    out: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    mz_buf: np.ndarray,
    mz_start: np.ndarray,
    int_buf: np.ndarray,
    int_start: np.ndarray,
    length: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    reduce: str = "sum",
    engine: str = "auto",
) -> None:
    """Like :func:`window_reduce` but writes ``out[rows[t], cols[i]]`` directly (no temporaries).

    ``out`` is a 2-D float64 or float32 array, e.g. the flattened ion-image stack ``(n_targets, n_pixels)``.
    """
    code = REDUCE_CODES[reduce]
    if mz_start.size == 0 or lo.size == 0:
        return
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    if use_numba(engine):
        _window_reduce_nb(_ro(mz_buf), mz_start, _ro(int_buf), int_start, length, lo, hi, code, out, rows, cols)
        return
    vals = np.zeros((mz_start.size, lo.size), dtype=np.float64)
    _window_reduce_numpy(mz_buf, mz_start, int_buf, int_start, length, lo, hi, code, vals)
    out[rows[:, None], cols[None, :]] = vals.T


class BinPlan(NamedTuple):
    """Windows split into layers of disjoint windows, each with its lookup table (see :func:`bin_plan`)."""

    layers: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float], ...]
    """Per layer: (indices into the sorted windows, lo, hi, table, base, inv_w)."""


_BIN_CELLS = 1 << 21  # cap of one layer's lookup table (8 MB of int32)
_BIN_MAX_LAYERS = 4  # windows overlapping more than this stay with the per-target search


def bin_plan(lo: np.ndarray, hi: np.ndarray, max_layers: int = _BIN_MAX_LAYERS) -> BinPlan | None:
    """The peak-major plan for sorted windows ``[lo[t], hi[t]]`` (``lo`` ascending), or None.

    One layer when the upper bounds are in the order of the lower ones (the peak-major kernel then finds
    every window that holds a peak); otherwise the windows are dealt greedily, in ``lo`` order, into
    layers of disjoint windows (a peak can then count for one window per layer, as in the per-target
    search). None when more than ``max_layers`` layers would be needed or a bound is not finite.

    Examples
    --------
    >>> plan = bin_plan(np.array([1.0, 1.5, 3.0]), np.array([2.0, 2.5, 4.0]))
    >>> [layer[0].tolist() for layer in plan.layers]
    [[0, 1, 2]]
    >>> plan = bin_plan(np.array([1.0, 1.5, 3.0]), np.array([2.6, 2.5, 4.0]))  # a window inside another
    >>> [layer[0].tolist() for layer in plan.layers]
    [[0, 2], [1]]
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if lo.size == 0 or not (np.isfinite(lo).all() and np.isfinite(hi).all()) or np.any(hi < lo):
        return None
    if lo.size == 1 or bool(np.all(hi[1:] >= hi[:-1])):
        # upper bounds in the same order as the lower ones (always so for one ppm or Da tolerance): the
        # windows that hold a peak are consecutive, one layer takes them all
        groups = [np.arange(lo.size)]
    else:
        ends: list[float] = []
        members: list[list[int]] = []
        for t in range(lo.size):
            for k, end in enumerate(ends):
                if end < lo[t]:
                    ends[k] = hi[t]
                    members[k].append(t)
                    break
            else:
                if len(ends) == max_layers:
                    return None
                ends.append(hi[t])
                members.append([t])
        groups = [np.asarray(m, dtype=np.int64) for m in members]
    layers = []
    for idx in groups:
        lo_l, hi_l = np.ascontiguousarray(lo[idx]), np.ascontiguousarray(hi[idx])
        span = float(hi_l[-1] - lo_l[0])
        # cells no wider than the narrowest window (few forward steps per peak), but at most 64 per window
        # and 2 M in all, so that the table stays in cache (measured: 64 per window, 370 KB for 1,500
        # windows over m/z 100-1,000, is 40 % faster per peak than one cell per narrowest width, 3.5 MB)
        width = max(float(np.min(hi_l - lo_l)), span / (64 * lo_l.size), span / _BIN_CELLS)
        if not width > 0:
            width = 1.0
        n_c = int(span / width) + 1
        cell_lo = lo_l[0] + np.arange(n_c, dtype=np.float64) * width
        # one cell of slack: a rounding error in the peak's cell can only land it one cell too far
        table = np.minimum(np.searchsorted(hi_l, cell_lo - width, side="left"), lo_l.size - 1).astype(np.int32)
        layers.append((idx, lo_l, hi_l, table, float(lo_l[0]), 1.0 / width))
    return BinPlan(tuple(layers))


def peak_major_layers(plan: BinPlan, mz_buf: np.ndarray, mz_start: np.ndarray, length: np.ndarray) -> tuple[bool, ...]:
    """Per layer of ``plan``: whether the peak-major kernel should beat the per-target search on spectra
    like these (the first 32 of a chunk, spread out).

    The peak-major kernel costs about ``_PEAK_NS`` per peak inside the layer's span, the per-target search
    about ``_TARGET_NS`` per window (both measured on workload A of benchmarks/msi_ion_images.py: 5 and
    11 ns); so thousands of dense windows go peak-major, a few hundred spread over the spectrum do not.
    """
    if mz_start.size == 0:
        return tuple(False for _ in plan.layers)
    sample = np.unique(np.linspace(0, mz_start.size - 1, min(32, mz_start.size)).astype(np.int64))
    spectra = [mz_buf[mz_start[i] : mz_start[i] + length[i]] for i in sample]
    flags = []
    for _idx, lo_l, hi_l, *_ in plan.layers:
        inside = [int(np.searchsorted(m, hi_l[-1], side="right")) - int(np.searchsorted(m, lo_l[0], side="left"))
                  for m in spectra]
        flags.append(bool(_PEAK_NS * float(np.median(inside)) < _TARGET_NS * lo_l.size))
    return tuple(flags)


_PEAK_NS = 5.0
_TARGET_NS = 11.0


def window_bin_into(
    out: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    mz_buf: np.ndarray,
    mz_start: np.ndarray,
    int_buf: np.ndarray,
    int_start: np.ndarray,
    length: np.ndarray,
    plan: BinPlan,
    peak_major: Sequence[bool],
    reduce: str = "sum",
) -> None:
    """:func:`window_reduce_into` (numba engine) for the sorted windows of ``plan``: each layer with
    ``peak_major`` set by the peak-major kernel (every peak binned once), the others by the per-target
    search; the same values, bit for bit, either way."""
    if not HAVE_NUMBA:  # pragma: no cover - the dataset only plans bins with numba
        raise ImportError("the peak-major kernel needs numba; pip install numba")
    code = REDUCE_CODES[reduce]
    if mz_start.size == 0:
        return
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    for (idx, lo_l, hi_l, table, base, inv_w), binned in zip(plan.layers, peak_major, strict=True):
        if not binned:
            _window_reduce_nb(_ro(mz_buf), mz_start, _ro(int_buf), int_start, length, lo_l, hi_l, code, out,
                              rows[idx], cols)
            continue
        # a tile's accumulators within ~1 MB (this machine's L2 per core): measured on workload A with
        # 9,344 windows, 14 spectra per tile is 50 us per spectrum, 3 is 68, 64 is 59 (the image-stack
        # writes are runs of ``tile`` values per window: too short a run costs a cache line each)
        tile = max(1, min(_TILE, mz_start.size, 2**20 // (8 * lo_l.size)))
        acc = np.zeros((tile, lo_l.size), dtype=np.float64)
        cnt = np.zeros((tile, lo_l.size) if code != 0 else (1, 1), dtype=np.int64)
        _window_bin_nb(_ro(mz_buf), mz_start, _ro(int_buf), int_start, length, lo_l, hi_l, table, base, inv_w, code,
                       out, rows[idx], cols, acc, cnt)


def shared_axis_bounds(axis: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Index ranges ``[a[t], b[t])`` of the windows ``[lo[t], hi[t]]`` on one shared m/z axis, or None.

    ``a`` is the first index with ``axis >= lo``, ``b`` the first with ``axis > hi`` (never below
    ``a``): exactly the peaks the per-spectrum search of :func:`window_reduce_into` takes, provided the
    axis is ascending and free of NaN; for any other axis None is returned (use the per-spectrum search).

    Examples
    --------
    >>> a, b = shared_axis_bounds(np.array([1.0, 2.0, 3.0]), np.array([0.5, 2.0, 2.5]), np.array([2.0, 2.0, 2.6]))
    >>> a.tolist(), b.tolist()
    ([0, 1, 2], [2, 2, 2])
    """
    ax = np.asarray(axis, dtype=np.float64)
    if np.isnan(ax).any() or bool(np.any(ax[1:] < ax[:-1])):
        return None
    a = np.searchsorted(ax, lo, side="left").astype(np.int64)
    b = np.maximum(np.searchsorted(ax, hi, side="right").astype(np.int64), a)
    return a, b


def window_reduce_shared_into(
    out: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    int_buf: np.ndarray,
    int_start: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    reduce: str = "sum",
    engine: str = "auto",
) -> None:
    """:func:`window_reduce_into` for spectra that share one m/z axis, with the windows' index ranges
    ``[a[t], b[t])`` on that axis from :func:`shared_axis_bounds` (no search per spectrum).

    Gives the same values, bit for bit, as :func:`window_reduce_into` with the same engine.
    """
    code = REDUCE_CODES[reduce]
    if int_start.size == 0 or a.size == 0:
        return
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    a = np.ascontiguousarray(a, dtype=np.int64)
    b = np.ascontiguousarray(b, dtype=np.int64)
    int_start = np.ascontiguousarray(int_start, dtype=np.int64)
    if use_numba(engine):
        _window_reduce_shared_nb(_ro(int_buf), int_start, a, b, code, out, rows, cols)
        return
    n_s = int_start.size
    vals = np.zeros((n_s, a.size), dtype=np.float64)
    length = np.full(n_s, 0, dtype=np.int64)
    if n_s:
        length[:] = int(b.max())  # only [0, max b) of each spectrum is read
    _window_reduce_numpy(None, None, int_buf, int_start, length, None, None, code, vals, bounds=(a, b))
    out[rows[:, None], cols[None, :]] = vals.T


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view, so that numba compiles one specialisation per dtype, not two."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def use_numba(engine: str) -> bool:
    """Whether the compiled kernels run for ``engine`` ("auto": when numba is installed)."""
    if engine == "numba":
        if not HAVE_NUMBA:
            raise ImportError("engine='numba' was requested but numba is not installed; pip install numba")
        return True
    if engine == "numpy":
        return False
    if engine != "auto":
        raise ValueError(f"engine must be 'auto', 'numba' or 'numpy', got {engine!r}")
    return HAVE_NUMBA


def _window_reduce_numpy(mz_buf, mz_start, int_buf, int_start, length, lo, hi, code, out, bounds=None):
    """Vectorised over targets: one searchsorted per spectrum (or the shared ``bounds``), one reduceat per chunk."""
    n_s, n_t = out.shape
    segs = [int_buf[int_start[i] : int_start[i] + length[i]] for i in range(n_s)]
    flat = np.concatenate(segs + [np.zeros(1, dtype=int_buf.dtype)]).astype(np.float64, copy=False)
    seg0 = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    if bounds is not None:
        a_all = np.broadcast_to(bounds[0], (n_s, n_t))
        b_all = np.broadcast_to(bounds[1], (n_s, n_t))
    else:
        a_all = np.empty((n_s, n_t), dtype=np.int64)
        b_all = np.empty((n_s, n_t), dtype=np.int64)
        for i in range(n_s):
            m = mz_buf[mz_start[i] : mz_start[i] + length[i]]
            a_all[i] = np.searchsorted(m, lo, side="left")
            b_all[i] = np.searchsorted(m, hi, side="right")
    a_g = a_all + seg0[:-1, None]
    b_g = b_all + seg0[:-1, None]
    idx = np.empty(2 * a_g.size, dtype=np.int64)
    idx[0::2] = a_g.ravel()
    idx[1::2] = b_g.ravel()
    # the last element of ``flat`` is a zero sentinel, so every index is valid
    ufunc = np.maximum if code == 1 else np.add
    red = ufunc.reduceat(flat, idx)[0::2].reshape(n_s, n_t)
    cnt = b_all - a_all
    red = np.where(cnt > 0, red, 0.0)
    if code == 2:
        red = np.divide(red, cnt, out=np.zeros_like(red), where=cnt > 0)
    out[...] = red
    return out


def spectrum_stats(int_buf: np.ndarray, int_start: np.ndarray, length: np.ndarray, engine: str = "auto") -> np.ndarray:
    """Per spectrum ``[sum, sum of squares, count, max]`` (float64, shape ``(n, 4)``).

    Examples
    --------
    >>> import numpy as np
    >>> spectrum_stats(np.array([1.0, 2.0, 2.0]), np.array([0, 1]), np.array([1, 2])).tolist()
    [[1.0, 1.0, 1.0, 1.0], [4.0, 8.0, 2.0, 2.0]]
    """
    out = np.zeros((int_start.size, 4), dtype=np.float64)
    if int_start.size == 0:
        return out
    if use_numba(engine):
        _spectrum_stats_nb(_ro(int_buf), int_start, length, out)
        return out
    for i in range(int_start.size):
        v = np.asarray(int_buf[int_start[i] : int_start[i] + length[i]], dtype=np.float64)
        if v.size:
            out[i] = (v.sum(), np.dot(v, v), v.size, v.max())
    return out
