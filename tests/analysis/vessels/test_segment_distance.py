"""Segmentation (against scikit-image's own filters, chunked vs whole) and distance maps against analytic tubes."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.filters import frangi, meijering, sato

from multiscale.analysis.vessels import distance_to_vessels, radius_map, segment_vessels, vessel_graph, vesselness
from multiscale.analysis.vessels.segment import vesselness_array
from multiscale.analysis.vessels.synthetic import Tube, VesselTree, branching_tree, helix, vessel_intensity
from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import spatial_image


def test_vesselness_equals_scikit_image_on_unit_voxels():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:30, :30]
    img = rng.random((30, 30)) + 3 * np.exp(-((xx - 12 - 0.3 * yy) ** 2) / 6)
    s = 2.0
    g = 0.25 * np.ptp(img)
    ours = vesselness_array(img, (1.0, 1.0), [s], "frangi")
    # our Hessian is scale-normalised (x s^2), so scikit-image's gamma is ours / s^2
    np.testing.assert_allclose(ours, frangi(img, sigmas=[s], black_ridges=False, mode="nearest", gamma=g / s**2),
                               atol=1e-4)
    np.testing.assert_allclose(vesselness_array(img, (1.0, 1.0), [s], "sato"),
                               sato(img, sigmas=[s], black_ridges=False, mode="nearest"), atol=1e-4)
    m = vesselness_array(img, (1.0, 1.0), [s], "meijering")
    np.testing.assert_allclose(m / m.max(), meijering(img, sigmas=[s], black_ridges=False, mode="nearest"), atol=1e-4)


def test_anisotropic_voxels_see_the_same_tube():
    """A tube sampled with 2:1 voxels answers like the same tube on isotropic voxels (physical Hessian)."""
    t = VesselTree([Tube(np.array([[0.0, 1.0, 0.5], [2.0, 1.0, 2.5]]), 0.1)])
    iso = vessel_intensity(t, (40, 40, 60), 0.05)
    ani = vessel_intensity(t, (20, 40, 60), (0.1, 0.05, 0.05))
    v_iso = vesselness_array(iso, (0.05,) * 3, [0.07], "sato")
    v_ani = vesselness_array(ani, (0.1, 0.05, 0.05), [0.07], "sato")
    assert v_ani.max() == pytest.approx(v_iso.max(), rel=0.15)


@pytest.mark.parametrize("nd", [2, 3])
def test_segmentation_recovers_tree_and_chunks_agree(nd):
    ext = (4.0, 4.0) if nd == 2 else (3.0, 3.0, 3.0)
    sp = (0.04, 0.04) if nd == 2 else (0.06, 0.04, 0.04)
    t = branching_tree(ext, depth=2, root_radius=0.12, seed=1)
    shape = tuple(int(e / s) for e, s in zip(ext, sp))
    img = spatial_image(vessel_intensity(t, shape, sp, noise=0.05, blur_mm=0.02, seed=1), spacing=sp, units="a.u.")
    m = segment_vessels(img, scales_mm=[0.04, 0.08])
    truth = t.mask(shape, sp)
    seg = m.values > 0
    assert 2 * (seg & truth).sum() / (seg.sum() + truth.sum()) > 0.6
    g = vessel_graph(m)
    assert g.metric("total_length_mm") == pytest.approx(t.total_length_mm, rel=0.1)
    assert g.metric("n_branch_points") == len(t.branch_points)
    chunked = segment_vessels(img, scales_mm=[0.04, 0.08], chunks=tuple(-(-n // 2) for n in shape))
    np.testing.assert_array_equal(chunked.values, m.values)
    assert m.attrs["spacing"] == img.attrs["spacing"] and m.dims == img.dims
    lazy = vesselness(img.chunk(40), scales_mm=[0.04, 0.08])
    assert hasattr(lazy.data, "dask")


def test_segmentation_hysteresis_and_bad_scales():
    t = VesselTree([Tube(np.array([[1.0, 0.2], [1.0, 1.8]]), 0.06)])
    img = spatial_image(vessel_intensity(t, (50, 50), 0.04, noise=0.02), spacing=0.04)
    m = segment_vessels(img, scales_mm=[0.04], threshold="hysteresis")
    assert m.values[25, 10:40].all()
    with pytest.raises(AnalysisError, match="scales_mm"):
        segment_vessels(img, scales_mm=[-1.0])
    with pytest.warns(AnalysisWarning, match="no vessel"):
        segment_vessels(spatial_image(np.zeros((20, 20)), spacing=0.1), scales_mm=[0.1])


@pytest.mark.parametrize("sp", [(0.05, 0.05, 0.05), (0.06, 0.04, 0.05), (0.1, 0.05, 0.05), (0.05, 0.08)])
def test_distance_to_wall_matches_analytic_tube_within_half_a_voxel(sp):
    if len(sp) == 3:
        t = VesselTree([Tube(np.array([[0.5, 0.6, 0.4], [2.2, 2.4, 2.6]]), 0.15),
                        Tube(helix(0.5, 1.5, 1, (0.4, 1.5, 1.5)), 0.1)])
    else:
        t = VesselTree([Tube(np.array([[0.5, 0.6], [2.2, 2.4]]), 0.15), Tube(np.array([[2.5, 0.3], [0.4, 2.8]]), 0.08)])
    shape = tuple(int(3 / s) for s in sp)
    true = t.axis_distance(shape, sp, reach=10.0)
    m = true < 0
    d = distance_to_vessels(spatial_image(m.astype(np.uint8), spacing=sp))
    assert d.attrs["units"] == "mm"
    err = (d.values - np.maximum(true, 0))[~m]
    assert np.abs(err).max() <= 0.5 * max(sp) + 1e-9
    assert (d.values[m] == 0).all()
    centre = distance_to_vessels(spatial_image(m.astype(np.uint8), spacing=sp), reference="centre").values
    assert ((centre - np.maximum(true, 0))[~m] >= -1e-9).all()


def test_distance_to_centreline_and_radius_map():
    t = VesselTree([Tube(np.array([[1.0, 0.2], [1.0, 2.8]]), 0.2)])
    m = spatial_image(t.mask((40, 60), 0.05).astype(np.uint8), spacing=0.05)
    cl = distance_to_vessels(m, reference="centreline").values
    assert cl[20, 30] == pytest.approx(0.0, abs=0.051) and cl[30, 30] == pytest.approx(0.5, abs=0.051)
    r = radius_map(m).values
    assert np.nanmedian(r) == pytest.approx(0.2, abs=0.05) and np.isnan(r[0, 0])


def test_empty_and_mismatched_vessel_masks():
    with pytest.raises(AnalysisError, match="2-D or 3-D"):
        distance_to_vessels(spatial_image(np.zeros(6, np.uint8), spacing=1.0, dims=("x",)))
    assert np.isnan(distance_to_vessels(spatial_image(np.zeros((5, 5), np.uint8), spacing=1.0)).values).all()
