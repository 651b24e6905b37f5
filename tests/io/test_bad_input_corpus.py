"""Issue 14, io: no silent wrong answer, no crash, nothing lost.

Every bad input below is generated here, small, in ``tmp_path``. Each gives either a clear
:class:`~multiscale.errors.LoadError` (naming the file, the field and the fix) or a correct result
whose warning is recorded in ``attrs["warnings"]`` (a list of str).
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import zarr

import multiscale.io
from multiscale.errors import ImzMLError, ImzMLWarning, LoadError, SUVError
from multiscale.image import origin, spacing, spatial_image
from multiscale.io import load, save
from multiscale.io.imzml import read_imzml
from multiscale.io.suv import suv_factors

from . import _dicom_synth as syn
from .test_imzml_files import write_imzml
from .test_suv import pet

# --- NIfTI -------------------------------------------------------------------------------------


def _nii(tmp_path: Path, name: str = "a.nii", shape=(4, 3, 2), affine=None) -> Path:
    arr = np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape)
    p = tmp_path / name
    nib.save(nib.Nifti1Image(arr, np.diag([1.0, 1.0, 2.0, 1.0]) if affine is None else affine), str(p))
    return p


def _patch(p: Path, offset: int, fmt: str, value) -> Path:
    raw = bytearray(p.read_bytes())
    raw[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    p.write_bytes(bytes(raw))
    return p


@pytest.mark.parametrize("vox_offset", [0.0, 100.0])
def test_nifti_vox_offset_inside_the_header_is_refused(tmp_path, vox_offset):
    p = _patch(_nii(tmp_path), 108, "<f", vox_offset)  # nibabel would read the header as voxels
    with pytest.raises(LoadError, match=r"a\.nii: vox_offset.*352"):
        load(p)


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan")])
def test_nifti_bad_pixdim_names_the_element_and_the_fix(tmp_path, bad):
    p = _nii(tmp_path)
    _patch(p, 252, "<h", 1)  # qform_code 1: pixdim gives the spacing
    _patch(p, 254, "<h", 0)  # sform_code 0
    _patch(p, 76 + 4 * 2, "<f", bad)  # pixdim[2]
    with pytest.raises(LoadError, match=r"a\.nii: pixdim\[2\].*spacing="):
        load(p)
    img = load(p, spacing=(2.0, 1.0, 1.0))  # the fix works
    assert spacing(img) == (2.0, 1.0, 1.0)


def test_nifti_qform_sform_disagreement_is_warned_and_recorded(tmp_path):
    s_aff = np.diag([1.0, 1.0, 2.0, 1.0])
    q_aff = s_aff.copy()
    q_aff[:3, 3] = [0.0, 0.0, 2.5]
    img = nib.Nifti1Image(np.zeros((4, 3, 2), np.int16), s_aff)
    img.set_sform(s_aff, code=1)
    img.set_qform(q_aff, code=1)
    p = tmp_path / "qs.nii"
    nib.save(img, str(p))
    with pytest.warns(UserWarning, match=r"qform and sform.*2\.5 mm.*using the sform"):
        out = load(p)
    assert origin(out) == pytest.approx((0.0, 0.0, 0.0))  # the sform's origin
    assert any("qform and sform" in w for w in out.attrs["warnings"])


def test_nifti_with_agreeing_forms_records_no_warning(tmp_path):
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.7, 0.7, 2.0])
    aff[:3, 3] = [12.5, -3.25, 40.0]
    img = spatial_image(np.ones((2, 3, 4), np.float32), spacing=(2.0, 0.7, 0.7), origin=(1.0, 2.0, 3.0))
    p = save(img, tmp_path / "good.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = load(p)
    assert "warnings" not in out.attrs


# --- decompression bombs and the voxel cap ---------------------------------------------------------


def _bomb_header(shape=(10000, 10000, 10000)) -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.uint8)
    hdr["vox_offset"] = 352
    hdr.set_sform(np.eye(4), 1)
    return hdr.binaryblock + b"\0" * 4


def test_nifti_gz_bomb_is_refused_before_allocating(tmp_path):
    p = tmp_path / "bomb.nii.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(_bomb_header() + b"\0" * 16000)
    with pytest.raises(LoadError, match=r"bomb\.nii\.gz: dim/datatype.*compressed bytes"):
        load(p)


def test_nifti_plain_bomb_is_truncated(tmp_path):
    p = tmp_path / "bomb.nii"
    p.write_bytes(_bomb_header() + b"\0" * 16000)
    with pytest.raises(LoadError, match=r"bomb\.nii: voxel data: truncated"):
        load(p)


def _tiff_claiming(path: Path, width: int, height: int, compression: int, count: int) -> Path:
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, compression), (262, 3, 1), (273, 4, 150),
               (277, 3, 1), (278, 4, height), (279, 4, count)]
    b = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, typ, v in entries:
        b += struct.pack("<HHII", tag, typ, 1, v) if typ == 4 else struct.pack("<HHIHH", tag, typ, 1, v, 0)
    b += struct.pack("<I", 0)
    path.write_bytes(bytes(b) + b"\0" * (200 - len(b)))
    return path


@pytest.mark.parametrize("compression, count", [(1, 50), (8, 40)])
def test_tiff_claiming_1e10_pixels_in_200_bytes(tmp_path, compression, count):
    p = _tiff_claiming(tmp_path / "bomb.tif", 100000, 100000, compression, count)
    assert p.stat().st_size == 200
    with pytest.raises(LoadError, match=r"bomb\.tif: .*(truncated|holds 40 bytes)"):
        load(p, spacing=0.001)


def test_imzml_coordinates_of_1e7_are_refused_before_allocating(tmp_path):
    mz = np.array([100.0, 200.0])
    spectra = [((1, 1), mz, np.ones(2)), ((10**7, 10**7), mz, np.ones(2))]
    p = write_imzml(tmp_path / "far.imzML", spectra)
    with pytest.raises(ImzMLError, match=r"far\.imzML: spectrum 1 \(x=10000000, y=10000000.*MAX_VOXELS"):
        read_imzml(p, cache=False)
    with pytest.raises(LoadError, match="10000000"):
        load(p, cache=False)


def test_voxel_cap_option_module_setting_and_environment(tmp_path, monkeypatch):
    p = save(spatial_image(np.ones((2, 3, 4), np.float32), spacing=1.0), tmp_path / "small.nii.gz")  # 24 voxels
    assert load(p).shape == (2, 3, 4)
    with pytest.raises(LoadError, match=r"small\.nii\.gz: .*24 voxels.*max_voxels"):
        load(p, max_voxels=10)
    monkeypatch.setattr(multiscale.io, "MAX_VOXELS", 10, raising=False)
    with pytest.raises(LoadError, match="cap of 10"):
        load(p)
    assert load(p, max_voxels=100).shape == (2, 3, 4)  # the option wins
    monkeypatch.setattr(multiscale.io, "MAX_VOXELS", None, raising=False)
    monkeypatch.setenv("MULTISCALE_MAX_VOXELS", "12")
    with pytest.raises(LoadError, match="cap of 12"):
        load(p)
    monkeypatch.delenv("MULTISCALE_MAX_VOXELS")
    assert load(p).shape == (2, 3, 4)


def test_metaimage_with_absurd_dimsize_is_refused_before_simpleitk(tmp_path):
    for name, dims, pattern in (("ovf.mha", "99999999999999999999 2 2", "more than the cap"),
                                ("neg.mha", "-2 2 2", "must be positive"),
                                ("bad.mha", "2 two 2", "not a list of whole numbers")):
        p = tmp_path / name
        p.write_bytes(f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementType = MET_UCHAR\n"
                      "ElementDataFile = LOCAL\n".encode() + b"\0" * 8)
        with pytest.raises(LoadError, match=rf"{name}: DimSize.*{pattern}"):
            load(p)


def test_metaimage_data_shorter_than_declared(tmp_path):
    p = tmp_path / "short.mha"
    p.write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 20 20 20\nElementType = MET_SHORT\n"
                  b"ElementDataFile = LOCAL\n" + b"\0" * 8)
    with pytest.raises(LoadError, match=r"short\.mha: DimSize.*16000 bytes.*holds 8 bytes"):
        load(p)


# --- OME-Zarr: missing chunks ---------------------------------------------------------------------


def test_omezarr_missing_chunk_is_an_error_not_zeros(tmp_path):
    img = spatial_image(np.ones((2, 16, 16), np.float32), spacing=0.02, dims=("c", "y", "x"))
    p = save(img, tmp_path / "m.ome.zarr", chunks={"y": 8, "x": 8}, levels=1)
    (p / "0" / "c" / "1" / "1" / "0").unlink()
    with pytest.raises(LoadError, match=r"m\.ome\.zarr/0: array '0': chunk 'c/1/1/0' is missing.*missing_chunks"):
        load(p)
    with pytest.warns(UserWarning, match="c/1/1/0"):
        out = load(p, missing_chunks="fill")
    assert float(out.sum()) == 2 * 16 * 16 - 64
    assert any("c/1/1/0" in w for w in out.attrs["warnings"])


def test_omezarr_v2_missing_chunk(tmp_path):
    p = tmp_path / "v2.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=2)
    a = g.create_array("0", shape=(4, 4), chunks=(2, 2), dtype="u1", fill_value=0)
    a[:] = 7
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y", "type": "space", "unit": "micrometer"},
                                                          {"name": "x", "type": "space", "unit": "micrometer"}],
                               "datasets": [{"path": "0", "coordinateTransformations": [
                                   {"type": "scale", "scale": [1.0, 1.0]}]}]}]
    assert int(load(p).sum()) == 7 * 16
    (p / "0" / "1.0").unlink()
    with pytest.raises(LoadError, match=r"chunk '1\.0' is missing \(1 of 4"):
        load(p)


def test_omezarr_writer_stores_empty_chunks(tmp_path):
    img = spatial_image(np.zeros((2, 16, 16), np.float32), spacing=0.02, dims=("c", "y", "x"))
    p = save(img, tmp_path / "zeros.ome.zarr", chunks={"y": 8, "x": 8}, levels=2)
    assert len([f for f in (p / "0").rglob("*") if f.is_file() and f.name != "zarr.json"]) == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = load(p)
    assert "warnings" not in out.attrs and float(out.sum()) == 0.0


def test_omezarr_corrupt_zarr_json_is_named(tmp_path):
    p = save(spatial_image(np.ones((4, 4), np.float32), spacing=0.02), tmp_path / "c.ome.zarr")
    (p / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
    with pytest.raises(LoadError, match=r"c\.ome\.zarr/zarr\.json: JSON: not valid JSON"):
        load(p)
    (p / "zarr.json").write_bytes(b'{"zarr_format": 3, "x": "\xff\xfe"}')
    with pytest.raises(LoadError, match=r"zarr\.json: content: not UTF-8"):
        load(p)


# --- imzML: pixel size --------------------------------------------------------------------------


def _row(n: int, y: int = 1):
    mz = np.array([100.0, 200.0, 300.0])
    return [((x, y), mz, np.array([1.0, 2.0, 3.0]) * x) for x in range(1, n + 1)]


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 0.0, -5.0])
def test_imzml_one_row_image_with_bad_y_pixel_size(tmp_path, bad):
    p = write_imzml(tmp_path / "row.imzML", _row(4), pixel_size=(20.0, bad))
    with pytest.warns(ImzMLWarning, match=r"IMS:1000047.*x pixel size \(20 um\)"):
        ds = read_imzml(p, cache=False)
    assert ds.pixel_size == pytest.approx((0.02, 0.02))
    images = [ds.tic(), ds.ion_images([200.0], tol=0.5, tol_unit="da"), ds.ion_image(300.0, tol=1, tol_unit="da"),
              ds.pixel_mask(), ds.normalization_image("rms"), ds.datacube(bins=4)]
    for img in images:
        assert spacing(img) == pytest.approx((0.02, 0.02))
        assert any("IMS:1000047" in w for w in img.attrs["warnings"])
    np.testing.assert_allclose(ds.tic().values[0], [6.0, 12.0, 18.0, 24.0])
    with pytest.warns(ImzMLWarning):
        via_load = load(p, cache=False)
    assert any("IMS:1000047" in w for w in via_load.attrs["warnings"])


def test_imzml_several_rows_with_infinite_y_pixel_size_is_refused(tmp_path):
    p = write_imzml(tmp_path / "img.imzML", _row(3, 1) + _row(3, 2), pixel_size=(20.0, float("inf")))
    with pytest.raises(ImzMLError, match=r"img\.imzML: pixel size y \(IMS:1000047\) = 'inf'.*2 pixels along y"):
        read_imzml(p, cache=False)


def test_imzml_non_utf8_xml_is_a_load_error(tmp_path):
    p = write_imzml(tmp_path / "enc.imzML", _row(2))
    text = p.read_bytes().replace(b'encoding="ISO-8859-1"', b'encoding="UTF-8"')
    p.write_bytes(text.replace(b'name="MS1 spectrum"', b'name="MS1 \xff\xfe spectrum"', 1))
    with pytest.raises(LoadError, match=r"enc\.imzML: malformed XML"):
        load(p, cache=False)


# --- DICOM / SUV --------------------------------------------------------------------------------


def test_injection_after_the_scan_is_warned_with_the_hours():
    ds = pet(rp_RadiopharmaceuticalStartDateTime="20200101133000")  # scan at 11:00
    with pytest.warns(UserWarning, match=r"2\.50 h after the scan reference time.*too low"):
        suv_factors([ds])
    ds = pet(rp_RadiopharmaceuticalStartDateTime="20200101133000", DecayCorrection="NONE")
    with pytest.warns(UserWarning, match=r"2\.50 h after the first acquisition time"):
        suv_factors([ds])


@pytest.mark.parametrize("corrected, missing", [(["DECY", "DCAL"], "ATTN"), (["ATTN"], "DECY"), (None, "ATTN")])
def test_corrected_image_lacking_attn_or_decy_is_warned(corrected, missing):
    ds = pet(CorrectedImage=corrected)
    with pytest.warns(UserWarning, match=rf"CorrectedImage \(0028,0051\).*lacks .*{missing}"):
        suv_factors([ds])


def test_no_warning_for_a_complete_pet_header():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        suv_factors([pet()])
        suv_factors([pet(DecayCorrection="NONE", CorrectedImage=["ATTN"])])


@pytest.mark.parametrize("tag, a, b", [
    ("PatientWeight", 70.0, 80.0),
    ("Units", "BQML", "CNTS"),
    ("DecayCorrection", "START", "ADMIN"),
    ("rp_RadionuclideTotalDose", 370e6, 350e6),
    ("rp_RadiopharmaceuticalStartTime", "100000", "101500"),
])
def test_slices_disagreeing_on_suv_tags_are_refused(tag, a, b):
    with pytest.raises(SUVError, match=rf"{tag.removeprefix('rp_')} .*differs from"):
        suv_factors([pet(**{tag: a}), pet(**{tag: b})])


@pytest.mark.parametrize("over, tag", [
    ({"SeriesDate": "20231345"}, "SeriesDate"),
    ({"SeriesTime": "256199"}, "SeriesTime"),
    ({"rp_RadiopharmaceuticalStartTime": "256199"}, "RadiopharmaceuticalStartTime"),
    ({"rp_RadiopharmaceuticalStartDateTime": "20200230100000"}, "RadiopharmaceuticalStartDateTime"),
])
def test_impossible_dates_and_times_name_the_tag(over, tag):
    with pytest.raises(SUVError, match=rf"{tag} \(\d{{4}},\d{{4}}\): '\d+' is not a valid DICOM"):
        suv_factors([pet(**over)])


def test_suv_warnings_reach_the_image_attrs(tmp_path):
    rp = pet(rp_RadiopharmaceuticalStartDateTime="20200101120000").RadiopharmaceuticalInformationSequence
    syn.write_series(tmp_path, np.ones((2, 2, 2), np.int16), modality="PT", Units="BQML", DecayCorrection="START",
                     PatientWeight=70.0, RadiopharmaceuticalInformationSequence=rp, SeriesDate="20200101",
                     SeriesTime="110000", CorrectedImage=["DECY"])
    with pytest.warns(UserWarning):
        img = load(tmp_path, suv=True)
    joined = " | ".join(img.attrs["warnings"])
    assert "1.00 h after the scan reference time" in joined and "lacks ATTN" in joined


def test_slices_of_a_folder_disagreeing_on_weight(tmp_path):
    rp = pet().RadiopharmaceuticalInformationSequence
    syn.write_series(tmp_path, np.ones((2, 2, 2), np.int16), modality="PT", Units="BQML", DecayCorrection="ADMIN",
                     RadiopharmaceuticalInformationSequence=rp, CorrectedImage=["ATTN", "DECY"],
                     per_slice=lambda k: {"PatientWeight": 70.0 + 10 * k})
    with pytest.raises(SUVError, match=r"PatientWeight \(0010,1030\): '(80|70)\.0' differs from .*'(70|80)\.0'"):
        load(tmp_path, suv=True)


# --- messages that hide the reason, third-party exceptions ---------------------------------------------


def test_corrupt_png_is_a_load_error(tmp_path):
    p = tmp_path / "c.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(LoadError, match=r"c\.png: image data: cannot be decoded"):
        load(p, spacing=0.001)


def test_simpleitk_reason_is_kept(tmp_path):
    p = tmp_path / "t.nrrd"
    p.write_bytes(b"NRRD0004\ntype: banana\ndimension: 2\nsizes: 2 2\nencoding: raw\n\n\0\0\0\0")
    with pytest.raises(LoadError, match=r"t\.nrrd: header/voxel data: SimpleITK cannot read it \(.*banana"):
        load(p)


def test_metaimage_header_with_non_utf8_bytes(tmp_path):
    p = tmp_path / "l.mha"
    p.write_bytes(b"ObjectType = Image\nNDims = 2\nComment = caf\xe9 \xff\nDimSize = 2 2\nElementType = MET_UCHAR\n"
                  b"ElementDataFile = LOCAL\n" + bytes([1, 2, 3, 4]))
    assert load(p).values.tolist() == [[1, 2], [3, 4]]


def test_third_party_errors_become_load_errors(tmp_path, monkeypatch):
    import multiscale.io.png as png_mod
    from multiscale.io.format import Format

    def broken(path, **kw):
        raise OverflowError("Python int too large to convert to C long")

    fmt = png_mod.FORMAT
    patched = Format(fmt.name, fmt.sniff, broken, fmt.options, fmt.suffixes, fmt.description)
    import multiscale.io.dispatch as dispatch

    monkeypatch.setattr(dispatch, "FORMATS", [patched if f is fmt else f for f in dispatch.FORMATS])
    p = tmp_path / "x.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(LoadError, match=r"x\.png: content: the png reader failed \(OverflowError") as info:
        load(p)
    assert isinstance(info.value.__cause__, OverflowError)


# --- other bad input per format -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["e.nii", "e.nii.gz", "e.png", "e.ome.tif", "e.mha", "e.nrrd", "e.dcm", "e.imzML"])
def test_empty_files(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    with pytest.raises(LoadError, match=re.escape(name) + ": content: the file is empty"):
        load(p)


def test_folder_where_a_file_is_expected(tmp_path):
    p = tmp_path / "scan.nii"
    p.mkdir()
    with pytest.raises(LoadError, match=r"scan\.nii"):
        load(p)


def test_nifti_negative_dim(tmp_path):
    p = _patch(_nii(tmp_path), 42, "<h", -4)  # dim[1]
    with pytest.raises(LoadError, match=r"a\.nii: dim\[1\]: negative size -4"):
        load(p)


def test_nrrd_zero_size(tmp_path):
    p = tmp_path / "z.nrrd"
    p.write_bytes(b"NRRD0004\ntype: uchar\ndimension: 2\nsizes: 0 2\nencoding: raw\n\n")
    with pytest.raises(LoadError, match=r"z\.nrrd: sizes: .*must be positive"):
        load(p)


def test_tiff_truncated_mid_strip(tmp_path):
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    p.write_bytes(p.read_bytes()[:-2000])
    with pytest.raises(LoadError, match=r"t\.tif: .*truncated"):
        load(p, spacing=0.001)


def test_omezarr_dataset_path_missing(tmp_path):
    p = save(spatial_image(np.ones((4, 4), np.float32), spacing=0.02), tmp_path / "d.ome.zarr")
    meta = json.loads((p / "zarr.json").read_text())
    meta["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "nope"
    (p / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(LoadError, match=r"d\.ome\.zarr: array 'nope': cannot be opened"):
        load(p)


def test_dicom_pixel_data_shorter_than_rows_columns(tmp_path):
    ds = syn.image_slice(np.ones((4, 4), np.int16), (0, 0, 0), series_uid="1.2.3.9")
    ds.PixelData = ds.PixelData[:10]
    p = syn.save(ds, tmp_path / "short.dcm")
    with pytest.raises(LoadError, match=r"short\.dcm: PixelData \(7FE0,0010\)"):
        load(p)
