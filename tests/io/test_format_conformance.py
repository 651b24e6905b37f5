"""Every entry of ``multiscale.io.FORMATS`` obeys the same contract (in the style of nibabel's test_image_api).

``SAMPLES`` maps each format name to a function writing a small sample in ``tmp_path``; a format
listed in FORMATS without a sample fails here, so a new format is tested the moment it is listed.
For every format: the sample is sniffed as that format and loads to a valid image, unknown
options raise ``TypeError`` naming the accepted set, a truncated (or corrupted) copy raises
``LoadError`` naming the file, ``describe`` agrees with ``load``, ``companions`` lists existing
files only, and formats with a writer round-trip geometry exactly.
"""

from __future__ import annotations

import ast
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from PIL import Image

from multiscale.image import direction, origin, spacing, spatial_image, validate
from multiscale.io import FORMATS, Format, companions, describe, format_named, formats_table, load, save, sniff
from multiscale.io._common import LoadError
from multiscale.io.dispatch import accepted_options

from . import _dicom_synth as syn


@dataclass
class Sample:
    """A sample file (or folder) and the options ``load`` needs for it."""

    path: Path
    options: dict[str, Any] = field(default_factory=dict)


def _reference() -> Any:
    return spatial_image(np.zeros((3, 6, 8), np.int16), spacing=(2.0, 1.0, 1.0), origin=(10.0, -5.0, -5.0),
                         modality="CT", frame_of_reference_uid="1.2.3.4")


def _volume() -> np.ndarray:
    return np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)


def _sitk_volume() -> sitk.Image:
    s = sitk.GetImageFromArray(_volume())
    s.SetSpacing((0.25, 0.5, 2.0))
    s.SetOrigin((3.0, -2.0, 1.0))
    return s


def _nifti(tmp: Path) -> Sample:
    aff = np.diag([-0.25, -0.5, 2.0, 1.0])
    nib.save(nib.Nifti1Image(_volume().transpose(2, 1, 0), aff), str(tmp / "s.nii"))
    return Sample(tmp / "s.nii")


def _nrrd(tmp: Path) -> Sample:
    sitk.WriteImage(_sitk_volume(), str(tmp / "s.nrrd"), False)
    return Sample(tmp / "s.nrrd")


def _metaimage(tmp: Path) -> Sample:
    sitk.WriteImage(_sitk_volume(), str(tmp / "s.mha"), False)
    return Sample(tmp / "s.mha")


def _tiff(tmp: Path) -> Sample:
    tifffile.imwrite(tmp / "s.ome.tif", np.arange(2 * 6 * 7, dtype=np.uint16).reshape(2, 6, 7), ome=True,
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                               "Channel": {"Name": ["DAPI", "GFP"]}})
    return Sample(tmp / "s.ome.tif")


def _slide(tmp: Path) -> Sample:
    base = (np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3)
    with tifffile.TiffWriter(tmp / "s.tif") as tw:  # a non-OME pyramid with its pixel size (0.5 um) in cm
        tw.write(base, subifds=1, tile=(16, 16), photometric="rgb", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
        tw.write(base[::2, ::2], subfiletype=1, tile=(16, 16), photometric="rgb")
    return Sample(tmp / "s.tif")


def _geojson(tmp: Path) -> Sample:
    square = [[[1, 1], [5, 1], [5, 4], [1, 4], [1, 1]]]
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square},
         "properties": {"objectType": "annotation", "classification": {"name": "Necrosis", "color": [1, 2, 3]}}}]}
    (tmp / "a.geojson").write_text(json.dumps(doc))
    slide = spatial_image(np.zeros((6, 8)), spacing=0.0005, modality="HISTO", base_pixel_size_um=0.5)
    return Sample(tmp / "a.geojson", {"reference": slide})


def _png(tmp: Path) -> Sample:
    Image.fromarray(np.arange(6 * 7 * 3, dtype=np.uint8).reshape(6, 7, 3)).save(tmp / "s.png")
    return Sample(tmp / "s.png", {"spacing": 0.0005})


def _jpeg(tmp: Path) -> Sample:
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(tmp / "s.jpg", quality=95)
    return Sample(tmp / "s.jpg", {"spacing": 0.0005})


