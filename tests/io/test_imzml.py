"""imzML reading: real reference files, every storage mode and data type, geometry, cache, integrity."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from pyimzml.compression import NoCompression, ZlibCompression
from pyimzml.ImzMLParser import ImzMLParser
from pyimzml.ImzMLWriter import ImzMLWriter

from multiscale.image import origin, spacing, validate
from multiscale.io import MSIDataset, _imzml_kernels, read_imzml
from multiscale.io._imzml_parse import ImzMLWarning, repair_signed_offsets
from multiscale.io.imzml import mz_windows
from tests.io.test_imzml_files import grid, random_spectra, write_imzml

ENGINES = ["numpy"] + (["numba"] if _imzml_kernels.HAVE_NUMBA else [])


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Index caches of read-only folders go to a temporary user cache, never into ~/.cache."""
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def reference_images(spectra_of, n: int, coords, mz, lo, hi, reduce="sum", shape=None, x0=1, y0=1):
    """Per-spectrum reference with boolean masks (independent of the searchsorted kernels)."""
    ny, nx = shape
    out = np.zeros((len(mz), ny, nx))
    for i in range(n):
        m, v = spectra_of(i)
        m = np.asarray(m, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        x, y = coords[i][0], coords[i][1]
        for k in range(len(mz)):
            sel = (m >= lo[k]) & (m <= hi[k])
            if reduce == "sum":
                val = v[sel].sum()
            elif reduce == "max":
                val = v[sel].max() if sel.any() else 0.0
            else:
                val = v[sel].mean() if sel.any() else 0.0
            out[k, y - y0, x - x0] = val
    return out


# --------------------------------------------------------------------------------------------
# the real imzML.org example files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_reference_examples_match_pyimzml_getspectrum(reference_data: Path, engine: str) -> None:
    folder = reference_data / "imzml"
    targets = [151.0, 302.07, 455.5, 650.12, 799.9]
    images = {}
    for name in ("Continuous", "Processed"):
        path = folder / f"Example_{name}.imzML"
        ds = read_imzml(path, engine=engine)
        parser = ImzMLParser(str(path))
        for unit, tol in (("ppm", 50.0), ("da", 0.3)):
            lo, hi = mz_windows(targets, tol, unit)
            for reduce in ("sum", "max", "mean"):
                img = ds.ion_images(targets, tol=tol, tol_unit=unit, reduce=reduce)
                ref = reference_images(
                    parser.getspectrum, len(parser.coordinates), parser.coordinates, targets, lo, hi, reduce, (3, 3)
                )
                assert ref.max() > 0
                np.testing.assert_allclose(img.values, ref, rtol=1e-9, atol=0)
                images[(name, unit, reduce)] = img.values
        tic = ds.tic()
        ref_tic = np.zeros((3, 3))
        for i, (x, y, _) in enumerate(parser.coordinates):
            ref_tic[y - 1, x - 1] = parser.getspectrum(i)[1].astype(np.float64).sum()
        np.testing.assert_allclose(tic.values, ref_tic, rtol=1e-12)
    for key in [k for k in images if k[0] == "Continuous"]:
        np.testing.assert_array_equal(images[key], images[("Processed",) + key[1:]])


def test_reference_example_geometry_metadata_and_checksum(reference_data: Path) -> None:
    path = reference_data / "imzml" / "Example_Continuous.imzML"
    before = sorted(os.listdir(path.parent))
    ds = read_imzml(path)
    img = ds.ion_images(500.0, tol=5)
    validate(img)
    assert img.dims == ("c", "y", "x")
    assert img.coords["c"].values.tolist() == [500.0]
    assert spacing(img) == pytest.approx((0.1, 0.1))  # 100 um pixels
    assert origin(img) == pytest.approx((0.0, 0.0))  # 1-based position 1 sits at 0 mm
    assert img.attrs["modality"] == "MSI" and img.attrs["units"] == "counts"
    assert img.attrs["agent"] == "m/z 500.0000 ± 5 ppm"
    assert img.attrs["provenance"]["source"] == str(path)
    m = ds.metadata
    assert (m["polarity"], m["spectrum_type"], m["mode"]) == ("negative", "profile", "continuous")
    assert m["instrument"] == "LTQ FT Ultra"
    assert ds.coordinates.shape == (9, 3)
    assert ds.verify_checksum() is True  # the file's own SHA-1
    # the cache never lands in the read-only reference folder
    assert sorted(os.listdir(path.parent)) == before
    assert ds.cache_path is not None and path.parent not in ds.cache_path.parents


def test_reference_spectrum_and_mean_spectrum(reference_data: Path) -> None:
    path = reference_data / "imzml" / "Example_Continuous.imzML"
    ds = read_imzml(path)
    parser = ImzMLParser(str(path))
    i = parser.coordinates.index((2, 3, 1))
    mz, it = ds.spectrum(2, 3)
    ref_mz, ref_it = parser.getspectrum(i)
    np.testing.assert_array_equal(mz, ref_mz)
    np.testing.assert_array_equal(it, ref_it)
    axis, mean = ds.mean_spectrum()
    ref = np.mean([parser.getspectrum(k)[1].astype(np.float64) for k in range(9)], axis=0)
    np.testing.assert_array_equal(axis, ref_mz.astype(np.float64))
    np.testing.assert_allclose(mean, ref, rtol=1e-12)
    with pytest.raises(KeyError, match="no spectrum at file position x=7"):
        ds.spectrum(7, 1)


# --------------------------------------------------------------------------------------------
# pyimzML's writer: every storage mode, data type and compression
# --------------------------------------------------------------------------------------------


def _pyimzml_file(tmp_path: Path, mode: str, mz_dtype, int_dtype, compression, rng):
    """Write with pyimzML's ImzMLWriter; return the path and the spectra as stored (after dtype casts)."""
    path = tmp_path / f"w_{mode}.imzML"
    axis = np.sort(rng.uniform(100, 400, 60))
    written = []
    with ImzMLWriter(
        str(path), mz_dtype=mz_dtype, intensity_dtype=int_dtype, mode=mode, mz_compression=compression(),
        intensity_compression=compression(), polarity="positive", spec_type="centroid",
    ) as w:
        for x, y in grid(4, 3):
            mz = axis if mode == "continuous" else np.sort(rng.uniform(100, 400, int(rng.integers(20, 60))))
            it = rng.integers(1, 10_000, mz.size) if np.dtype(int_dtype).kind == "i" else rng.uniform(0, 1e4, mz.size)
            w.addSpectrum(mz, it.astype(int_dtype), (x, y))
            written.append(((x, y), mz.astype(mz_dtype), it.astype(int_dtype)))
    return path, written


@pytest.mark.parametrize("mode", ["continuous", "processed"])
@pytest.mark.parametrize("mz_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("int_dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("compression", [NoCompression, ZlibCompression])
def test_pyimzml_written_files_every_mode_and_type(tmp_path, mode, mz_dtype, int_dtype, compression) -> None:
    rng = np.random.default_rng(7)
    path, written = _pyimzml_file(tmp_path, mode, mz_dtype, int_dtype, compression, rng)
    with pytest.warns(ImzMLWarning, match="no pixel size"):
        ds = read_imzml(path)
    assert ds.metadata["mode"] == mode
    assert ds.metadata["intensity_dtype"] == np.dtype(int_dtype).name
    assert ds.metadata["compression"]["intensity"] == ("zlib" if compression is ZlibCompression else "none")
    stored = written[0][1].astype(np.float64)
    targets = np.concatenate([stored[[3, 9, 15]], stored[5:17:2] + 0.3, rng.uniform(110, 390, 3)])  # on, near, random
    lo, hi = mz_windows(targets, 0.8, "da")
    coords = [w[0] for w in written]
    ref = reference_images(lambda i: written[i][1:], 12, coords, targets, lo, hi, "sum", (3, 4))
    assert (ref > 0).sum() > 20
    if compression is NoCompression:  # pyimzML's parser does not decode zlib; compare with it only here
        parser = ImzMLParser(str(path))
        ref_p = reference_images(parser.getspectrum, 12, parser.coordinates, targets, lo, hi, "sum", (3, 4))
        np.testing.assert_array_equal(ref_p, ref)
        parser.m.close()
    for engine in ENGINES:
        ds.engine = engine
        img = ds.ion_images(targets, tol=0.8, tol_unit="da")
        np.testing.assert_allclose(img.values, ref, rtol=1e-12)
    i = 7
    mz, it = ds.spectrum(*written[i][0])
    np.testing.assert_array_equal(mz, written[i][1])
    np.testing.assert_array_equal(it, written[i][2])
    assert img.attrs["spacing_known"] is False and spacing(img) == (1.0, 1.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_many_targets_one_pass_equals_one_at_a_time(tmp_path, engine) -> None:
    rng = np.random.default_rng(3)
    spectra = random_spectra(grid(5, 4), rng, n_peaks=300)
    ds = read_imzml(write_imzml(tmp_path / "m.imzML", spectra), engine=engine, chunk_bytes=3000)
    pool = np.concatenate([s[1] for s in spectra])
    targets = rng.choice(pool, 200, replace=False)  # unsorted, on stored peaks
    tols = rng.uniform(1, 30, targets.size)  # one tolerance per target, overlapping windows
    many = ds.ion_images(targets, tol=tols, tol_unit="ppm", reduce="sum")
    assert many.coords["c"].values.tolist() == targets.tolist()
    for k in rng.choice(targets.size, 8, replace=False):
        one = ds.ion_images(targets[k], tol=tols[k], tol_unit="ppm")
        np.testing.assert_array_equal(many.values[k], one.values[0])
    lo, hi = mz_windows(targets, tols, "ppm")
    ref = reference_images(lambda i: spectra[i][1:], len(spectra), [s[0] for s in spectra], targets, lo, hi, "sum", (4, 5))
    np.testing.assert_allclose(many.values, ref, rtol=1e-12)
    assert ref.min() < ref.max()
    small = ds.ion_images(targets, tol=tols, tol_unit="ppm", dtype=np.float32)
    assert small.dtype == np.float32
    np.testing.assert_allclose(small.values, ref, rtol=1e-6)
    with pytest.raises(ValueError, match="dtype must be float64 or float32"):
        ds.ion_images(targets[:2], dtype=np.int32)


def test_chunk_size_does_not_change_results(tmp_path) -> None:
    rng = np.random.default_rng(4)
    spectra = random_spectra(grid(4, 4), rng, n_peaks=100)
    path = write_imzml(tmp_path / "c.imzML", spectra)
    targets = [s for s in spectra[5][1][::7]]
    a = read_imzml(path, chunk_bytes=1).ion_images(targets, tol=3)  # one spectrum per chunk
    b = read_imzml(path, chunk_bytes=1 << 30).ion_images(targets, tol=3)  # one chunk
    np.testing.assert_array_equal(a.values, b.values)
    assert a.values.max() > 0


# --------------------------------------------------------------------------------------------
# hand-made variants: coordinates, grids, 3-D, data types, pixel size
# --------------------------------------------------------------------------------------------


def test_zero_based_coordinates(tmp_path) -> None:
    rng = np.random.default_rng(5)
    spectra = random_spectra(grid(3, 2, x0=0, y0=0), rng)
    ds = read_imzml(write_imzml(tmp_path / "z.imzML", spectra, pixel_size=(20.0, 20.0)))
    img = ds.tic()
    assert img.shape == (2, 3)
    assert origin(img) == pytest.approx((0.0, 0.0))
    np.testing.assert_allclose(img.values[1, 2], spectra[-1][2].sum())  # (x=2, y=1) -> row 1, column 2


def test_offset_region_and_small_declared_grid(tmp_path) -> None:
    rng = np.random.default_rng(6)
    coords = grid(4, 3, x0=11, y0=21)
    spectra = random_spectra(coords, rng)
    # Cardinal-style: the declared "max count of pixels" (4 x 3) is smaller than the real positions
    ds = read_imzml(write_imzml(tmp_path / "o.imzML", spectra, pixel_size=(25.0, 50.0), declared=(4, 3)))
    img = ds.tic()
    assert img.shape == (3, 4)
    assert spacing(img) == pytest.approx((0.05, 0.025))  # (dy, dx) in mm, x and y differ
    assert origin(img) == pytest.approx((20 * 0.05, 10 * 0.025))  # offset kept: (position - 1) * size
    assert ds.pixel_size == pytest.approx((0.05, 0.025))
    assert ds.metadata["declared_pixels"] == {"x": 4, "y": 3}
    for (x, y), _, it in spectra:
        assert img.values[y - 21, x - 11] == pytest.approx(it.sum())


def test_missing_pixels_hold_fill_value_and_mask(tmp_path) -> None:
    rng = np.random.default_rng(8)
    coords = [c for c in grid(3, 3) if c != (2, 2)]
    spectra = random_spectra(coords, rng)
    ds = read_imzml(write_imzml(tmp_path / "h.imzML", spectra))
    assert ds.tic().values[1, 1] == 0.0
    assert np.isnan(ds.ion_images([200.0], tol=1e5, fill_value=np.nan).values[0, 1, 1])
    mask = ds.pixel_mask().values
    assert mask.sum() == 8 and not mask[1, 1]


def test_three_d_files_get_a_z_dim(tmp_path) -> None:
    rng = np.random.default_rng(9)
    coords = grid(3, 2, z=1) + grid(3, 2, z=2) + grid(3, 2, z=4)
    spectra = random_spectra(coords, rng)
    path = write_imzml(tmp_path / "d3.imzML", spectra)
    ds = read_imzml(path, z_spacing=0.2)
    img = ds.ion_images([150.0, 300.0], tol=2e4)
    assert img.dims == ("c", "z", "y", "x") and img.shape == (2, 3, 2, 3)
    assert spacing(img) == pytest.approx((0.2, 0.01, 0.01))
    assert ds.metadata["z_values"] == [1, 2, 4]
    tic = ds.tic()
    for (x, y, z), _, it in spectra:
        assert tic.values[[1, 2, 4].index(z), y - 1, x - 1] == pytest.approx(it.sum())
    with pytest.warns(ImzMLWarning, match="z_spacing"):
        read_imzml(path)


def test_two_d_file_with_z_zero_is_two_d(tmp_path) -> None:
    spectra = random_spectra(grid(2, 2, z=0), np.random.default_rng(1))
    img = read_imzml(write_imzml(tmp_path / "z0.imzML", spectra)).tic()
    assert img.dims == ("y", "x")


@pytest.mark.parametrize("int_dtype", ["<i4", "<i8", "legacy<i4", "legacy<i8", "<f8", "<f2"])
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_hand_made_data_types(tmp_path, int_dtype, compression) -> None:
    rng = np.random.default_rng(10)
    spectra = random_spectra(grid(3, 3), rng, integer="i" in int_dtype)
    path = write_imzml(tmp_path / "t.imzML", spectra, int_dtype=int_dtype, mz_dtype="<f4", compression=compression)
    ds = read_imzml(path)
    targets = [float(np.float32(spectra[0][1][2])), 333.3]
    lo, hi = mz_windows(targets, 2000, "ppm")
    ref = reference_images(
        lambda i: (spectra[i][1].astype(np.float32), spectra[i][2].astype(int_dtype.replace("legacy", ""))),
        9, [s[0] for s in spectra], targets, lo, hi, "sum", (3, 3),
    )
    np.testing.assert_allclose(ds.ion_images(targets, tol=2000).values, ref, rtol=1e-12)


def test_missing_pixel_size_warns_and_marks_spacing_unknown(tmp_path) -> None:
    spectra = random_spectra(grid(2, 2), np.random.default_rng(11))
    with pytest.warns(ImzMLWarning, match="no pixel size"):
        ds = read_imzml(write_imzml(tmp_path / "p.imzML", spectra, pixel_size=None))
    img = ds.tic()
    assert img.attrs["spacing_known"] is False and spacing(img) == (1.0, 1.0)
    assert ds.metadata["pixel_size_um"] is None


def test_offsets_beyond_4_gb_and_signed_32_bit_offsets(tmp_path) -> None:
    """A sparse .ibd with spectra past 2 GB and past 4 GB, offsets written as signed 32-bit."""
    rng = np.random.default_rng(12)
    spectra = random_spectra(grid(3, 1), rng)
    at = [16, 2**31 + 1000, 2**32 + 5000]
    path = write_imzml(tmp_path / "big.imzML", spectra, offsets_at=at, signed32_offsets=True)
    assert "value=\"-" in path.read_text()  # really negative offsets in the XML
    ds = read_imzml(path)
    assert ds.index.int_offset.max() > 2**32
    np.testing.assert_allclose(ds.tic().values[0], [s[2].sum() for s in spectra])
    mz, it = ds.spectrum(3, 1)
    np.testing.assert_array_equal(it, spectra[2][2].astype(np.float32))


def test_repair_signed_offsets_wraps_each_time() -> None:
    true = np.array([16, 2**31 - 4, 2**31 + 4, 2**32 + 8, 2**32 + 2**31 + 16], dtype=np.int64)
    signed = true.astype(np.uint32).astype(np.int32).astype(np.int64)
    assert signed[2] < 0 and signed[3] >= 0 and signed[4] < 0
    # past 4 GB the signed value is positive again; the 2**32 added at the earlier switch still applies
    np.testing.assert_array_equal(repair_signed_offsets(signed), true)
    np.testing.assert_array_equal(repair_signed_offsets(true), true)


# --------------------------------------------------------------------------------------------
# UUID, checksum, cache
# --------------------------------------------------------------------------------------------


def test_uuid_mismatch_warns_or_raises(tmp_path) -> None:
    spectra = random_spectra(grid(2, 1), np.random.default_rng(13))
    path = write_imzml(tmp_path / "u.imzML", spectra, ibd_uuid=b"\x00" * 16)
    with pytest.warns(ImzMLWarning, match="does not match the .ibd header"):
        read_imzml(path)
    with pytest.raises(ValueError, match="check_uuid='ignore' to read anyway"):
        read_imzml(path, check_uuid="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_imzml(path, check_uuid="ignore")
        # braces, dashes and case do not matter
        good = write_imzml(tmp_path / "g.imzML", spectra, ibd_uuid=bytes(range(16)), xml_uuid="{00010203-0405-0607-0809-0A0B0C0D0E0F}")
        read_imzml(good, check_uuid="raise")


def test_checksum_verification_on_request(tmp_path) -> None:
    rng = np.random.default_rng(14)
    path = tmp_path / "s.imzML"
    with ImzMLWriter(str(path), mode="processed") as w:
        for x, y in grid(2, 2):
            w.addSpectrum(np.sort(rng.uniform(100, 200, 10)), rng.uniform(0, 1, 10), (x, y))
    with pytest.warns(ImzMLWarning):
        ds = read_imzml(path, verify_checksum=True)  # only the missing pixel size warns
    assert ds.verify_checksum() is True
    ibd = path.with_suffix(".ibd")
    data = bytearray(ibd.read_bytes())
    data[-1] ^= 0xFF
    ibd.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_imzml(path, verify_checksum=True)
    assert any(issubclass(w.category, ImzMLWarning) and "SHA1 checksum" in str(w.message) for w in caught)


def test_index_cache_reused_and_invalidated(tmp_path, monkeypatch) -> None:
    import multiscale.io.imzml as mod

    rng = np.random.default_rng(15)
    path = write_imzml(tmp_path / "k.imzML", random_spectra(grid(3, 3), rng))
    ds1 = read_imzml(path)
    # reading never writes beside the user's data: the index goes to the user cache folder
    assert sorted(os.listdir(tmp_path)) == ["k.ibd", "k.imzML"]
    assert ds1.cache_path.is_file() and tmp_path not in ds1.cache_path.parents
    calls = []
    real_parse = mod.parse_imzml
    monkeypatch.setattr(mod, "parse_imzml", lambda p: calls.append(p) or real_parse(p))
    ds2 = read_imzml(path)
    assert calls == []
    np.testing.assert_array_equal(ds2.index.int_offset, ds1.index.int_offset)
    # rewrite the data with other spectra: the cache must be rebuilt
    spectra = random_spectra(grid(2, 2), rng)
    write_imzml(path, spectra)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds3 = read_imzml(path)
    assert len(calls) == 1 and ds3.n_spectra == 4
    np.testing.assert_allclose(ds3.tic().values.ravel(), [s[2].sum() for s in spectra])


def test_cache_goes_to_the_user_folder_whether_or_not_the_data_folder_is_writable(tmp_path, monkeypatch) -> None:
    data = tmp_path / "ro"
    data.mkdir()
    path = write_imzml(data / "r.imzML", random_spectra(grid(2, 2), np.random.default_rng(16)))
    user = tmp_path / "user"
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(user))
    os.chmod(data, 0o555)
    try:
        ds = read_imzml(path)
        assert os.listdir(data) == ["r.ibd", "r.imzML"] or sorted(os.listdir(data)) == ["r.ibd", "r.imzML"]
        assert ds.cache_path is not None and user in ds.cache_path.parents
        assert read_imzml(path).cache_path == ds.cache_path
    finally:
        os.chmod(data, 0o755)
    explicit = read_imzml(path, cache_dir=tmp_path / "mine")
    assert explicit.cache_path.parent == tmp_path / "mine"
    assert read_imzml(path, cache=False).cache_path is None


def test_ibd_with_upper_case_extension_and_ibd_path_given(tmp_path) -> None:
    spectra = random_spectra(grid(2, 1), np.random.default_rng(17))
    path = write_imzml(tmp_path / "Up.imzML", spectra)
    path.with_suffix(".ibd").rename(tmp_path / "Up.IBD")
    ds = read_imzml(path)
    assert ds.ibd_path.name == "Up.IBD"
    assert isinstance(read_imzml(tmp_path / "Up.IBD"), MSIDataset)


# --------------------------------------------------------------------------------------------
# mean spectrum and the lazy datacube
# --------------------------------------------------------------------------------------------


def test_mean_spectrum_processed_is_binned_mean(tmp_path) -> None:
    rng = np.random.default_rng(18)
    spectra = random_spectra(grid(3, 2), rng)
    ds = read_imzml(write_imzml(tmp_path / "ms.imzML", spectra))
    edges = np.linspace(100, 500, 41)
    centres, mean = ds.mean_spectrum(bins=edges)
    np.testing.assert_allclose(centres, 0.5 * (edges[1:] + edges[:-1]))
    allmz = np.concatenate([s[1] for s in spectra])
    allint = np.concatenate([s[2] for s in spectra])
    ref = np.histogram(allmz, bins=edges, weights=allint)[0] / len(spectra)
    np.testing.assert_allclose(mean, ref, rtol=1e-12)
    centres2, mean2 = ds.mean_spectrum(bin_ppm=50)
    assert mean2.sum() * len(spectra) == pytest.approx(allint.sum())  # default bins keep every peak
    assert np.all(np.diff(np.log(centres2)) == pytest.approx(np.log1p(50e-6)))


def test_datacube_is_lazy_and_bins_like_histogram(tmp_path) -> None:
    import dask.array as da

    rng = np.random.default_rng(19)
    spectra = random_spectra(grid(4, 3), rng)
    ds = read_imzml(write_imzml(tmp_path / "dc.imzML", spectra))
    cube = ds.datacube(bins=25, block_bytes=2000)
    assert isinstance(cube.data, da.Array) and cube.dims == ("c", "y", "x")
    assert cube.data.numblocks[1] > 1  # several row blocks
    edges = np.asarray(cube.attrs["bin_edges"])
    assert edges[0] == pytest.approx(min(s[1].min() for s in spectra))
    assert edges[-1] == pytest.approx(max(s[1].max() for s in spectra))
    vals = cube.values
    for (x, y), mz, it in spectra:
        ref = np.histogram(mz, bins=edges, weights=it)[0]
        np.testing.assert_allclose(vals[:, y - 1, x - 1], ref, rtol=1e-6)
    np.testing.assert_allclose(vals.sum(axis=0), ds.tic().values, rtol=1e-6)


def test_load_style_calls_keep_their_signatures(tmp_path) -> None:
    """multiscale.io.load calls read_imzml(path, **options).tic() / .ion_images(mz, tol=, tol_unit=)."""
    spectra = random_spectra(grid(2, 2), np.random.default_rng(20))
    ds = read_imzml(write_imzml(tmp_path / "l.imzML", spectra), **{"chunk_bytes": 1 << 20})
    assert ds.tic().dims == ("y", "x")
    assert ds.ion_images([200.0, 300.0], tol=0.5, tol_unit="da").sizes["c"] == 2
    assert ds.ion_image(200.0, tol=1e4).dims == ("y", "x")


def test_normalization_images_match_the_analysis_definitions(tmp_path) -> None:
    from multiscale.analysis.msi import normalization_factors

    rng = np.random.default_rng(21)
    spectra = random_spectra(grid(3, 3), rng, continuous=True)
    for _, _, it in spectra[::2]:
        it[::3] = 0.0  # zeros must not enter the median
    ds = read_imzml(write_imzml(tmp_path / "n.imzML", spectra, mode="continuous"))
    dense = np.stack([s[2] for s in spectra])
    for method in ("tic", "rms", "median", "max"):
        img = ds.normalization_image(method)
        want = normalization_factors(dense, method)
        got = np.array([img.values[y - 1, x - 1] for (x, y), _, _ in spectra])
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_chunks_respect_the_byte_budget(tmp_path) -> None:
    """Peak memory follows chunk_bytes: every chunk's .ibd span stays within it (one spectrum at least)."""
    rng = np.random.default_rng(22)
    spectra = random_spectra(grid(6, 5), rng, n_peaks=200)
    path = write_imzml(tmp_path / "b.imzML", spectra)
    budget = 8000
    ds = read_imzml(path, chunk_bytes=budget)
    ix = ds.index
    seen = []
    for ch in ds._iter_chunks():
        ids = ch.ids
        start = np.minimum(ix.mz_offset[ids], ix.int_offset[ids]).min()
        end = np.maximum(ix.mz_offset[ids] + ix.mz_encoded[ids], ix.int_offset[ids] + ix.int_encoded[ids]).max()
        assert end - start <= budget or ids.size == 1
        seen.extend(ids.tolist())
    assert sorted(seen) == list(range(len(spectra)))
    assert len(seen) > 1 and max(ch.ids.size for ch in ds._iter_chunks()) < len(spectra)


def test_dataset_pickles_for_dask_workers(tmp_path) -> None:
    import pickle

    spectra = random_spectra(grid(3, 2), np.random.default_rng(23))
    ds = read_imzml(write_imzml(tmp_path / "pk.imzML", spectra))
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone.ion_images([200.0, 300.0], tol=1e4).values, ds.ion_images([200.0, 300.0], tol=1e4).values)
    with ds.mapped():  # inside a mapped block too: the copy does not carry the mapping
        inside = pickle.loads(pickle.dumps(ds))
    assert inside._whole is None and ds._whole is None
    np.testing.assert_array_equal(inside.ion_images([200.0], tol=1e4).values, ds.ion_images([200.0], tol=1e4).values)
    cube = ds.datacube(bins=10)
    np.testing.assert_allclose(cube.sum("c").values, ds.tic().values, rtol=1e-6)


def test_peaks_picked_on_the_mean_spectrum_are_the_ions_in_the_file(tmp_path) -> None:
    """Integration: profile file -> mean spectrum -> pick_peaks -> ion images of the picked m/z."""
    from multiscale.analysis.msi import pick_peaks

    rng = np.random.default_rng(24)
    axis = np.arange(300.0, 310.0, 0.002)
    centres = np.array([301.2345, 304.5, 308.0123])
    spectra = []
    for c in grid(4, 4):
        prof = 10 + rng.normal(0, 1, axis.size)
        for k, m in enumerate(centres):
            prof += (30 + 20 * k) * rng.uniform(0.5, 1.5) * np.exp(-0.5 * ((axis - m) / 0.006) ** 2)
        spectra.append((c, axis, prof))
    ds = read_imzml(write_imzml(tmp_path / "pp.imzML", spectra, mode="continuous", spectrum_type="profile"))
    mz, mean = ds.mean_spectrum()
    peaks = pick_peaks(mz, mean, snr=10)
    np.testing.assert_allclose(peaks["mz"], centres, atol=0.002)
    img = ds.ion_images(peaks["mz"].to_numpy(), tol=20, tol_unit="ppm")
    assert img.sizes["c"] == 3 and float(img.min()) > 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("reduce", ["sum", "max", "mean"])
def test_kernel_windows_with_0_to_3_peaks_at_the_ends_and_non_finite_neighbours(engine, reduce) -> None:
    """The kernel's branch-free path for the first two peaks of a window must equal the plain definition:
    empty windows, 1-3 peaks, windows at the first and last peak, and NaN/inf intensities just outside a
    window (a select must not turn them into NaN sums)."""
    mz = np.array([100.0, 100.5, 101.0, 101.1, 101.2, 102.0, 103.0, 103.05])
    it = np.array([1.0, np.nan, 2.0, 3.0, 4.0, np.inf, 5.0, 6.0], dtype=np.float32)
    lo = np.array([99.0, 100.9, 100.95, 101.15, 101.5, 102.9, 103.02, 104.0])
    hi = np.array([100.1, 101.05, 101.25, 101.15, 101.9, 103.0, 103.1, 105.0])
    got = _imzml_kernels.window_reduce(mz, np.array([0]), it, np.array([0]), np.array([mz.size]), lo, hi, reduce, engine)
    want = []
    for a, b in zip(lo, hi):
        v = it[(mz >= a) & (mz <= b)].astype(np.float64)
        want.append(0.0 if v.size == 0 else {"sum": v.sum(), "max": v.max(), "mean": v.mean()}[reduce])
    np.testing.assert_array_equal(got[0], want)
    assert np.isfinite(got).all()
