"""NIfTI (nibabel) and NRRD/MHA (SimpleITK): RAS to LPS once, scaling, endianness, units, round trips, bad input."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.image import direction, index_to_world, origin, spacing, spatial_image
from multiscale.io import load, save
from multiscale.io._common import LoadError
from multiscale.io.medical import read_nifti


def _write(path, data, affine, **hdr):
    img = nib.Nifti1Image(data, affine)
    for k, v in hdr.items():
        img.header[k] = v
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    nib.save(img, str(path))
    return path


def _data(shape=(6, 5, 4)):
    i, j, k = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return (100 * k + 10 * j + i).astype(np.int16)  # nibabel (i, j, k) order


def test_ras_affine_becomes_lps_geometry(tmp_path):
    aff = np.array([[-2.0, 0, 0, 50.0], [0, -3.0, 0, 60.0], [0, 0, 4.0, -70.0], [0, 0, 0, 1]])
    data = _data()
    img = load(_write(tmp_path / "a.nii", data, aff))
    assert img.dims == ("z", "y", "x")
    np.testing.assert_array_equal(img.values, data.transpose(2, 1, 0))
    assert spacing(img) == pytest.approx((4.0, 3.0, 2.0))
    assert origin(img) == pytest.approx((-70.0, -60.0, -50.0))  # LPS: x and y negated
    np.testing.assert_allclose(direction(img), np.eye(3))


def test_world_coordinates_agree_with_nibabel_affine_for_oblique_and_flipped(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.diag([1.0, -1.0, 1.0])  # flipped y too
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([1.5, 2.0, 2.5])
    aff[:3, 3] = [10.0, -5.0, 3.0]
    img = load(_write(tmp_path / "o.nii.gz", _data(), aff))
    rng = np.random.default_rng(1)
    ijk = rng.uniform(0, 4, size=(20, 3))
    ras = nib.affines.apply_affine(aff, ijk)
    lps = ras * [-1, -1, 1]
    np.testing.assert_allclose(index_to_world(img, ijk[:, ::-1]), lps[:, ::-1], atol=1e-5)
    # the same file read by SimpleITK (an independent LPS reader)
    s_img = sitk.ReadImage(str(tmp_path / "o.nii.gz"))
    for p in ijk[:3]:
        np.testing.assert_allclose(index_to_world(img, p[::-1], xyz=False)[::-1],
                                   s_img.TransformContinuousIndexToPhysicalPoint(p.tolist()), atol=1e-4)


def test_scl_slope_and_inter_applied(tmp_path):
    img = nib.Nifti1Image(_data(), np.eye(4))
    img.header.set_slope_inter(0.5, -3.0)
    nib.save(img, str(tmp_path / "s.nii"))
    out = load(tmp_path / "s.nii")
    np.testing.assert_allclose(out.values, _data().transpose(2, 1, 0) * 0.5 - 3.0)


def test_big_endian_written_here(tmp_path):
    data = _data().astype(">i2")
    hdr = nib.Nifti1Header(endianness=">")
    img = nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]), header=hdr)
    nib.save(img, str(tmp_path / "be.nii"))
    assert (tmp_path / "be.nii").read_bytes()[:4] == (348).to_bytes(4, "big")
    out = load(tmp_path / "be.nii")
    assert out.dtype.isnative
    np.testing.assert_array_equal(out.values, _data().transpose(2, 1, 0))


def test_micron_units_converted_to_mm(tmp_path):
    img = nib.Nifti1Image(_data(), np.diag([-20.0, -20.0, 50.0, 1.0]))
    img.header.set_xyzt_units("micron")
    nib.save(img, str(tmp_path / "u.nii"))
    assert spacing(load(tmp_path / "u.nii")) == pytest.approx((0.05, 0.02, 0.02))


def test_4d_gets_time_dim(tmp_path):
    data = np.stack([_data(), _data() + 1], axis=-1)
    out = load(_write(tmp_path / "t.nii.gz", data, np.diag([-1.0, -1.0, 2.0, 1.0])))
    assert out.dims == ("t", "z", "y", "x")
    np.testing.assert_array_equal(out.values[1], _data().transpose(2, 1, 0) + 1)


def test_round_trip_keeps_geometry_and_attrs(tmp_path):
    d = np.array([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]])  # a rotation in zyx order
    img = spatial_image(np.arange(60, dtype=np.float32).reshape(3, 4, 5), spacing=(2.0, 0.5, 0.25),
                        origin=(1.0, 2.0, 3.0), direction=d, modality="MR", units="ms", agent="Gd-DTPA")
    for name in ("r.nii.gz", "r.nii", "r.nrrd", "r.mha"):
        back = load(save(img, tmp_path / name))
        np.testing.assert_array_equal(back.values, img.values)
        assert spacing(back) == pytest.approx(spacing(img))
        assert origin(back) == pytest.approx(origin(img))
        np.testing.assert_allclose(direction(back), d, atol=1e-6)
        assert (back.attrs["modality"], back.attrs["units"], back.attrs["agent"]) == ("MR", "ms", "Gd-DTPA")
    # what SimpleITK reads from our NIfTI is the same LPS geometry
    s_img = sitk.ReadImage(str(tmp_path / "r.nii.gz"))
    np.testing.assert_allclose(s_img.GetOrigin(), origin(img)[::-1], atol=1e-5)
    np.testing.assert_allclose(s_img.GetSpacing(), spacing(img)[::-1], atol=1e-6)


def test_save_is_atomic_no_temporary_left(tmp_path):
    img = spatial_image(np.zeros((2, 3, 4), np.float32), spacing=1.0)
    save(img, tmp_path / "x.nii.gz")
    save(img, tmp_path / "x.nii.gz")  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]


def test_truncated_uncompressed(tmp_path):
    p = _write(tmp_path / "cut.nii", _data(), np.eye(4))
    p.write_bytes(p.read_bytes()[:-50])
    with pytest.raises(LoadError) as err:
        load(p)
    assert "cut.nii" in str(err.value) and "truncated" in str(err.value)


def test_truncated_gzip(tmp_path):
    p = _write(tmp_path / "cut.nii.gz", np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32),
               np.eye(4))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(LoadError) as err:
        load(p)
    assert "cut.nii.gz" in str(err.value) and "voxel data" in str(err.value)


def test_corrupt_gzip_header(tmp_path):
    p = tmp_path / "bad.nii.gz"
    p.write_bytes(b"\x1f\x8b" + b"garbage" * 20)
    with pytest.raises(LoadError, match="bad.nii.gz"):
        load(p)


def test_zero_spacing(tmp_path):
    aff = np.diag([-1.0, -1.0, 0.0, 1.0])
    img = nib.Nifti1Image(_data(), None)
    img.header.set_sform(aff, code=1)
    img.header.set_qform(None, code=0)
    p = tmp_path / "z.nii"
    nib.save(img, str(p))
    with pytest.raises(LoadError) as err:
        load(p)
    assert "z.nii" in str(err.value) and "zero" in str(err.value) and "spacing=" in str(err.value)


def test_non_orthonormal_direction(tmp_path):
    aff = np.array([[-1.0, 0.5, 0, 0], [0, -1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]])
    p = _write(tmp_path / "shear.nii", _data(), aff)
    with pytest.raises(LoadError) as err:
        load(p)
    assert "shear.nii" in str(err.value) and "sform" in str(err.value) and "not orthonormal" in str(err.value)


def test_spacing_override(tmp_path):
    p = _write(tmp_path / "o.nii", _data(), np.diag([-1.0, -1.0, 1.0, 1.0]))
    assert spacing(read_nifti(p, spacing=(3.0, 0.2, 0.1))) == pytest.approx((3.0, 0.2, 0.1))


def test_nrrd_label_image_via_simpleitk(tmp_path):
    arr = np.zeros((3, 4, 5), np.uint8)
    arr[1, 1:3, 2:4] = 2
    s = sitk.GetImageFromArray(arr)
    s.SetSpacing((0.5, 0.6, 0.7))
    s.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(s, str(tmp_path / "m.nrrd"))
    img = load(tmp_path / "m.nrrd")
    np.testing.assert_array_equal(img.values, arr)
    assert spacing(img) == pytest.approx((0.7, 0.6, 0.5))
    assert origin(img) == pytest.approx((3.0, 2.0, 1.0))


def test_truncated_mha(tmp_path):
    s = sitk.GetImageFromArray(np.ones((8, 8, 8), np.float32))
    sitk.WriteImage(s, str(tmp_path / "c.mha"))
    raw = (tmp_path / "c.mha").read_bytes()
    (tmp_path / "c.mha").write_bytes(raw[:-100])
    with pytest.raises(LoadError, match="c.mha"):
        load(tmp_path / "c.mha")


# --- reference data ---------------------------------------------------------------------------


def test_big_endian_reference(reference_data):
    path = reference_data / "nifti" / "anatomical.nii"
    img = load(path)
    ref = nib.load(str(path))
    assert ref.header.endianness == ">"
    assert img.shape == ref.shape[::-1] and img.dtype.isnative
    np.testing.assert_array_equal(img.values, np.asarray(ref.dataobj).transpose(2, 1, 0))
    s_img = sitk.ReadImage(str(path))
    np.testing.assert_allclose(origin(img)[::-1], s_img.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(direction(img)[::-1, ::-1].reshape(-1), s_img.GetDirection(), atol=1e-6)


def test_4d_reference(reference_data):
    img = load(reference_data / "nifti" / "example4d.nii.gz")
    assert img.dims == ("t", "z", "y", "x") and img.shape == (2, 24, 96, 128)
    assert spacing(img) == pytest.approx((2.2, 2.0, 2.0), abs=1e-5)


def test_gzip_magic_without_nifti_is_reported(tmp_path):
    p = tmp_path / "x.nii.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(b"hello" * 200)
    with pytest.raises(LoadError, match="does not hold a NIfTI header"):
        load(p)


def test_header_data_pairs_and_vector_nifti(tmp_path):
    img = spatial_image(np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5), spacing=(1.0, 0.5, 0.5),
                        dims=("c", "z", "y", "x"), channels=["T1", "T2"], modality="MR")
    back = load(save(img, tmp_path / "v.nii.gz"))
    assert back.dims == ("c", "z", "y", "x") and list(back.coords["c"].values) == ["T1", "T2"]
    np.testing.assert_array_equal(back.values, img.values)
    one = img.isel(c=0, drop=True)
    for name in ("p.mhd", "p.nhdr"):
        out = load(save(one, tmp_path / name))
        np.testing.assert_array_equal(out.values, one.values)
        assert out.attrs["modality"] == "MR"
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


def test_single_volume_4d_is_squeezed(tmp_path):
    p = _write(tmp_path / "one.nii", _data()[..., None], np.diag([-1.0, -1.0, 1.0, 1.0]))
    img = load(p)
    assert img.dims == ("z", "y", "x") and img.shape == (4, 5, 6)


# --- lazy reading (one task per block of whole planes, as for DICOM) --------------------------------------


def _lazy_and_eager(path, monkeypatch, block_bytes=None):
    import multiscale.io.nifti as nifti_mod

    if block_bytes is not None:
        monkeypatch.setattr(nifti_mod, "BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(nifti_mod, "GZIP_BLOCK_BYTES", block_bytes)
    lazy, eager = read_nifti(path), read_nifti(path, lazy=False)
    assert hasattr(lazy.data, "dask") and not hasattr(eager.data, "dask")
    assert lazy.dims == eager.dims and lazy.dtype == eager.dtype and lazy.dtype.isnative
    values = lazy.values
    np.testing.assert_array_equal(values, eager.values)
    for c in lazy.coords:
        np.testing.assert_array_equal(lazy.coords[c].values, eager.coords[c].values)
    return lazy


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_reference_files_lazy_equal_eager(reference_data, name, monkeypatch):
    path = reference_data / "nifti" / name
    ref = np.asarray(nib.load(str(path)).dataobj)
    for block in (None, 3000):  # default blocks, then many small ones stitched together
        img = _lazy_and_eager(path, monkeypatch, block)
        np.testing.assert_array_equal(img.values, ref.T)  # (i, j, k[, t]) -> ([t,] z, y, x)
    assert img.data.numblocks[0] > 1


@pytest.mark.parametrize("case", ["scaled-big-endian", "planar", "series", "one-volume-4d", "vector", "pair"])
def test_lazy_equals_eager_for_every_layout(tmp_path, monkeypatch, case):
    rng = np.random.default_rng(1)
    aff = np.diag([-0.5, -0.5, 2.0, 1.0])
    if case == "scaled-big-endian":
        img = nib.Nifti1Image(rng.integers(-300, 300, (7, 6, 5)).astype(">i2"), aff)
        img.header.set_slope_inter(0.25, -3.0)
        name = "s.nii.gz"
    elif case == "planar":
        img, name = nib.Nifti1Image(rng.normal(size=(7, 6)).astype(np.float32), aff), "p.nii"
    elif case == "series":
        img, name = nib.Nifti1Image(rng.integers(0, 9, (5, 4, 3, 6)).astype(np.uint8), aff), "t.nii"
    elif case == "one-volume-4d":
        img, name = nib.Nifti1Image(rng.normal(size=(5, 4, 3, 1)), aff), "o.nii.gz"
    elif case == "vector":
        img, name = nib.Nifti1Image(rng.normal(size=(5, 4, 3, 1, 2)).astype(np.float32), aff), "v.nii"
        img.header.set_intent("vector")
    else:
        img, name = nib.Nifti1Pair(rng.normal(size=(5, 4, 3)).astype(np.float32), aff), "pair.hdr"
    nib.save(img, str(tmp_path / name))
    with pytest.warns(UserWarning) if case == "series" else _no_warning():  # no frame times for the series
        out = _lazy_and_eager(tmp_path / name, monkeypatch, block_bytes=60)  # a few planes per block
    assert out.data.numblocks[-1] == 1 and np.prod(out.data.numblocks) > 1  # whole rows, several blocks
    if case == "scaled-big-endian":
        assert out.dtype.kind == "f" and out.values.min() < -70  # nibabel's scaling (to float64 here)


def _no_warning():
    import contextlib

    return contextlib.nullcontext()


def test_one_slice_of_an_uncompressed_file_reads_only_its_block(tmp_path, monkeypatch):
    import multiscale.io.nifti as nifti_mod

    data = np.random.default_rng(2).normal(size=(64, 48, 40)).astype(np.float32)  # 480 kB; a z-plane is 12 kB
    p = _write(tmp_path / "big.nii", data, np.eye(4))
    read: list[int] = []
    real_open = nifti_mod._open_voxels

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            out = self.fh.read(n)
            read.append(len(out))
            return out

        def readinto(self, buf):
            k = self.fh.readinto(buf)
            read.append(k)
            return k

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(nifti_mod, "_open_voxels", lambda path, gz: Counting(real_open(path, gz)))
    monkeypatch.setattr(nifti_mod, "BLOCK_BYTES", 64 * 48 * 4 * 2)  # two planes per block
    img = load(p)
    assert read == []  # loading reads the header only
    np.testing.assert_array_equal(img.isel(z=17).values, data[:, :, 17].T)
    plane = 64 * 48 * 4
    assert sum(read) == 2 * plane  # the block holding z = 17, not the file (40 planes)
    read.clear()
    monkeypatch.setattr(nifti_mod, "BLOCK_BYTES", nifti_mod.__dict__["GZIP_BLOCK_BYTES"] // 64)  # 4 MB default
    np.testing.assert_array_equal(load(p).isel(z=3).values, data[:, :, 3].T)
    assert sum(read) == p.stat().st_size - 352  # a file smaller than one block is one block


def test_gzip_trailer_mismatch_is_decided_by_decompressing(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    raw = (_write(tmp_path / "one.nii", data, np.eye(4))).read_bytes()
    two = tmp_path / "two.nii.gz"  # a valid two-member stream: the trailer holds only the second member's length
    two.write_bytes(gzip.compress(raw[:400]) + gzip.compress(raw[400:]))
    np.testing.assert_array_equal(load(two).values, data.T)
    short = tmp_path / "short.nii.gz"  # complete gzip stream, but the voxels end early
    short.write_bytes(gzip.compress(raw[:-20]))
    with pytest.raises(LoadError, match=r"short\.nii\.gz: voxel data: truncated"):
        load(short)