def _omezarr(tmp: Path) -> Sample:
    img = spatial_image(np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8), spacing=0.02, dims=("c", "y", "x"),
                        channels=[544.18, 760.58])
    return Sample(save(img, tmp / "s.ome.zarr"))


def _dicom(tmp: Path) -> Sample:
    _, paths = syn.write_series(tmp / "ct", _volume(), intercepts=[-1024] * 3)
    return Sample(sorted(paths)[0])


def _dicom_folder(tmp: Path) -> Sample:
    syn.write_series(tmp / "ct", _volume(), intercepts=[-1024] * 3)
    return Sample(tmp / "ct")


def _rtstruct(tmp: Path) -> Sample:
    sq = np.array([[-3.5, -3.5, 12.0], [-0.5, -3.5, 12.0], [-0.5, -0.5, 12.0], [-3.5, -0.5, 12.0]])
    return Sample(syn.rtstruct(tmp / "rs.dcm", {"GTV": [sq]}), {"reference": _reference()})


def _seg(tmp: Path) -> Sample:
    plane = np.zeros((4, 5), np.uint8)
    plane[1:3, 2:4] = 1
    p = syn.seg(tmp / "seg.dcm", {1: "tumour"}, [(1, (-4.0, -3.0, 12.0), plane)])
    return Sample(p, {"reference": _reference()})


_IMZML_AXIS = np.sort(np.random.default_rng(0).uniform(100, 400, 30))


def _imzml(tmp: Path) -> Sample:
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(1)
    axis = _IMZML_AXIS
    with ImzMLWriter(str(tmp / "s.imzML"), mode="continuous", polarity="positive") as w:
        for y in range(1, 3):
            for x in range(1, 4):
                w.addSpectrum(axis, rng.uniform(0, 100, axis.size), (x, y))
    return Sample(tmp / "s.imzML", {"cache": False})


def _imc(tmp: Path) -> Sample:
    from ._imc_synth import imc_txt

    return Sample(imc_txt(tmp / "s.txt", np.arange(3 * 4 * 5, dtype=float).reshape(3, 4, 5)))


#: every format's sample writer; a format of FORMATS missing here fails the tests below
SAMPLES: dict[str, Callable[[Path], Sample]] = {
    "omezarr": _omezarr,
    "nifti": _nifti,
    "rtstruct": _rtstruct,
    "seg": _seg,
    "dicom": _dicom,
    "dicom-folder": _dicom_folder,
    "nrrd": _nrrd,
    "slide": _slide,
    "tiff": _tiff,
    "png": _png,
    "jpeg": _jpeg,
    "imzml": _imzml,
    "imc": _imc,
    "geojson": _geojson,
    "metaimage": _metaimage,
}


