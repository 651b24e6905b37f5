"""Continuous imzML files: the windows are found once on the shared m/z axis (issue 22, item 3).

The shared-axis path must give the very same images (assert_array_equal) as the per-spectrum search
that processed files use, on the same data, and as a per-spectrum pyimzML reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyimzml.ImzMLParser import ImzMLParser
from pyimzml.ImzMLWriter import ImzMLWriter

from multiscale.io import _imzml_kernels, read_imzml
from multiscale.io.imzml import mz_windows
from tests.io.test_imzml import reference_images

pytestmark = pytest.mark.filterwarnings("ignore:.*no pixel size")

ENGINES = ["numpy"] + (["numba"] if _imzml_kernels.HAVE_NUMBA else [])


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _continuous_file(tmp_path, mz_dtype=np.float64, int_dtype=np.float32, nx=5, ny=4, bins=60):
    rng = np.random.default_rng(11)
    axis = np.sort(rng.uniform(100.0, 400.0, bins)).astype(mz_dtype)
    axis[10] = axis[11]  # a repeated m/z value on the axis
    path = tmp_path / "cont.imzML"
    written = []
    with ImzMLWriter(str(path), mz_dtype=mz_dtype, intensity_dtype=int_dtype, mode="continuous", spec_type="profile") as w:
        for y in range(1, ny + 1):
            for x in range(1, nx + 1):
                it = rng.gamma(2.0, 50.0, bins)
                k = (x * 7 + y * 3) % bins
                it[k] = np.nan  # NaN and inf in some spectra, at varying bins
                it[(k + 5) % bins] = np.inf if (x + y) % 2 else -np.inf
                it[(k + 9) % bins] = -0.0
                it = it.astype(int_dtype)
                w.addSpectrum(axis, it, (x, y))
                written.append(((x, y), axis.copy(), it))
    return path, axis.astype(np.float64), written


def _windows(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows at both ends of the axis and beyond, empty ones between bins, exact bin hits, wide and
    overlapping ones, a repeated m/z, in no particular order."""
    d = np.diff(axis)
    gap = int(np.argmax(d))
    lo = [axis[0], axis[0] - 5.0, 10.0, axis[-1], axis[-1] - 1e-9, axis[-1] + 1.0,
          axis[gap] + d[gap] / 3, axis[7], axis[7], axis[5], axis[10], 150.0, 160.0, axis[3] - 1e-12, 100.0]
    hi = [axis[0], axis[2], 20.0, axis[-1], 500.0, axis[-1] + 2.0,
          axis[gap] + d[gap] / 2, axis[7], axis[20], axis[12], axis[11], 250.0, 240.0, axis[30], 400.0]
    return np.array(lo), np.array(hi)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("reduce", ["sum", "max", "mean"])
@pytest.mark.parametrize("dtypes", [(np.float64, np.float32), (np.float32, np.float64)])
def test_shared_axis_path_equals_per_spectrum_search_and_pyimzml(tmp_path, engine, reduce, dtypes) -> None:
    path, axis, written = _continuous_file(tmp_path, *dtypes)
    lo, hi = _windows(axis)
    targets = 0.5 * (lo + hi)
    tol = 0.5 * (hi - lo)
    # the windows are given as centre +- half-width in Da; use the windows as they come out
    lo, hi = mz_windows(targets, tol, "da")
    ds = read_imzml(path, engine=engine, chunk_bytes=700)  # several spectra per chunk, several chunks
    assert ds.metadata["mode"] == "continuous" and ds._shared_mz()
    new = ds.ion_images(targets, tol=tol, tol_unit="da", reduce=reduce)
    ds._shared_axis_path = False  # force the per-spectrum search (the processed-file kernel)
    old = ds.ion_images(targets, tol=tol, tol_unit="da", reduce=reduce)
    np.testing.assert_array_equal(new.values, old.values)
    one_chunk = read_imzml(path, engine=engine, chunk_bytes=1 << 30).ion_images(targets, tol=tol, tol_unit="da", reduce=reduce)
    np.testing.assert_array_equal(one_chunk.values, new.values)
    # independent reference: pyimzML's spectra and boolean masks (summation order may differ: rtol 1e-12).
    # NaN inside a window: the sum is NaN whichever the order; numba's max keeps NaN only when it is the
    # window's first value, numpy's maximum keeps any NaN
    parser = ImzMLParser(str(path))
    ref = reference_images(parser.getspectrum, len(written), parser.coordinates, targets, lo, hi, "sum" if reduce == "max" else reduce, (4, 5))
    parser.m.close()
    if reduce == "max":
        ref = np.zeros_like(ref)
        for (x, y), m, v in written:
            m, v = m.astype(np.float64), v.astype(np.float64)
            for k in range(targets.size):
                w = v[(m >= lo[k]) & (m <= hi[k])]
                if w.size:
                    first_nan = np.isnan(w[0])
                    ref[k, y - 1, x - 1] = np.max(w) if (engine == "numpy" or first_nan) else np.nanmax(w)
    np.testing.assert_allclose(new.values, ref, rtol=1e-12, equal_nan=True)
    assert np.isnan(new.values).any() and np.isinf(new.values).any() and (new.values == 0).any()
    assert (np.abs(np.nan_to_num(new.values)) > 0).sum() > 50


@pytest.mark.parametrize("engine", ENGINES)
def test_shared_axis_numba_and_numpy_kernels_agree_on_slices(engine) -> None:
    """The kernel alone: interleaved spectra (not contiguous), overlapping and empty ranges, float32 output."""
    rng = np.random.default_rng(5)
    n_s, L = 6, 40
    axis = np.sort(rng.uniform(0, 10, L))
    buf = rng.normal(0, 1, n_s * L + 13).astype(np.float32)
    buf[[3, 50, 77]] = [np.nan, np.inf, -np.inf]
    start = (np.arange(n_s) * L + rng.integers(0, 13, n_s)).astype(np.int64)[::-1].copy()
    lo = np.sort(rng.uniform(-1, 11, 30))
    hi = lo + rng.uniform(-0.5, 3, 30)
    a, b = _imzml_kernels.shared_axis_bounds(axis, lo, hi)
    for reduce in ("sum", "max", "mean"):
        for dt in (np.float64, np.float32):
            got = np.full((30, n_s), 7.0, dtype=dt)
            _imzml_kernels.window_reduce_shared_into(got, np.arange(30), np.arange(n_s), buf, start, a, b, reduce, engine)
            want = np.full((30, n_s), 7.0, dtype=dt)
            _imzml_kernels.window_reduce_into(
                want, np.arange(30), np.arange(n_s), axis, np.zeros(n_s, np.int64), buf, start, np.full(n_s, L), lo, hi, reduce, engine
            )
            np.testing.assert_array_equal(got, want)


def test_unsorted_or_nan_axis_keeps_the_per_spectrum_search() -> None:
    lo, hi = np.array([1.0]), np.array([2.0])
    assert _imzml_kernels.shared_axis_bounds(np.array([1.0, 3.0, 2.0]), lo, hi) is None
    assert _imzml_kernels.shared_axis_bounds(np.array([1.0, np.nan, 2.0]), lo, hi) is None
    a, b = _imzml_kernels.shared_axis_bounds(np.array([1.0, 1.0, 2.0, 2.0, 3.0]), np.array([1.0, 2.5, 4.0]), np.array([2.0, 2.4, 5.0]))
    assert a.tolist() == [0, 4, 5] and b.tolist() == [4, 4, 5]
