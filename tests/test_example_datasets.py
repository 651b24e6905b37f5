"""Tests of the example study generator (``example_datasets.generate``), at size="small".

The files are read with SimpleITK, tifffile and pyimzML only (not multiscale.io), so that the study
is checked independently of the loaders that will read it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from scipy import ndimage

from example_datasets.generate import (
    DATA_FILES,
    FILES,
    SIZES,
    StudyExistsError,
    generate,
    main,
    study_is_complete,
)

OME_NS = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("study") / "s0", seed=0, size="small")


@pytest.fixture(scope="module")
def gt(study: Path) -> dict:
    return json.loads((study / "ground_truth.json").read_text())


def _sha(p: Path) -> str:
    """A file's SHA-256; a folder's (an OME-Zarr) over its files' relative paths and bytes, in path order."""
    if p.is_file():
        return hashlib.sha256(p.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for q in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(q.relative_to(p).as_posix().encode() + b"\0" + q.read_bytes())
    return h.hexdigest()


def _size(p: Path) -> int:
    return p.stat().st_size if p.is_file() else sum(q.stat().st_size for q in p.rglob("*") if q.is_file())


def _msi(study: Path):
    from pyimzml.ImzMLParser import ImzMLParser

    return ImzMLParser(str(study / "msi.imzML"))


def _ion_image(parser, shape_yx, mz: float, ppm: float = 5.0) -> np.ndarray:
    img = np.zeros(shape_yx)
    for i, (x, y, *_) in enumerate(parser.coordinates):
        m, it = parser.getspectrum(i)
        img[y - 1, x - 1] = it[np.abs(m - mz) <= ppm * 1e-6 * mz].sum()
    return img


# ---------------------------------------------------------------------------------------------
# determinism, manifest, overwrite protection
# ---------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_other_seed_differs(study: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", seed=0, size="small")
    other = generate(tmp_path / "other", seed=1, size="small")
    for name in DATA_FILES + ("ground_truth.json",):
        assert _sha(study / name) == _sha(again / name), name
    for name in ("mri.nii.gz", "pet.nii.gz", "fluorescence.ome.tif", "msi.ibd", "msi.imzML", "ground_truth.json"):
        assert _sha(study / name) != _sha(other / name), name


def test_manifest_checksums_are_the_files(study: Path, gt: dict) -> None:
    assert sorted(p.name for p in study.iterdir()) == sorted({f.split("/")[0] for f in FILES})
    man = json.loads((study / "manifest.json").read_text())
    assert (man["seed"], man["size"]) == (0, "small")
    for name, entry in man["files"].items():
        assert _sha(study / name) == entry["sha256"]
        assert _size(study / name) == entry["bytes"]
    for name in DATA_FILES:  # the ground truth records the data files too
        assert gt["files"][name]["sha256"] == man["files"][name]["sha256"]
    assert study_is_complete(study, seed=0, size="small")
    assert not study_is_complete(study, seed=1)
    assert not study_is_complete(study, size="full")


def _copy(study: Path, dest: Path) -> Path:
    shutil.copytree(study, dest)
    return dest


def test_complete_study_is_not_rewritten(study: Path, tmp_path: Path) -> None:
    out = _copy(study, tmp_path / "s")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert generate(out, seed=0, size="small") == out
    assert generate(out, seed=0, size="small", overwrite=True) == out  # complete and equal: nothing to do
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_different_study_is_not_overwritten_without_overwrite(study: Path, tmp_path: Path) -> None:
    out = _copy(study, tmp_path / "s")
    with pytest.raises(StudyExistsError, match=r"seed=0.*overwrite=True"):
        generate(out, seed=2, size="small")
    assert json.loads((out / "manifest.json").read_text())["seed"] == 0  # untouched
    generate(out, seed=2, size="small", overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
    assert study_is_complete(out, seed=2, size="small")
    assert not any(p.name.startswith(".s.") for p in tmp_path.iterdir())  # no temporary folders left


def test_edited_study_and_foreign_folder_are_refused(study: Path, tmp_path: Path) -> None:
    out = _copy(study, tmp_path / "s")
    pet = out / "pet.nii.gz"
    pet.write_bytes(pet.read_bytes()[:-10])  # a truncated file
    assert not study_is_complete(out, seed=0, size="small")
    with pytest.raises(StudyExistsError, match="do not match its manifest"):
        generate(out, seed=0, size="small")
    generate(out, seed=0, size="small", overwrite=True)
    assert study_is_complete(out, seed=0, size="small")

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(StudyExistsError, match="not a study"):
        generate(foreign, seed=0, size="small")
    assert (foreign / "mine.txt").read_text() == "keep me"
    with pytest.raises(StudyExistsError, match="is not a folder"):
        generate(foreign / "mine.txt", seed=0, size="small", overwrite=True)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size='full' or size='small'"):
        generate(tmp_path / "x", size="huge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative integer"):
        generate(tmp_path / "x", seed=-1)
    assert not (tmp_path / "x").exists()


def test_command_line(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _copy(study, tmp_path / "cli")  # complete: the command line finds it and does nothing
    assert main(["--out", str(tmp_path / "cli"), "--seed", "0", "--size", "small"]) == 0
    assert "MB" in capsys.readouterr().out
    assert study_is_complete(tmp_path / "cli", seed=0, size="small")
    assert main(["--out", str(tmp_path / "cli"), "--seed", "5", "--size", "small"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_small_study_size_on_disk(study: Path) -> None:
    total = sum(p.stat().st_size for p in study.rglob("*") if p.is_file())
    # small: a few MB (the full study is measured in benchmarks/results); the extra parts (DCE, optoacoustics,
    # IHC, cells, intravital, cohort) are written at one size, about 3 MB of it
    assert total < 8e6


# ---------------------------------------------------------------------------------------------
# every file readable, with the stated geometry
# ---------------------------------------------------------------------------------------------


def test_volumes_read_with_stated_geometry(study: Path, gt: dict) -> None:
    g = SIZES["small"]
    for name, grid, dtype in (("mri.nii.gz", "mri", np.int16), ("tumour_mask.nii.gz", "mri", np.uint8),
                              ("vessel_mask.nii.gz", "mri", np.uint8), ("pet.nii.gz", "pet", np.float32)):
        img = sitk.ReadImage(str(study / name))
        arr = sitk.GetArrayFromImage(img)
        info = gt["grids"][grid]
        assert arr.dtype == dtype, name
        assert list(arr.shape) == info["shape_zyx"], name
        np.testing.assert_allclose(img.GetSpacing(), info["spacing_xyz_mm"], rtol=1e-6)
        np.testing.assert_allclose(img.GetOrigin(), info["origin_xyz_mm"], atol=1e-6)
        np.testing.assert_allclose(img.GetDirection(), np.eye(3).ravel(), atol=1e-7)
    assert gt["grids"]["mri"]["spacing_xyz_mm"] == [g.mri_spacing] * 3
    assert gt["grids"]["pet"]["spacing_xyz_mm"] == [g.pet_spacing] * 3
    mri = sitk.GetArrayFromImage(sitk.ReadImage(str(study / "mri.nii.gz")))
    tum = sitk.GetArrayFromImage(sitk.ReadImage(str(study / "tumour_mask.nii.gz"))).astype(bool)
    assert set(np.unique(tum.astype(np.uint8))) == {0, 1}
    vol = tum.sum() * g.mri_spacing**3
    assert 50 < vol < 110  # a 5-6 mm tumour (designed ellipsoid 5.8 x 5.2 x 5.0 mm: 79 mm^3)
    assert vol == pytest.approx(gt["phantom"]["tumour_volume_mm3"])
    # T2-like: the tumour is brighter than air and than muscle-like background tissue
    assert np.median(mri[tum]) > 2 * np.median(mri[~tum & (mri > 150)] if (mri > 150).any() else 0) * 0.6
    assert np.median(mri[0]) < 100  # air at the bottom slice


def test_fluorescence_ome_tiff(study: Path, gt: dict) -> None:
    g = SIZES["small"]
    with tifffile.TiffFile(study / "fluorescence.ome.tif") as tf:
        assert tf.is_ome
        data = tf.series[0].asarray()
        assert tf.series[0].axes == "CYX"
        root = ET.fromstring(tf.ome_metadata)
    assert data.shape == (2, *g.fluo_shape) and data.dtype == np.uint16
    pixels = root.find(".//ome:Pixels", OME_NS)
    assert float(pixels.get("PhysicalSizeX")) == pytest.approx(g.fluo_px * 1000)
    assert float(pixels.get("PhysicalSizeY")) == pytest.approx(g.fluo_px * 1000)
    assert pixels.get("PhysicalSizeXUnit") == "µm"
    names = [c.get("Name") for c in pixels.findall("ome:Channel", OME_NS)]
    assert names == ["vessels", "nanoparticle dye"] == gt["grids"]["fluorescence"]["channels"]
    plane = pixels.find("ome:Plane", OME_NS)
    assert float(plane.get("PositionZ")) == pytest.approx(gt["transforms"]["section_in_mri"]["z0_mm"])
    mask = tifffile.imread(study / "section_mask.ome.tif")
    assert mask.shape == g.fluo_shape and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    # the dye is higher in the tumour rim than in the necrotic centre of the section
    dye = data[1].astype(float)
    depth = ndimage.distance_transform_edt(mask) * g.fluo_px
    assert dye[(mask == 1) & (depth < 0.15)].mean() > 3 * dye[(mask == 1) & (depth > 1.2)].mean()


def test_msi_imzml(study: Path, gt: dict) -> None:
    g = SIZES["small"]
    p = _msi(study)
    ny, nx = g.msi_shape
    assert len(p.coordinates) == ny * nx
    assert p.imzmldict["pixel size x"] == pytest.approx(g.msi_px * 1000)
    assert p.imzmldict["pixel size y"] == pytest.approx(g.msi_px * 1000)
    assert p.polarity == "positive" and p.spectrum_mode == "centroid"
    assert {c[0] for c in p.coordinates} == set(range(1, nx + 1))
    assert {c[1] for c in p.coordinates} == set(range(1, ny + 1))
    lengths = {len(p.getspectrum(i)[0]) for i in range(0, ny * nx, 7)}
    assert len(lengths) > 5  # processed mode: every spectrum its own m/z array
    xml = (study / "msi.imzML").read_text(encoding="ISO-8859-1")
    assert 'accession="IMS:1000031"' in xml  # processed
    assert 'accession="IMS:1000046"' in xml and 'accession="IMS:1000047"' in xml
    # UUID in the .ibd header equals the imzML's, and the SHA-1 is the .ibd's
    ibd = (study / "msi.ibd").read_bytes()
    uuid_xml = xml.split('name="universally unique identifier" value="')[1].split('"')[0]
    assert uuid_xml.strip("{}").replace("-", "").lower() == ibd[:16].hex()
    sha_xml = xml.split('name="ibd SHA-1" value="')[1].split('"')[0]
    assert sha_xml.lower() == hashlib.sha1(ibd).hexdigest()


def test_msi_ions_within_a_few_ppm_and_tic_low_off_tissue(study: Path, gt: dict) -> None:
    p = _msi(study)
    errors = {name: [] for name in gt["ions"]}
    tic = []
    for i in range(len(p.coordinates)):
        mz, it = p.getspectrum(i)
        tic.append(it.sum())
        for name, ion in gt["ions"].items():
            err = (mz - ion["mz"]) / ion["mz"] * 1e6
            k = np.argmin(np.abs(err))
            if abs(err[k]) < 10:  # the nearest peak (a random chemical-noise peak may sit close by)
                errors[name].append(err[k])
    for name, e in errors.items():
        e = np.abs(np.array(e))
        assert e.size > 300, name
        # designed jitter: sd 1 ppm per pixel + 0.5 ppm per peak (1.12 ppm in all): 95 % within 2.2 ppm
        assert np.median(e) < 1.5 and np.percentile(e, 95) < 3.0, name
    assert gt["ions"]["doxorubicin"]["mz"] == 544.1813 and gt["ions"]["haem b"]["mz"] == 616.1767
    msi = gt["grids"]["msi"]
    assert msi["median_tic_off_tissue"] < 0.1 * msi["median_tic_on_tissue"]
    tic = np.array(tic)
    assert np.percentile(tic, 5) < 0.1 * np.percentile(tic, 95)


# ---------------------------------------------------------------------------------------------
# the ground truth agrees with the data
# ---------------------------------------------------------------------------------------------


def _rigid(gt: dict, inverse: bool = False) -> sitk.Transform:
    T = np.array(gt["transforms"]["pet_to_mri"]["matrix_4x4"])
    if inverse:
        T = np.linalg.inv(T)
    tf = sitk.AffineTransform(3)
    tf.SetMatrix(T[:3, :3].ravel().tolist())
    tf.SetTranslation(T[:3, 3].tolist())
    return tf


def test_pet_to_mri_maps_mri_points_to_pet_points(study: Path, gt: dict) -> None:
    """Resampling the PET onto the MRI grid with ``pet_to_mri`` (fixed = MRI) must put the uptake on
    the tumour; the inverse transform (the classic direction mistake) must not."""
    mri = sitk.ReadImage(str(study / "tumour_mask.nii.gz"))
    tum = sitk.GetArrayFromImage(mri).astype(bool)
    pet = sitk.ReadImage(str(study / "pet.nii.gz"))
    tf = gt["transforms"]["pet_to_mri"]
    R, c, t = (np.array(tf[k]) for k in ("rotation_matrix", "centre_mm", "translation_mm"))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    assert 10 <= tf["rotation_angle_deg"] <= 15 and 1.0 <= np.linalg.norm(t) <= 2.0
    T = np.array(tf["matrix_4x4"])
    p = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(T[:3, :3] @ p + T[:3, 3], R @ (p - c) + c + t, atol=1e-9)

    def tumour_contrast(transform: sitk.Transform) -> float:
        a = sitk.GetArrayFromImage(sitk.Resample(pet, mri, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        rim = tum & ~ndimage.binary_erosion(tum, iterations=3)  # the outer ~0.75 mm of the tumour
        return float(a[rim].mean() / a[~tum & (a > 0.05)].mean())

    right, wrong = tumour_contrast(_rigid(gt)), tumour_contrast(_rigid(gt, inverse=True))
    assert right > 4.0 and right > 1.5 * wrong, (right, wrong)

    # centre of the tumour uptake in PET world, mapped back with T^-1, lands on the MRI tumour
    P = sitk.GetArrayFromImage(pet)
    hot = np.argwhere(P > 0.5 * P.max())[:, ::-1].astype(float)  # (x, y, z) indices
    pts = np.array([pet.TransformContinuousIndexToPhysicalPoint(h.tolist()) for h in hot])
    com_pet = pts.mean(axis=0)
    com_mri = np.array(mri.TransformContinuousIndexToPhysicalPoint(np.argwhere(tum)[:, ::-1].mean(0).tolist()))
    back = np.linalg.solve(T[:3, :3], com_pet - T[:3, 3])
    wrong_way = T[:3, :3] @ com_pet + T[:3, 3]
    assert np.linalg.norm(back - com_mri) < 0.6  # half a PET voxel plus the core's asymmetry
    assert np.linalg.norm(wrong_way - com_mri) > 1.5


def test_msi_to_fluorescence_maps_fluorescence_points_to_msi_points(study: Path, gt: dict) -> None:
    """The MSI haem image (vessels) must match the fluorescence vessel channel when the MSI pixels are
    mapped into the section with the inverse of ``msi_to_fluorescence``; not with the transform itself."""
    g = SIZES["small"]
    ny, nx = g.msi_shape
    haem = _ion_image(_msi(study), (ny, nx), gt["ions"]["haem b"]["mz"])
    ves = tifffile.imread(study / "fluorescence.ome.tif")[0].astype(float)
    ves = ndimage.gaussian_filter(ves, 0.5 * g.msi_px / g.fluo_px)
    T = np.array(gt["transforms"]["msi_to_fluorescence"]["matrix_3x3"])
    np.testing.assert_allclose(np.array(gt["transforms"]["msi_to_fluorescence"]["inverse_matrix_3x3"]) @ T,
                               np.eye(3), atol=1e-9)
    qx, qy = np.meshgrid(np.arange(nx) * g.msi_px, np.arange(ny) * g.msi_px)  # (X-1)*p, (Y-1)*p
    q = np.stack([qx.ravel(), qy.ravel(), np.ones(qx.size)])

    def r(H: np.ndarray) -> float:
        s = H @ q
        v = ndimage.map_coordinates(ves, [s[1] / g.fluo_px, s[0] / g.fluo_px], order=1, cval=np.nan)
        ok = np.isfinite(v)
        return float(np.corrcoef(v[ok], haem.ravel()[ok])[0, 1])

    right, wrong = r(np.linalg.inv(T)), r(T)
    assert right > 0.6 and right > wrong + 0.3, (right, wrong)
    design = gt["transforms"]["msi_to_fluorescence"]["design"]
    assert 5 <= abs(design["msi_to_section_rotation_deg"]) <= 10


def test_section_lies_in_the_mri_plane_z0(study: Path, gt: dict) -> None:
    """Fluorescence pixel (i, j) is at world (x = j p, y = i p, z = z0): the MRI tumour mask sampled
    there is the section's tumour mask."""
    g = SIZES["small"]
    z0 = gt["transforms"]["section_in_mri"]["z0_mm"]
    mask = tifffile.imread(study / "section_mask.ome.tif").astype(bool)
    mri = sitk.ReadImage(str(study / "tumour_mask.nii.gz"))
    tum = sitk.GetArrayFromImage(mri).astype(float)
    o = np.array(mri.GetOrigin())
    sp = np.array(mri.GetSpacing())
    ii, jj = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    coords = [np.full(ii.shape, (z0 - o[2]) / sp[2]), (ii * g.fluo_px - o[1]) / sp[1], (jj * g.fluo_px - o[0]) / sp[0]]
    sampled = ndimage.map_coordinates(tum, coords, order=1) > 0.5

    def dice(a: np.ndarray, b: np.ndarray) -> float:
        return 2 * (a & b).sum() / (a.sum() + b.sum())

    assert dice(sampled, mask) > 0.95
    coords[0] = coords[0] + 2.0 / sp[2]  # 2 mm off the plane
    assert dice(ndimage.map_coordinates(tum, coords, order=1) > 0.5, mask) < 0.9


def test_dye_radial_profile_matches_the_ground_truth(study: Path, gt: dict) -> None:
    """Bin means of the written dye channel (minus camera offset, over gain) vs depth from the
    section's tumour outline reproduce the ground-truth profile; the noise is Poisson at ~2000 counts."""
    g = SIZES["small"]
    prof = gt["radial_profiles"]["dye"]["design_bins_fluorescence_grid"]
    cam = gt["grids"]["fluorescence"]["camera"]
    dye = (tifffile.imread(study / "fluorescence.ome.tif")[1].astype(float) - cam["offset"]) / cam["gain_counts_per_unit"]
    mask = tifffile.imread(study / "section_mask.ome.tif").astype(bool)
    depth = ndimage.distance_transform_edt(mask) * g.fluo_px - g.fluo_px / 2
    edges = np.array(prof["depth_bin_edges_mm"])
    idx = np.clip(np.digitize(depth[mask], edges) - 1, 0, len(edges) - 2)
    means = np.bincount(idx, dye[mask], minlength=len(edges) - 1) / np.maximum(np.bincount(idx, minlength=len(edges) - 1), 1)
    n = np.array(prof["n"])
    ok = n > 200
    np.testing.assert_allclose(means[ok], np.array(prof["mean"], dtype=float)[ok], atol=0.01)
    assert prof["mean"][0] > 3 * prof["mean"][int(np.argmax(edges > 1.0))]  # high at the rim, low inside
    assert gt["radial_profiles"]["dye"]["design_slope_fit_0_0.5mm_per_mm"] < 0


def test_pet_radial_profile_falls_from_rim_to_core(study: Path, gt: dict) -> None:
    pet_gt = gt["radial_profiles"]["pet_uptake"]
    assert pet_gt["slope_suv_per_mm"] == -1.6
    # noiseless, unblurred design over viable tumour: the fitted ramp slope is the designed one
    # (the bins are 0.25 mm wide at a 0.25 mm grid and the texture modulates +-5 %: 10 %)
    assert pet_gt["design_slope_fit_viable_ramp_suv_per_mm"] == pytest.approx(-1.6, rel=0.1)
    assert pet_gt["design_bins_mri_grid"]["mean"][0] > 3 * pet_gt["design_bins_mri_grid"]["mean"][-1]
    # the PET itself, resampled onto the MRI with the true transform: rim > core
    mri = sitk.ReadImage(str(study / "tumour_mask.nii.gz"))
    tum = sitk.GetArrayFromImage(mri).astype(bool)
    pet = sitk.Resample(sitk.ReadImage(str(study / "pet.nii.gz")), mri, _rigid(gt), sitk.sitkLinear, 0.0)
    a = sitk.GetArrayFromImage(pet)
    depth = ndimage.distance_transform_edt(tum, sampling=mri.GetSpacing()[::-1])
    # the 1.5 mm PSF pulls the outermost 0.8 mm down (partial volume with the body), so compare the
    # second band with the core, as the stated noiseless PET-grid bins do
    assert a[tum & (depth > 0.8) & (depth < 1.6)].mean() > 1.2 * a[tum & (depth > 1.6)].mean()
    bins = pet_gt["pet_grid_noiseless_bins"]
    assert bins["mean"][1] > 1.2 * bins["mean"][2]


def test_designed_correlations_are_stated_and_sensible(gt: dict) -> None:
    c = gt["correlations"]
    design, written = c["msi_design"], c["msi_as_written"]
    assert set(design) == set(written)
    for k, v in design.items():
        assert -1 <= v <= 1 and -1 <= written[k] <= 1, k
        assert abs(written[k]) <= abs(v) + 0.02, k  # noise can only weaken a correlation (up to chance)
    assert design["DSPC_vs_dye"] > 0.7  # liposome lipid follows the liposome dye
    assert design["haem_b_vs_vessels"] > 0.5
    assert 0 < gt["manders"]["M1_dye_in_vessels"] < 1 and 0 < gt["manders"]["M2_vessels_in_dye"] <= 1


def test_separable_texture_equals_pointwise_texture() -> None:
    from example_datasets._phantom import make_phantom
    from example_datasets.generate import _points

    ph = make_phantom(4, (3.25, 3.0, 9.1))
    xs, ys, zs = np.linspace(0, 6, 13), np.linspace(1, 5, 7), np.linspace(8, 11, 4)
    for dz in (0.0, 37.0):
        ref = ph.texture(_points(xs, ys, zs) + np.array([0.0, 0.0, dz]))
        np.testing.assert_allclose(ph.texture_on_grid(xs, ys, zs, dz=dz), ref, atol=1e-5)
    assert 0.5 < ref.std() < 2.0  # unit-order amplitude, as documented


def test_pet_tumour_uptake_in_ground_truth_is_reproducible_from_the_files(study: Path, gt: dict) -> None:
    """Each PET voxel centre mapped with pet_to_mri^-1 and looked up (nearest) in the MRI tumour mask:
    the mean PET over those voxels is the stated ``tumour_mean_suv_pet_grid_written``."""
    pet = sitk.ReadImage(str(study / "pet.nii.gz"))
    mask = sitk.ReadImage(str(study / "tumour_mask.nii.gz"))
    P = sitk.GetArrayFromImage(pet)
    M = sitk.GetArrayFromImage(mask)
    T = np.array(gt["transforms"]["pet_to_mri"]["matrix_4x4"])
    kz, ky, kx = np.indices(P.shape)
    o, s = np.array(pet.GetOrigin()), np.array(pet.GetSpacing())
    pts = np.stack([kx, ky, kz], -1).reshape(-1, 3) * s + o  # identity direction
    src = np.linalg.solve(T[:3, :3], (pts - T[:3, 3]).T).T
    idx = np.round((src - np.array(mask.GetOrigin())) / np.array(mask.GetSpacing())).astype(int)[:, ::-1]
    inside = np.all((idx >= 0) & (idx < np.array(M.shape)), axis=1)
    tum = np.zeros(len(pts), bool)
    tum[inside] = M[tuple(idx[inside].T)] == 1
    up = gt["pet_uptake"]
    assert P.reshape(-1)[tum].mean() == pytest.approx(up["tumour_mean_suv_pet_grid_written"], rel=1e-5)
    # partial volume: the 1.5 mm PSF lowers the tumour mean below the designed one
    assert up["tumour_mean_suv_pet_grid_noiseless"] < up["tumour_mean_suv_design"]
    assert up["necrotic_core_mean_suv_design"] == pytest.approx(0.25)


def test_fluorescence_grid_correlations_are_reproducible_from_the_files(study: Path, gt: dict) -> None:
    """The stated 'as_written' Pearson (MSI resampled onto the fluorescence grid with the true transform,
    over the section mask) is what the files give: this is the value a pipeline with perfect
    registration must report."""
    g = SIZES["small"]
    ny, nx = g.msi_shape
    parser = _msi(study)
    fluo = tifffile.imread(study / "fluorescence.ome.tif").astype(float) - gt["grids"]["fluorescence"]["camera"]["offset"]
    mask = tifffile.imread(study / "section_mask.ome.tif").astype(bool)
    T = np.array(gt["transforms"]["msi_to_fluorescence"]["matrix_3x3"])
    ii, jj = np.indices(mask.shape)
    q = (np.stack([jj.ravel() * g.fluo_px, ii.ravel() * g.fluo_px], 1) @ T[:2, :2].T + T[:2, 2]) / g.msi_px
    sel = (q[:, 0] >= 0) & (q[:, 0] <= nx - 1) & (q[:, 1] >= 0) & (q[:, 1] <= ny - 1) & mask.ravel()
    expected = gt["correlations"]["fluorescence_grid_section_mask"]["as_written"]
    for ion, channel, key in (("haem b", 0, "haem_b_vs_vessels"), ("doxorubicin", 1, "doxorubicin_vs_dye")):
        img = _ion_image(parser, (ny, nx), gt["ions"][ion]["mz"], ppm=5.0)
        on_fluo = ndimage.map_coordinates(img, [q[sel, 1], q[sel, 0]], order=1)
        r = np.corrcoef(on_fluo, fluo[channel].ravel()[sel])[0, 1]
        assert r == pytest.approx(expected[key], abs=0.01), key  # 5 ppm windows may catch a noise peak
