"""Imaging mass cytometry input: .mcd (synthetic file read through readimc) and the .txt export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from multiscale.errors import LoadError
from multiscale.image import spacing
from multiscale.io import load, sniff
from multiscale.io.imc import acquisitions_of, read_acquisitions

from ._imc_synth import PANEL, imc_mcd, imc_txt


def _data(seed: int = 0, shape=(3, 6, 8)) -> np.ndarray:
    return np.random.default_rng(seed).poisson(5, shape).astype(float)


def test_mcd_acquisitions_read_with_channels_and_pixel_size(tmp_path):
    a, b = _data(0), _data(1, (3, 4, 5))
    p = imc_mcd(tmp_path / "slide.mcd", {1: a, 2: b}, pixel_um=0.5)
    assert sniff(p) == "imc"
    img = load(p)
    assert img.dims == ("c", "y", "x") and img.coords["c"].values.tolist() == ["DNA1", "CD68", "PanCK"]
    assert img.attrs["channel_metals"] == ["Ir191", "Nd146", "Pt195"]
    assert spacing(img) == (0.0005, 0.0005) and img.attrs["modality"] == "IMC" and img.attrs["units"] == "counts"
    np.testing.assert_array_equal(img.values, a)
    second = load(p, acquisition=2)
    np.testing.assert_array_equal(second.values, b)
    assert [x["id"] for x in acquisitions_of(p)] == [1, 2]
    assert sorted(read_acquisitions(p)) == [1, 2]
    cd68 = load(p, channels=["CD68"])
    np.testing.assert_array_equal(cd68.values[0], a[1])


def test_txt_export_matches_the_mcd(tmp_path):
    a = _data(3)
    mcd = load(imc_mcd(tmp_path / "s.mcd", {1: a}))
    txt = load(imc_txt(tmp_path / "s.txt", a))
    np.testing.assert_array_equal(txt.values, mcd.values)
    assert txt.coords["c"].values.tolist() == mcd.coords["c"].values.tolist()
    assert spacing(txt) == (0.001, 0.001)             # IMC's 1 µm step, in mm
    assert spacing(load(tmp_path / "s.txt", pixel_size_um=2.0)) == (0.002, 0.002)


def test_repeated_or_empty_labels_fall_back_to_the_isotope(tmp_path):
    panel = [("DNA", "Ir", 191), ("DNA", "Ir", 193), ("", "Pt", 195)]
    img = load(imc_mcd(tmp_path / "s.mcd", {1: _data(0)}, panel=panel))
    assert img.coords["c"].values.tolist() == ["Ir191", "Ir193", "Pt195"]


def test_corrupt_mcd_is_a_load_error_naming_the_file(tmp_path):
    p = imc_mcd(tmp_path / "slide.mcd", {1: _data(0)})
    cut = tmp_path / "cut.mcd"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(LoadError, match=r"cut\.mcd.*truncated or corrupt"):
        load(cut)
    junk = tmp_path / "junk.mcd"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(LoadError, match="junk.mcd"):
        load(junk)
    # the data block shortened, the XML intact: the offsets point past the end of the file
    raw = p.read_bytes()
    xml_at = raw.find("<MCDSchema".encode("utf-16-le"))
    short = tmp_path / "short.mcd"
    short.write_bytes(raw[:40] + raw[xml_at:])
    with pytest.raises(LoadError, match="short.mcd"):
        load(short)


def test_unknown_acquisition_and_channel_list_what_exists(tmp_path):
    p = imc_mcd(tmp_path / "s.mcd", {1: _data(0), 5: _data(1)})
    with pytest.raises(LoadError, match=r"acquisitions are \[1, 5\]"):
        load(p, acquisition=3)
    with pytest.raises(LoadError) as err:
        load(p, channels=["CD3"])
    assert all(name in str(err.value) for name, _, _ in PANEL)


def test_truncated_txt_is_a_load_error(tmp_path):
    p = imc_txt(tmp_path / "s.txt", _data(0))
    text = p.read_text()
    (tmp_path / "cut.txt").write_text(text[: len(text) * 2 // 3])
    with pytest.raises(LoadError, match="cut.txt"):
        load(tmp_path / "cut.txt")


def test_an_imc_acquisition_feeds_the_object_functions(tmp_path):
    from multiscale.analysis.objects import object_table, segment_nuclei

    yy, xx = np.mgrid[:40, :40]
    dna = (((yy - 12) ** 2 + (xx - 12) ** 2) < 30) * 50.0 + (((yy - 28) ** 2 + (xx - 26) ** 2) < 30) * 50.0
    data = np.stack([dna, dna * 0.1, np.full((40, 40), 3.0)])
    img = load(imc_mcd(tmp_path / "s.mcd", {1: data}))
    labels = segment_nuclei(img, channel="DNA1", diameter_um=10, sigma_um=0.5)
    table = object_table(labels, img)
    assert len(table) == 2 and np.allclose(table["mean_PanCK"], 3.0)
    assert Path(tmp_path / "s.mcd").exists()
