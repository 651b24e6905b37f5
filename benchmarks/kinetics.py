"""Voxel-wise extended Tofts on a 128 x 128 x 32 volume with 80 frames: multiscale (dask, chunked) vs curve_fit.

Workload (issue 15): 524,288 voxels x 80 frames (4 s apart), Parker AIF (plasma, Hct 0.42, from 20 s), random
Ktrans in [0.01, 0.35] /min, ve in [0.05, 0.5], vp in [0, 0.1], Gaussian noise SD 0.01 mM. The series is made
chunk by chunk inside the dask graph, so neither the input nor the fit is ever whole in memory.

* multiscale: :func:`multiscale.analysis.kinetics.fit_dce` on a dask array chunked (``--chunk-z``, 128, 128)
  spatially (4 x 128 x 128 = 65,536 voxels per chunk by default), computed with the threaded scheduler on
  ``--workers`` threads; wall time, peak RSS.
* anchor: ``scipy.optimize.curve_fit`` voxel by voxel (the model evaluated with the same exact convolution for
  one voxel), timed on a random subsample of ``--anchor-voxels`` voxels and extrapolated to the volume.
* accuracy: the fraction of voxels within the community tolerances (Ktrans 0.005 /min + 10 %, ve 0.05, vp 0.025)
  for both, on the anchor's subsample.

Command: ``nice .venv/bin/python benchmarks/kinetics.py [--repeats 1] [--workers 2] [--anchor-voxels 300]``
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multiscale.analysis.kinetics import fit_dce, models, population_aif  # noqa: E402

SHAPE = (32, 128, 128)
T = np.arange(80) * 4.0
CP = population_aif("parker", T, delay=20.0, hematocrit=0.42)
NOISE = 0.01


def _params(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.01, 0.35, shape), rng.uniform(0.05, 0.5, shape), rng.uniform(0.0, 0.1, shape)


def _block(block_id: tuple[int, ...], chunks: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """The synthetic concentrations of one chunk (its parameters seeded by the chunk's position)."""
    shape = tuple(chunks[i][block_id[i]] for i in range(3))
    seed = 1000 + block_id[0] * 10000 + block_id[1] * 100 + block_id[2]
    kt, ve, vp = _params(shape, seed)
    rng = np.random.default_rng(seed + 1)
    c = models.etofts(T, CP, kt.ravel(), ve.ravel(), vp.ravel()) + rng.normal(0, NOISE, (kt.size, T.size))
    return c.reshape(shape + (T.size,)).astype(np.float32)


def multiscale_run(workers: int, chunk_z: int) -> tuple[float, object]:
    import dask
    import dask.array as da

    chunks = ((chunk_z,) * (SHAPE[0] // chunk_z), (SHAPE[1],), (SHAPE[2],), (T.size,))
    src = da.map_blocks(lambda block_id=None: _block(block_id[:3], chunks[:3]), dtype=np.float32, chunks=chunks)
    ds = fit_dce(src, T, CP, model="etofts")
    t0, c0 = time.perf_counter(), time.process_time()
    with dask.config.set(scheduler="threads", num_workers=workers):
        ktrans = ds.ktrans.data.compute()
    return time.perf_counter() - t0, ktrans, time.process_time() - c0


def anchor_run(n: int, seed: int) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]:
    from scipy.optimize import curve_fit

    kt, ve, vp = _params((n,), seed)
    rng = np.random.default_rng(seed + 1)
    c = models.etofts(T, CP, kt, ve, vp) + rng.normal(0, NOISE, (n, T.size))

    def f(t, ktrans, ve_, vp_):
        return models.etofts(t, CP, ktrans, ve_, vp_)

    out = np.full((n, 3), np.nan)
    t0 = time.process_time()
    for i in range(n):
        try:
            out[i], _ = curve_fit(f, T, c[i], p0=(0.1, 0.2, 0.02), bounds=([0, 1e-3, 0], [5, 1, 1]))
        except RuntimeError:
            pass
    dt = time.process_time() - t0  # single-threaded: CPU time = its wall time on an idle core
    ours = fit_dce(c, T, CP, model="etofts")
    truth = {"ktrans": kt, "ve": ve, "vp": vp}
    return dt, {"ktrans": out[:, 0], "ve": out[:, 1], "vp": out[:, 2]}, {"truth": truth, "ours": ours}


def _ok(est: dict, truth: dict) -> float:
    good = (
        (np.abs(est["ktrans"] - truth["ktrans"]) <= 0.005 + 0.1 * truth["ktrans"])
        & (np.abs(est["ve"] - truth["ve"]) <= 0.05)
        & (np.abs(est["vp"] - truth["vp"]) <= 0.025)
    )
    return float(np.mean(good))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-z", type=int, default=4)
    ap.add_argument("--anchor-voxels", type=int, default=300)
    a = ap.parse_args()
    nvox = int(np.prod(SHAPE))
    print(
        f"volume {SHAPE} x {T.size} frames = {nvox} voxels; chunk {a.chunk_z} x 128 x 128 "
        f"({a.chunk_z * 128 * 128} voxels, {a.chunk_z * 128 * 128 * T.size * 4 / 2**20:.0f} MB of float32 input)"
    )
    times, cpus = [], []
    for r in range(a.repeats):
        dt, kt, cpu = multiscale_run(a.workers, a.chunk_z)
        times.append(dt)
        cpus.append(cpu)
        print(
            f"  multiscale run {r + 1}: {dt:.1f} s wall, {cpu:.1f} s CPU (all threads; includes making the "
            f"synthetic series), NaN {int(np.isnan(kt).sum())}"
        )
    ms = float(np.median(times))
    print(f"load average at the end of the fit: {os.getloadavg()[0]:.1f} (2 cores; > 2 means shared)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    adt, anchor, extra = anchor_run(a.anchor_voxels, seed=7)
    per = adt / a.anchor_voxels
    est = per * nvox
    ours = {k: extra["ours"][k].values for k in ("ktrans", "ve", "vp")}
    cpu = float(np.median(cpus))
    print(
        f"multiscale fit_dce (etofts, dask threads x{a.workers}): {ms:.1f} s wall (median of {a.repeats}), "
        f"{cpu:.1f} s CPU -> {cpu / a.workers:.1f} s on {a.workers} idle cores; peak RSS {rss:.0f} MB"
    )
    print(
        f"curve_fit voxel by voxel: {per * 1e3:.2f} ms CPU/voxel on {a.anchor_voxels} voxels -> {est:.0f} s "
        "extrapolated (one core)"
    )
    print(
        f"ratio curve_fit / multiscale (wall): {est / ms:.0f}x; by CPU: {est / cpu:.0f}x (target >= 50x); "
        f"target < 60 s on 2 cores: wall {'met' if ms < 60 else 'NOT met'}, "
        f"CPU/{a.workers} {'met' if cpu / a.workers < 60 else 'NOT met'}"
    )
    print(
        f"within tolerances on the subsample: multiscale {_ok(ours, extra['truth']):.3f}, "
        f"curve_fit {_ok(anchor, extra['truth']):.3f}"
    )


if __name__ == "__main__":
    main()
