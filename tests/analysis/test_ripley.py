"""Ripley's K / L / g against closed forms (CSR: pi r^2; Thomas process: Diggle's formula), envelopes, neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.spatial import ripley
from multiscale.analysis.spatial.points import (
    Window,
    csr_points,
    nearest_neighbour_distances,
    nearest_neighbour_table,
    quadrat_dispersion,
)
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image

UNIT = [(0.0, 1.0), (0.0, 1.0)]
RADII = np.array([0.025, 0.05, 0.075, 0.1, 0.125])


def _thomas(rng, kappa=25.0, mu=8.0, sigma=0.02, box=UNIT):
    """Thomas process: Poisson parents (kappa per mm^2, simulated with a 4 sigma margin), Poisson(mu) offspring at
    Gaussian (sigma) offsets; the points inside ``box`` are kept."""
    lo, hi = np.array(box)[:, 0] - 4 * sigma, np.array(box)[:, 1] + 4 * sigma
    n_par = rng.poisson(kappa * np.prod(hi - lo))
    parents = lo + rng.random((n_par, 2)) * (hi - lo)
    kids = np.repeat(parents, rng.poisson(mu, n_par), axis=0)
    kids = kids + rng.normal(0, sigma, kids.shape)
    inside = np.all((kids >= np.array(box)[:, 0]) & (kids <= np.array(box)[:, 1]), axis=1)
    return kids[inside]


@pytest.mark.parametrize("correction", ["translation", "border"])
def test_k_of_csr_is_pi_r_squared(correction):
    rng = np.random.default_rng(0)
    ks = [ripley(rng.random((300, 2)), radii_mm=RADII, window=UNIT, correction=correction, n_simulations=0)["K"]
          for _ in range(30)]
    np.testing.assert_allclose(np.mean(ks, axis=0) / (np.pi * RADII ** 2), 1.0, atol=0.03)


def test_k_in_an_irregular_mask_window():
    yy, xx = np.mgrid[:200, :200]
    disc = spatial_image(((yy - 99.5) ** 2 + (xx - 99.5) ** 2 < 90 ** 2).astype(np.uint8), spacing=0.005)
    win = Window(disc.values != 0, (0.005, 0.005), (0.0, 0.0))
    rng = np.random.default_rng(1)
    ks = [ripley(csr_points(win, 300, rng), radii_mm=RADII, window=disc, n_simulations=0)["K"] for _ in range(30)]
    np.testing.assert_allclose(np.mean(ks, axis=0) / (np.pi * RADII ** 2), 1.0, atol=0.03)
    # the FFT set covariance of a full mask equals the box's closed form
    box = Window.box(UNIT)
    full = Window(np.ones((100, 100), bool), (0.01, 0.01), (0.005, 0.005))
    h = np.array([[0.1, 0.2], [0.3, 0.0], [0.05, 0.45]])
    np.testing.assert_allclose(full.covariance(h), box.covariance(h), rtol=1e-9)


def test_k_of_a_thomas_process_matches_the_closed_form():
    """K(r) = pi r^2 + (1 - exp(-r^2 / (4 sigma^2))) / kappa (Diggle 2013, Statistical analysis of spatial point
    patterns, eq. for the modified Thomas process)."""
    rng = np.random.default_rng(2)
    kappa, sigma = 25.0, 0.02
    ks = [ripley(_thomas(rng, kappa, 8.0, sigma), radii_mm=RADII, window=UNIT, n_simulations=0)["K"]
          for _ in range(40)]
    theory = np.pi * RADII ** 2 + (1 - np.exp(-RADII ** 2 / (4 * sigma ** 2))) / kappa
    np.testing.assert_allclose(np.mean(ks, axis=0) / theory, 1.0, atol=0.06)


def test_envelopes_place_csr_inside_clusters_above_and_lattices_below():
    rng = np.random.default_rng(3)
    csr = ripley(rng.random((250, 2)), radii_mm=RADII, window=UNIT, n_simulations=39, seed=1)
    assert ((csr["L"] >= csr["L_lo"]) & (csr["L"] <= csr["L_hi"])).all() and csr.attrs["p_value"] > 0.05
    clustered = ripley(_thomas(rng), radii_mm=RADII, window=UNIT, n_simulations=39, seed=1)
    assert (clustered["L"] > clustered["L_hi"]).all() and clustered.attrs["p_value"] <= 0.05
    assert (clustered["g"].iloc[:2] > 1.5).all()
    g = (np.mgrid[:16, :16].reshape(2, -1).T + 0.5) / 16 + rng.normal(0, 0.004, (256, 2))   # jittered lattice
    regular = ripley(np.clip(g, 0, 1), radii_mm=RADII, window=UNIT, n_simulations=39, seed=1)
    assert (regular["L"].iloc[:2] < regular["L_lo"].iloc[:2]).all() and regular.attrs["p_value"] <= 0.05
    assert regular["K"].iloc[0] == 0.0                     # no pair closer than 0.025 mm on a 0.0625 mm lattice


def test_cross_type_k_with_random_labelling():
    rng = np.random.default_rng(4)
    a = rng.random((80, 2)) * 0.9 + 0.05
    near = a[:40] + rng.normal(0, 0.01, (40, 2))            # b cells beside half of the a cells
    other = rng.random((120, 2))
    pts = np.vstack([a, near, other])
    kinds = ["a"] * 80 + ["b"] * 40 + ["c"] * 120
    k = ripley(pts, types=kinds, of="b", to="a", radii_mm=RADII, window=UNIT, n_simulations=39)
    assert k.attrs["envelope"] == "labels" and k.attrs["cross"]
    assert k["L"].iloc[0] > k["L_hi"].iloc[0] and k.attrs["p_value"] <= 0.05
    shuffled = list(rng.permutation(kinds))
    k0 = ripley(pts, types=shuffled, of="b", to="a", radii_mm=RADII, window=UNIT, n_simulations=39)
    assert k0.attrs["p_value"] > 0.05
    nn = nearest_neighbour_table(pts, "b", "a", types=kinds, n_simulations=39)
    assert nn["ratio"] < 0.5 and nn["p_closer"] <= 0.05
    with pytest.raises(AnalysisError, match=r"no points of type 'd'; types are \['a', 'b', 'c'\]"):
        ripley(pts, types=kinds, of="d", radii_mm=RADII, window=UNIT)


def test_k_in_3d_is_four_thirds_pi_r_cubed():
    rng = np.random.default_rng(5)
    box = [(0, 1), (0, 1), (0, 1)]
    radii = np.array([0.05, 0.1, 0.15])
    ks = [ripley(rng.random((1000, 3)), radii_mm=radii, window=box, n_simulations=0)["K"] for _ in range(20)]
    np.testing.assert_allclose(np.mean(ks, axis=0) / (4 / 3 * np.pi * radii ** 3), 1.0, atol=0.05)


def test_nearest_neighbour_of_csr_is_clark_evans():
    """Mean nearest-neighbour distance of a Poisson process of intensity lambda: 1 / (2 sqrt(lambda))."""
    rng = np.random.default_rng(6)
    pts = rng.random((20000, 2))
    inner = np.all((pts > 0.1) & (pts < 0.9), axis=1)       # centres away from the edge: no edge effect
    d = nearest_neighbour_distances(pts, pts, same=True)[inner]    # each point's nearest other point
    assert d.mean() == pytest.approx(0.5 / np.sqrt(20000), rel=0.02)


def test_dispersion_index_of_counts():
    rng = np.random.default_rng(7)
    csr = quadrat_dispersion(rng.random((5000, 2)), UNIT, 0.1)
    assert csr["n_tiles"] == 100 and 0.6 < csr["dispersion_index"] < 1.4 and csr["p_clustered"] > 0.01
    clustered = quadrat_dispersion(_thomas(rng, kappa=50, mu=40), UNIT, 0.1)
    assert clustered["dispersion_index"] > 3 and clustered["p_clustered"] < 1e-6
    disc = spatial_image((np.hypot(*np.mgrid[-50:50, -50:50]) < 45).astype(np.uint8), spacing=0.01, origin=(0.005, 0.005))
    r = quadrat_dispersion(rng.random((3000, 2)), disc, 0.1)
    assert r["n_tiles"] < 100                                # only tiles wholly inside the disc


def test_bad_radii_and_no_window_warning():
    with pytest.raises(AnalysisError, match="increasing"):
        ripley(np.random.default_rng(0).random((10, 2)), radii_mm=[0.2, 0.1], window=UNIT)
    with pytest.warns(UserWarning, match="bounding box"):
        ripley(np.random.default_rng(0).random((50, 2)), radii_mm=[0.1], n_simulations=0)
