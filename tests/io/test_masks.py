"""Masks: RTSTRUCT rasterisation (holes, several ROIs, frames of reference), label images, grid checks."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.image import same_grid, spatial_image
from multiscale.io import load
from multiscale.io._common import LoadError
from multiscale.io.masks import list_rois, match_grid, rasterize_contours, read_rtstruct

from . import _dicom_synth as syn


def _ref(nz=3, ny=20, nx=20, sp=(2.0, 1.0, 1.0), org=(10.0, -5.0, -5.0)):
    return spatial_image(np.zeros((nz, ny, nx), np.int16), spacing=sp, origin=org, modality="CT",
                         frame_of_reference_uid="1.2.3.4")


def _square(x0, y0, x1, y1, z):
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def test_square_fills_voxels_whose_centres_are_inside():
    ref = _ref()
    # voxel centres at x = -5, -4, ...; the square spans x in [-0.5, 3.5] -> centres 0..3 (4), same for y
    m = rasterize_contours([_square(-0.5, -0.5, 3.5, 3.5, 12.0)], ref)
    assert m.sum() == 16
    assert m[1].sum() == 16 and m[0].sum() == 0 and m[2].sum() == 0
    ys, xs = np.nonzero(m[1])
    assert set(ys) == {5, 6, 7, 8} and set(xs) == {5, 6, 7, 8}


def test_inner_contour_is_a_hole(tmp_path):
    ref = _ref()
    outer = _square(-4.5, -4.5, 5.5, 5.5, 12.0)  # 10 x 10 voxels
    inner = _square(-0.5, -0.5, 1.5, 1.5, 12.0)  # 2 x 2 voxels
    p = syn.rtstruct(tmp_path / "rs.dcm", {"ring": [outer, inner]})
    m = load(p, reference=ref)
    assert m.attrs["aspect"] == "mask" and m.attrs["roi"] == "ring"
    assert int(m.values.sum()) == 100 - 4
    assert m.values[1, 5, 5] == 0 and m.values[1, 1, 1] == 1


def test_several_rois_by_name(tmp_path):
    ref = _ref()
    p = syn.rtstruct(tmp_path / "rs.dcm", {"GTV": [_square(-0.5, -0.5, 1.5, 1.5, 10.0)],
                                           "Liver": [_square(-0.5, -0.5, 2.5, 2.5, 14.0)]})
    assert list_rois(p) == ["GTV", "Liver"]
    both = load(p, reference=ref)
    assert both.dims == ("c", "z", "y", "x") and list(both.coords["c"].values) == ["GTV", "Liver"]
    assert int(both.sel(c="GTV").sum()) == 4 and int(both.sel(c="Liver").sum()) == 9
    liver = load(p, reference=ref, roi="Liver")
    assert liver.dims == ("z", "y", "x") and int(liver.values[2].sum()) == 9
    with pytest.raises(LoadError, match="no ROI named"):
        load(p, reference=ref, roi="Heart")


def test_rtstruct_without_reference_is_an_error(tmp_path):
    p = syn.rtstruct(tmp_path / "rs.dcm", {"GTV": [_square(0, 0, 2, 2, 10.0)]})
    with pytest.raises(LoadError) as err:
        load(p)
    assert "rs.dcm" in str(err.value) and "reference=" in str(err.value)


def test_rtstruct_in_another_frame_of_reference_is_an_error(tmp_path):
    p = syn.rtstruct(tmp_path / "rs.dcm", {"GTV": [_square(0, 0, 2, 2, 10.0)]}, frame_uid="9.9.9")
    with pytest.raises(LoadError, match="ReferencedFrameOfReferenceUID"):
        load(p, reference=_ref())
    assert int(read_rtstruct(p, reference=_ref(), check_frame_of_reference=False).sum()) > 0


def test_rtstruct_on_dicom_series_grid(tmp_path):
    vol = np.zeros((4, 12, 10), np.int16)
    syn.write_series(tmp_path / "ct", vol, spacing_z=2.0, origin=(0.0, 0.0, 0.0), pixel_spacing=(1.0, 1.0))
    ct = load(tmp_path / "ct")
    p = syn.rtstruct(tmp_path / "rs.dcm", {"GTV": [_square(1.5, 2.5, 4.5, 6.5, 4.0)]})
    m = load(p, reference=ct)
    assert same_grid(m, ct)
    # x centres 2, 3, 4 and y centres 3..6 on slice z = 4 mm (index 2)
    assert m.values[2].sum() == 12 and m.values[2, 3:7, 2:5].all()


def test_label_mask_on_other_grid_is_error_unless_resampled(tmp_path):
    img = _ref(nz=2, ny=8, nx=8, sp=(1.0, 1.0, 1.0), org=(0.0, 0.0, 0.0))
    arr = np.zeros((2, 4, 4), np.uint8)
    arr[:, 1:3, 1:3] = 3
    s = sitk.GetImageFromArray(arr)
    s.SetSpacing((2.0, 2.0, 1.0))
    s.SetOrigin((0.5, 0.5, 0.0))  # voxel centres at 0.5, 2.5, ... mm: edges line up with the 1 mm grid
    sitk.WriteImage(s, str(tmp_path / "m.nrrd"))
    with pytest.raises(LoadError) as err:
        load(tmp_path / "m.nrrd", reference=img)
    assert "m.nrrd" in str(err.value) and "resample=True" in str(err.value)
    out = load(tmp_path / "m.nrrd", reference=img, resample=True)
    assert same_grid(out, img)
    assert set(np.unique(out.values)) == {0, 3}  # nearest neighbour keeps labels
    assert int((out.values == 3).sum()) == 2 * 16
    assert out.values[0, 2:6, 2:6].min() == 3


def test_match_grid_same_grid_passes_through():
    img = _ref()
    m = spatial_image(np.ones((3, 20, 20), np.uint8), spacing=(2.0, 1.0, 1.0), origin=(10.0, -5.0, -5.0))
    assert match_grid(m, img) is not None and same_grid(match_grid(m, img), img)


def test_not_an_rtstruct(tmp_path):
    _, paths = syn.write_series(tmp_path, np.zeros((2, 3, 3), np.int16))
    with pytest.raises(LoadError, match="not RTSTRUCT"):
        read_rtstruct(paths[0], reference=_ref())


# --- reference data ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT", "MR_T1", "PET"])
def test_sts019_rtstruct_matches_provider_mask(reference_data, name):
    root = reference_data / "ibsi-sts019"
    img = load(root / "dicom" / "STS_019" / name / "image")
    rs = next((root / "dicom" / "STS_019" / name / "mask").glob("*.dcm"))
    ours = load(rs, reference=img).values.astype(bool)
    theirs = load(root / "nifti" / "STS_019" / f"{name}_mask.nii.gz", reference=img).values > 0
    assert theirs.sum() > 100
    disagree = np.logical_xor(ours, theirs).sum()
    assert disagree <= 0.03 * theirs.sum()


def test_rtstruct_folder_and_float_label_images(tmp_path):
    ref = _ref()
    syn.rtstruct(tmp_path / "rs" / "RS.dcm", {"GTV": [_square(-0.5, -0.5, 1.5, 1.5, 12.0)]})
    assert int(load(tmp_path / "rs", reference=ref).sum()) == 4
    m = spatial_image(np.zeros((3, 20, 20), np.float32), spacing=(2.0, 1.0, 1.0), origin=(10.0, -5.0, -5.0))
    m[1, 2, 3] = 1.0
    from multiscale.io import save

    out = load(save(m, tmp_path / "m.nii.gz"), reference=ref)
    assert out.dtype == np.uint8 and out.attrs["aspect"] == "mask" and int(out.sum()) == 1
    m[1, 2, 3] = 0.4
    with pytest.raises(LoadError, match="non-integer"):
        load(save(m, tmp_path / "p.nii.gz"), reference=ref)


def test_float32_header_rounding_is_the_same_grid_but_a_shift_is_not():
    img = _ref(org=(-225.63, -143.554742, -87.890708))
    near = spatial_image(np.ones((3, 20, 20), np.uint8), spacing=(2.0, 1.0, 1.0),
                         origin=tuple(float(np.float32(v)) for v in (-225.63, -143.554742, -87.890708)))
    out = match_grid(near, img)
    np.testing.assert_array_equal(out.coords["x"].values, img.coords["x"].values)
    shifted = spatial_image(np.ones((3, 20, 20), np.uint8), spacing=(2.0, 1.0, 1.0),
                            origin=(-225.63, -143.554742, -87.890708 + 0.3))
    with pytest.raises(LoadError, match="grid"):
        match_grid(shifted, img)


def test_dicom_seg_frames_placed_on_reference(tmp_path):
    ref = _ref(nz=3, ny=6, nx=8, sp=(2.0, 1.0, 1.0), org=(10.0, -5.0, -5.0))
    a = np.zeros((4, 5), np.uint8)
    a[1:3, 2:4] = 1
    b = np.ones((4, 5), np.uint8)
    # frame of segment 1 on slice z = 12 mm (index 1), its corner at voxel (row 2, col 1)
    frames = [(1, (-4.0, -3.0, 12.0), a), (2, (-5.0, -5.0, 14.0), b)]
    p = syn.seg(tmp_path / "seg.dcm", {1: "tumour", 2: "muscle"}, frames)
    both = load(p, reference=ref)
    assert both.dims == ("c", "z", "y", "x") and list(both.coords["c"].values) == ["tumour", "muscle"]
    t = both.sel(c="tumour").values
    assert t.sum() == 4 and t[1, 3:5, 3:5].all()
    assert both.sel(c="muscle").values[2, :4, :5].all() and both.sel(c="muscle").values.sum() == 20
    one = load(p, reference=ref, segment="muscle")
    assert one.dims == ("z", "y", "x") and one.attrs["roi"] == "muscle"
    with pytest.raises(LoadError, match="reference="):
        load(p)
    off = syn.seg(tmp_path / "off.dcm", {1: "x"}, [(1, (-4.5, -3.0, 12.0), a)])
    with pytest.raises(LoadError, match="does not lie on the reference grid"):
        load(off, reference=ref)
