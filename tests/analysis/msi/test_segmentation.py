"""Segmentation recovers planted regions (adjusted Rand index >= 0.9), from a stack and from a dataset's lazy datacube."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from multiscale.analysis.msi import segment
from multiscale.analysis.msi.segmentation import segmentation_table
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image

from ._synthetic import PX_MM, write_imzml


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def planted_regions(seed=0, shape=(30, 32), n_ions=12):
    """Three tissue regions (+ background 0) with their own marker ions and shared ions; multiplicative noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, int)
    truth[(yy - 15) ** 2 / 13.0**2 + (xx - 16) ** 2 / 14.0**2 < 1] = 1
    truth[(truth == 1) & (xx > 16)] = 2
    truth[(yy - 12) ** 2 + (xx - 10) ** 2 < 25] = 3
    profile = rng.uniform(20, 60, (4, n_ions))
    profile[0] = 0.5                     # background: nearly nothing
    profile[1, 0] = profile[2, 1] = profile[3, 2] = 300.0  # a marker ion per region
    imgs = profile[truth].transpose(2, 0, 1) * rng.lognormal(0, 0.25, (n_ions,) + shape)
    imgs *= rng.lognormal(0, 0.15, shape)  # per-pixel ionisation yield (what TIC normalisation removes)
    mz = np.round(np.linspace(400, 900, n_ions), 4)
    return truth, mz, imgs


def test_stack_segmentation_recovers_planted_regions_and_markers():
    truth, mz, imgs = planted_regions()
    stack = spatial_image(imgs, spacing=PX_MM, dims=("c", "y", "x"), channels=mz.tolist())
    seg = segment(stack, n_clusters=4, n_components=5, seed=0)
    assert adjusted_rand_score(truth.ravel(), seg.labels.values.ravel()) >= 0.9
    assert seg.labels.attrs["aspect"] == "mask" and seg.labels.dims == ("y", "x")
    # each planted region's marker ion is its cluster's top marker
    for region, marker in ((1, mz[0]), (2, mz[1]), (3, mz[2])):
        k = np.bincount(seg.labels.values[truth == region]).argmax()
        top = seg.markers[(seg.markers["cluster"] == k) & (seg.markers["rank"] == 1)]
        assert float(top["mz"].iloc[0]) == pytest.approx(marker)
    spec = seg.cluster_spectra.set_index("mz")
    assert spec.shape == (mz.size, 4)
    nmf = segment(stack, n_clusters=4, n_components=5, method="nmf", seed=0)
    assert adjusted_rand_score(truth.ravel(), nmf.labels.values.ravel()) >= 0.9


def test_dataset_segmentation_reads_the_lazy_datacube(tmp_path):
    truth, mz, imgs = planted_regions(seed=1, shape=(22, 24))
    from multiscale.io import read_imzml

    ds = read_imzml(write_imzml(tmp_path / "seg.imzML", mz, imgs, noise_peaks=20))
    seg = segment(ds, features=mz, n_clusters=4, n_components=5, seed=0)
    assert adjusted_rand_score(truth.ravel(), seg.labels.values.ravel()) >= 0.9
    mask = truth > 0
    inside = segment(ds, features=mz, mask=mask, n_clusters=3, n_components=5, seed=0)
    assert (inside.labels.values[~mask] == 0).all()
    assert adjusted_rand_score(truth[mask], inside.labels.values[mask]) >= 0.9
    with pytest.raises(AnalysisError, match="zero peaks"):
        segment(ds, features=[], n_clusters=2)
    with pytest.raises(AnalysisError, match="overlap"):
        segment(ds, features=[500.0, 500.001], n_clusters=2)


def test_streaming_pca_equals_scikit_learn_pca():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from multiscale.analysis.msi.segmentation import segment_pixels

    truth, mz, imgs = planted_regions(seed=3)
    x = imgs.reshape(mz.size, -1).T
    pix = np.arange(x.shape[0])

    def blocks():
        for s in range(0, x.shape[0], 97):
            yield pix[s : s + 97], x[s : s + 97]

    scores, loadings, evr, raw = segment_pixels(blocks, mz.size, n_components=4, normalise="none", transform="none")
    z = StandardScaler().fit_transform(x)
    ref = PCA(n_components=4).fit(z)
    np.testing.assert_allclose(evr, ref.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(np.abs(loadings), np.abs(ref.components_.T), atol=1e-8)
    np.testing.assert_allclose(np.abs(scores), np.abs(ref.transform(z)), atol=1e-7)
    np.testing.assert_array_equal(raw, x)


def test_family_rows_per_cluster():
    truth, mz, imgs = planted_regions(seed=2)
    stack = spatial_image(imgs, spacing=PX_MM, dims=("c", "y", "x"), channels=mz.tolist())
    rows = segmentation_table(stack, None, n_clusters=4, n_components=5)
    fr = rows[rows.metric == "area_fraction"]
    assert fr["value"].sum() == pytest.approx(1.0) and fr["bin"].tolist() == [1, 2, 3, 4]
    assert set(rows.loc[rows.metric == "area", "units"]) == {"mm2"}
    assert (rows.loc[rows.metric.str.startswith("marker_"), "units"] == "m/z").all()
