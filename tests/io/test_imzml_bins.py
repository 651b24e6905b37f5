"""Processed imzML files with many targets: the peak-major kernel (each peak binned once into its window)
must give the very same images (assert_array_equal) as one search per target, for sum, max and mean,
overlapping windows (layers), NaN intensities, float32/float64 m/z, and chunks reduced on threads."""

from __future__ import annotations

import numpy as np
import pytest
from pyimzml.ImzMLWriter import ImzMLWriter

from multiscale.io import _imzml_kernels, imzml, read_imzml

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no pixel size"),
    pytest.mark.skipif(not _imzml_kernels.HAVE_NUMBA, reason="the peak-major kernel is compiled with numba"),
]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _processed_file(tmp_path, mz_dtype, nx=9, ny=7, pool_size=400):
    rng = np.random.default_rng(5)
    pool = np.sort(rng.uniform(100.0, 900.0, pool_size))
    path = tmp_path / f"proc_{np.dtype(mz_dtype).name}.imzML"
    with ImzMLWriter(str(path), mz_dtype=mz_dtype, intensity_dtype=np.float32, mode="processed") as w:
        for y in range(1, ny + 1):
            for x in range(1, nx + 1):
                n = int(rng.integers(1, 250)) if (x, y) != (2, 2) else 1  # one single-peak spectrum
                mz = np.sort(rng.choice(pool, n) * (1 + rng.normal(0, 2e-6, n)))
                if n > 3:
                    mz[1] = mz[2]  # a repeated m/z
                it = rng.gamma(2.0, 50.0, n).astype(np.float32)
                if n > 10:
                    it[int(rng.integers(0, n))] = np.nan
                w.addSpectrum(mz.astype(mz_dtype), it, (x, y))
    return path, pool


@pytest.mark.parametrize("mz_dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduce", ["sum", "max", "mean"])
@pytest.mark.parametrize("tolerances", ["mixed", "one"])
def test_peak_major_images_equal_per_target_search(tmp_path, monkeypatch, mz_dtype, reduce, tolerances) -> None:
    path, pool = _processed_file(tmp_path, mz_dtype)
    rng = np.random.default_rng(1)
    # dense targets (the pool and neighbours closer than a window: overlapping windows), windows beyond the
    # data and repeated ones; mixed tolerances (zero-width windows, windows inside others: several layers) or
    # one tolerance (overlapping windows with upper bounds in order: one layer)
    targets = np.concatenate([pool, pool[::7] * (1 + 4e-6), rng.uniform(50.0, 1000.0, 40), [pool[3]]])
    if tolerances == "mixed":
        tol = np.where(rng.random(targets.size) < 0.1, 0.0, rng.choice([3.0, 5.0, 20.0], targets.size))
    else:
        tol = np.full(targets.size, 5.0)
    ds = read_imzml(path, chunk_bytes=4096)  # many small chunks
    ds.threads = 1
    ds._bin_path = False
    want = ds.ion_images(targets, tol=tol, reduce=reduce).values
    plan = _imzml_kernels.bin_plan(*_sorted_windows(targets, tol))
    assert plan is not None and (len(plan.layers) > 1) == (tolerances == "mixed")
    calls = []
    real = imzml.window_bin_into
    monkeypatch.setattr(imzml, "window_bin_into", lambda *a, **k: (calls.append(a[-2]), real(*a, **k)))
    ds._bin_path = True
    for threads in (1, 2):
        ds.threads = threads
        got = ds.ion_images(targets, tol=tol, reduce=reduce).values
        np.testing.assert_array_equal(got, want)
    assert calls and any(calls[0])  # the peak-major kernel took at least one layer


def _sorted_windows(mz, tol):
    from multiscale.io.imzml import mz_windows

    lo, hi = mz_windows(mz, tol, "ppm")
    order = np.argsort(lo, kind="stable")
    return lo[order], hi[order]


def test_kernel_choice_and_plans() -> None:
    # few targets spread over long spectra: one search per target; thousands packed in a span: peak-major
    mz = np.sort(np.random.default_rng(0).uniform(100.0, 1000.0, 5000))
    start, length = np.array([0]), np.array([mz.size])
    few = _imzml_kernels.bin_plan(np.array([200.0, 600.0]), np.array([200.1, 600.1]))
    assert _imzml_kernels.peak_major_layers(few, mz, start, length) == (False,)
    lo = np.linspace(300.0, 400.0, 3000)
    dense = _imzml_kernels.bin_plan(lo, lo + 0.01)
    assert _imzml_kernels.peak_major_layers(dense, mz, start, length) == (True,)
    # more overlap than the layer limit, or a non-finite bound: no plan (the per-target search is used)
    nested = 1.0 + 0.01 * np.arange(10)  # each window inside the previous one: ten layers would be needed
    assert _imzml_kernels.bin_plan(nested, 3.0 - 0.01 * np.arange(10)) is None
    # overlapping windows of one tolerance (upper bounds in order): one layer
    assert len(_imzml_kernels.bin_plan(np.full(10, 1.0), np.full(10, 2.0)).layers) == 1
    assert _imzml_kernels.bin_plan(np.array([1.0, np.nan]), np.array([2.0, 3.0])) is None


def test_ion_images_into_a_callers_buffer(tmp_path) -> None:
    path, pool = _processed_file(tmp_path, np.float64)
    ds = read_imzml(path)
    want = ds.ion_images(pool[:20], dtype=np.float32).values
    buf = np.full(20 * 9 * 7 + 5, -1.0, dtype=np.float32)
    got = ds.ion_images(pool[:20], out=buf[: 20 * 63])
    np.testing.assert_array_equal(got.values, want)
    assert np.shares_memory(got.values, buf) and (buf[-5:] == -1).all()  # written in place, nothing beyond
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32/float64 array of 20 x 63"):
        ds.ion_images(pool[:20], out=np.empty(20 * 63, dtype=np.int32))
    with pytest.raises(ValueError, match="20 x 63"):
        ds.ion_images(pool[:20], out=np.empty(10 * 63, dtype=np.float32))


def test_passes_inside_a_mapped_block_give_the_same_images(tmp_path) -> None:
    path, pool = _processed_file(tmp_path, np.float64)
    ds = read_imzml(path, chunk_bytes=4096)
    want = [ds.ion_images(pool[k : k + 100], dtype=np.float32).values for k in (0, 100, 200)]
    for threads in (1, 2):
        ds.threads = threads
        with ds.mapped():
            whole = ds._whole
            assert whole is not None
            with ds.mapped():  # nested: the outer mapping is kept
                assert ds._whole is whole
            got = [ds.ion_images(pool[k : k + 100], dtype=np.float32).values for k in (0, 100, 200)]
            assert ds._whole is whole
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        assert ds._whole is None and whole.closed  # released when the block ends
    # an error inside the block still releases the mapping
    with pytest.raises(RuntimeError, match="boom"):
        with ds.mapped():
            whole = ds._whole
            raise RuntimeError("boom")
    assert ds._whole is None and whole.closed
