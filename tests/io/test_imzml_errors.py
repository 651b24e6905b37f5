"""imzML bad input: every failure is a clear error naming the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from multiscale.io import read_imzml
from multiscale.io._imzml_parse import ImzMLError
from tests.io.test_imzml_files import grid, random_spectra, write_imzml


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_imzml(tmp_path / "e.imzML", random_spectra(grid(3, 2), np.random.default_rng(0)))


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="latin-1")
    assert old in text
    path.write_text(text.replace(old, new, count), encoding="latin-1")


def test_missing_ibd(good: Path) -> None:
    good.with_suffix(".ibd").unlink()
    with pytest.raises(ImzMLError, match=r"e\.imzML: the binary data file e\.ibd was not found.*pass ibd="):
        read_imzml(good)


def test_missing_imzml(tmp_path: Path) -> None:
    with pytest.raises(ImzMLError, match="no such imzML file"):
        read_imzml(tmp_path / "nothing.imzML")


def test_truncated_ibd_names_the_spectrum(good: Path) -> None:
    ibd = good.with_suffix(".ibd")
    data = ibd.read_bytes()
    ibd.write_bytes(data[: len(data) - 50])
    with pytest.raises(ImzMLError, match=r"e\.ibd: spectrum 5 \(x=3, y=2, z=1\): the intensity array ends at byte \d+ but the \.ibd has only \d+ bytes.*truncated"):
        read_imzml(good)


def test_offset_past_the_end_names_the_spectrum(good: Path) -> None:
    text = good.read_text(encoding="latin-1")
    first = text.index('accession="IMS:1000102"', text.index('<spectrum id="s2"'))
    start = text.index('value="', first) + 7
    end = text.index('"', start)
    good.write_text(text[:start] + "999999999" + text[end:], encoding="latin-1")
    with pytest.raises(ImzMLError, match=r"spectrum 2 \(x=3, y=1, z=1\): the m/z array ends at byte"):
        read_imzml(good)


def test_mismatched_mz_and_intensity_lengths(tmp_path: Path) -> None:
    spectra = random_spectra(grid(2, 2), np.random.default_rng(1))
    c, mz, it = spectra[1]
    spectra[1] = (c, mz, it[:-3])
    path = write_imzml(tmp_path / "len.imzML", spectra)
    with pytest.raises(ImzMLError, match=r"spectrum 1 \(x=2, y=1, z=1\) has \d+ m/z values but \d+ intensities"):
        read_imzml(path)


def test_malformed_xml_names_the_line(good: Path) -> None:
    lines = good.read_text(encoding="latin-1").split("\n")
    k = next(i for i, ln in enumerate(lines) if "<scanSettings" in ln)
    lines[k] = lines[k].replace("<scanSettings", "<scanSettings broken=")
    good.write_text("\n".join(lines), encoding="latin-1")
    with pytest.raises(ImzMLError, match=rf"e\.imzML: malformed XML at line {k + 1}, column \d+"):
        read_imzml(good)


def test_cut_short_xml(good: Path) -> None:
    text = good.read_text(encoding="latin-1")
    good.write_text(text[: len(text) // 2], encoding="latin-1")
    with pytest.raises(ImzMLError, match="malformed XML at line"):
        read_imzml(good)


@pytest.mark.parametrize(
    "term",
    [("MS:1002312", "MS-Numpress linear prediction compression"), ("MS:1009999", "some future compression")],
)
def test_other_compression_is_refused(tmp_path: Path, term) -> None:
    path = write_imzml(tmp_path / "np.imzML", random_spectra(grid(2, 1), np.random.default_rng(2)), compression=term)
    with pytest.raises(ImzMLError, match=rf"uses '{term[1]}' \({term[0]}\); only uncompressed and zlib"):
        read_imzml(path)


def test_corrupt_zlib_names_the_spectrum(tmp_path: Path) -> None:
    path = write_imzml(tmp_path / "z.imzML", random_spectra(grid(2, 1), np.random.default_rng(3)), compression="zlib")
    ibd = path.with_suffix(".ibd")
    data = bytearray(ibd.read_bytes())
    data[16:26] = b"\x00" * 10  # damage spectrum 0's m/z stream
    ibd.write_bytes(bytes(data))
    ds = read_imzml(path)
    with pytest.raises(ImzMLError, match=r"spectrum 0 \(x=1, y=1, z=1\): the m/z array is not valid zlib data"):
        ds.ion_images([200.0])


def test_missing_data_type(good: Path) -> None:
    edit(good, 'accession="MS:1000523"', 'accession="MS:0000000"')
    with pytest.raises(ImzMLError, match="the m/z array has no data type term"):
        read_imzml(good)


def test_missing_position(good: Path) -> None:
    edit(good, '<cvParam cvRef="IMS" accession="IMS:1000051" name="position y" value="1"/>', "")
    with pytest.raises(ImzMLError, match=r"spectrum 0 \(id 's0'\) position y \(IMS:1000051\) is missing"):
        read_imzml(good)


def test_bad_arguments(good: Path) -> None:
    ds = read_imzml(good)
    with pytest.raises(ValueError, match="tol_unit must be 'ppm' or 'da'"):
        ds.ion_images([200.0], tol_unit="mDa")
    with pytest.raises(ValueError, match="reduce must be"):
        ds.ion_images([200.0], reduce="median")
    with pytest.raises(ValueError, match="finite and > 0"):
        ds.ion_images([-1.0])
    with pytest.raises(ValueError, match="check_uuid must be"):
        read_imzml(good, check_uuid="maybe")
    with pytest.raises(ValueError, match="engine must be"):
        read_imzml(good, engine="gpu")
    with pytest.raises(TypeError):
        read_imzml(good, pixel_size=5)  # unknown options are not silently ignored