def _corrupt_omezarr(sample: Sample, tmp: Path) -> tuple[Path, str]:
    cut = tmp / "cut.ome.zarr"
    shutil.copytree(sample.path, cut)
    meta = cut / "zarr.json"
    meta.write_bytes(meta.read_bytes()[: meta.stat().st_size // 2])
    return cut, cut.name


def _corrupt_dicom_folder(sample: Sample, tmp: Path) -> tuple[Path, str]:
    cut = tmp / "cut"
    shutil.copytree(sample.path, cut)
    victim = sorted(cut.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-40])
    return cut, victim.name


#: folder formats: truncating a folder is not meaningful, so a file inside is corrupted instead
CORRUPT: dict[str, Callable[[Sample, Path], tuple[Path, str]]] = {
    "omezarr": _corrupt_omezarr,
    "dicom-folder": _corrupt_dicom_folder,
}


def _names(formats: list[Format]) -> list[str]:
    return [f.name for f in formats]


@pytest.fixture(params=FORMATS, ids=_names(FORMATS))
def fmt(request) -> Format:
    return request.param


@pytest.fixture
def sample(fmt: Format, tmp_path: Path) -> Sample:
    writer = SAMPLES.get(fmt.name)
    if writer is None:
        pytest.fail(f"format {fmt.name!r} is in FORMATS but has no sample: add a writer to SAMPLES in {__file__}")
    (tmp_path / "sample").mkdir()
    return writer(tmp_path / "sample")


def test_every_sample_is_a_listed_format():
    assert sorted(SAMPLES) == sorted(_names(FORMATS)), "SAMPLES and FORMATS must name the same formats"


def test_format_fields(fmt: Format):
    assert fmt.name and fmt.description and "\n" not in fmt.description
    assert isinstance(fmt.options, frozenset) and all(isinstance(o, str) for o in fmt.options)
    assert all(s == s.lower() and s.startswith(".") for s in fmt.suffixes + fmt.write_suffixes)
    assert (fmt.write is None) == (not fmt.write_suffixes)
    assert format_named(fmt.name) is fmt
    assert fmt.name in formats_table()


def test_sniffed_and_loads_to_a_valid_image(fmt: Format, sample: Sample):
    assert sniff(sample.path) == fmt.name
    img = load(sample.path, **sample.options)
    validate(img)
    assert img.size > 0 and np.isfinite(np.asarray(img.values, dtype=float)).all()


def test_unknown_option_is_a_type_error_naming_the_accepted_set(fmt: Format, sample: Sample):
    with pytest.raises(TypeError) as err:
        load(sample.path, **sample.options, not_an_option=1)
    msg = str(err.value)
    assert sample.path.name in msg and fmt.name in msg and "not_an_option" in msg
    assert str(sorted(accepted_options(fmt))) in msg


def test_truncated_copy_is_a_load_error_naming_the_file(fmt: Format, sample: Sample, tmp_path: Path):
    if sample.path.is_dir():
        corrupt = CORRUPT.get(fmt.name)
        if corrupt is None:
            pytest.skip(f"{fmt.name} is a folder format: truncation is not meaningful and no corruption is defined")
        cut, named = corrupt(sample, tmp_path)
    else:
        where = tmp_path / "cut"
        where.mkdir()
        cut = where / sample.path.name
        raw = sample.path.read_bytes()
        cut.write_bytes(raw[: len(raw) // 2])
        for c in companions(sample.path):  # companions stay whole: the file itself is cut
            shutil.copy(c, where / c.name)
        named = cut.name
    with pytest.raises(LoadError) as err:
        img = load(cut, **sample.options)
        np.asarray(img.values)  # lazy readers fail when the voxels are read
    assert named in str(err.value)


def test_describe_agrees_with_load(fmt: Format, sample: Sample):
    d = describe(sample.path, **sample.options)
    img = load(sample.path, **sample.options)
    assert d["format"] == fmt.name
    assert d["dims"] == tuple(img.dims) and d["shape"] == tuple(img.shape)
    assert d["spacing"] == tuple(spacing(img)) and d["origin"] == tuple(origin(img))


def test_companions_exist(fmt: Format, sample: Sample):
    found = companions(sample.path)
    assert all(isinstance(c, Path) and c.exists() for c in found)
    assert sample.path not in found
    assert all(c in fmt.companions(sample.path) for c in found)


def test_writer_round_trips_geometry_exactly(fmt: Format, tmp_path: Path):
    if fmt.write is None:
        pytest.skip(f"{fmt.name} has no writer")
    img = spatial_image(np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5), spacing=(2.0, 0.5, 0.25),
                        origin=(1.0, -2.0, 3.0), direction=np.diag([1.0, -1.0, 1.0]), modality="MR", units="ms")
    for sfx in fmt.write_suffixes:
        out = fmt.write(img, tmp_path / f"rt{sfx}")
        assert sniff(out) == fmt.name
        back = load(out)
        assert back.dims == img.dims and back.shape == img.shape
        assert spacing(back) == spacing(img) and origin(back) == origin(img)
        np.testing.assert_array_equal(direction(back), direction(img))
        np.testing.assert_array_equal(back.values, img.values)
        assert back.attrs["modality"] == "MR" and back.attrs["units"] == "ms"


# --------------------------------------------------------------------------------------------
# the generic options and helpers of the registry
# --------------------------------------------------------------------------------------------


def test_channels_equals_the_native_channel_option(tmp_path):
    s = _imzml(tmp_path)
    target = float(_IMZML_AXIS[5])
    via_channels = load(s.path, channels=[target], tol=5, tol_unit="ppm", cache=False)
    via_mz = load(s.path, mz=[target], tol=5, tol_unit="ppm", cache=False)
    np.testing.assert_array_equal(via_channels.values, via_mz.values)
    assert via_channels.values.sum() > 0
    assert via_channels.dims == via_mz.dims and via_channels.attrs.keys() == via_mz.attrs.keys()
    with pytest.raises(TypeError, match="not both"):
        load(s.path, channels=[target], mz=[target], cache=False)


def test_channels_selects_by_name_or_value(tmp_path):
    t = _tiff(tmp_path)
    gfp = load(t.path, channels=["GFP"])
    assert gfp.coords["c"].values.tolist() == ["GFP"]
    np.testing.assert_array_equal(gfp.values[0], load(t.path).values[1])
    z = _omezarr(tmp_path)
    assert load(z.path, channels=[760.58]).coords["c"].values.tolist() == [760.58]
    assert describe(z.path, channels=[760.58])["channels"] == [760.58]
    with pytest.raises(LoadError) as err:
        load(t.path, channels=["RFP"])
    msg = str(err.value)
    assert "s.ome.tif" in msg and "channels" in msg and "RFP" in msg and "DAPI" in msg and "GFP" in msg
    with pytest.raises(LoadError, match="no channel dim"):
        load(_nifti(tmp_path).path, channels=["x"])


def test_companions_of_imzml_and_detached_headers(tmp_path):
    s = _imzml(tmp_path)
    assert companions(s.path) == [tmp_path / "s.ibd"]
    (tmp_path / "s.ibd").rename(tmp_path / "s.IBD")
    assert companions(s.path) == [tmp_path / "s.IBD"]
    img = spatial_image(np.zeros((2, 3, 4), np.float32), spacing=1.0)
    mhd = save(img, tmp_path / "v.mhd")
    data = companions(mhd)
    assert len(data) == 1 and data[0].suffix in (".raw", ".zraw") and data[0].is_file()
    assert companions(save(img, tmp_path / "v.nii.gz")) == []
    assert companions(_dicom_folder(tmp_path).path) == []


def test_reference_options(tmp_path):
    s = _imzml(tmp_path)
    with pytest.raises(TypeError, match="reference=/resample="):
        load(s.path, reference=_reference(), cache=False)
    rs = _rtstruct(tmp_path)
    mask = load(rs.path, reference=rs.options["reference"], resample=True)
    assert mask.attrs["aspect"] == "mask" and int(mask.sum()) == 9


def test_rtstruct_only_folder_is_sniffed_as_rtstruct(tmp_path):
    rs = _rtstruct(tmp_path / "rs")
    assert sniff(tmp_path / "rs") == "rtstruct"
    d = describe(tmp_path / "rs")
    assert d["format"] == "rtstruct" and d["rois"] == ["GTV (1 contours)"]
    with pytest.raises(LoadError, match="reference="):
        load(tmp_path / "rs")
    np.testing.assert_array_equal(load(tmp_path / "rs", **rs.options).values, load(rs.path, **rs.options).values)


def test_format_named_and_format_checks():
    with pytest.raises(KeyError, match="nifti"):
        format_named("no-such-format")
    with pytest.raises(ValueError, match="lower case"):
        Format("x", sniff=lambda h, p: False, read=lambda p: None, options=frozenset(), suffixes=(".TIF",))
    with pytest.raises(ValueError, match="channel_option"):
        Format("x", sniff=lambda h, p: False, read=lambda p: None, options=frozenset(), channel_option="mz")


def test_io_imports_have_no_cycle_and_no_foreign_private_names():
    """Module-level and function-level imports inside multiscale.io form no cycle (dispatch <-> masks was one);
    no module imports a ``_name`` from another module; io imports no registration, analysis or pipeline."""
    root = Path(__file__).resolve().parents[2] / "multiscale" / "io"
    graph: dict[str, set[str]] = {}
    for p in root.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level == 1:
                    deps.update([mod.split(".")[0]] if mod else [a.name for a in node.names])
                elif mod.startswith("multiscale.io."):
                    deps.add(mod.split(".")[2])
                assert not mod.startswith(("multiscale.registration", "multiscale.analysis", "multiscale.pipeline")), p
                assert not any(a.name.startswith("_") for a in node.names), (p.name, mod)
        graph[p.stem] = deps - {p.stem}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for d in graph.get(start, ()):
            if d == goal or (d not in seen and reaches(d, goal, seen | {d})):
                return True
        return False

    cycles = [m for m in graph if reaches(m, m, {m})]
    assert cycles == []
