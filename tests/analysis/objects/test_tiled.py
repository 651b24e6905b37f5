"""Tile-by-tile segmentation gives the objects of the whole-image segmentation, each once, with unique labels."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from multiscale.analysis.objects import object_table, segment_cells, segment_nuclei
from multiscale.analysis.objects.segment import foreground_threshold
from multiscale.analysis.objects.tiled import segment_tiled
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image

from ._synth import nuclei_image, nuclei_truth


@pytest.fixture(scope="module")
def multiplex():
    truth, _ = nuclei_truth(5, n_single=50, n_pairs=8)
    dna = nuclei_image(truth, 5)
    marker = np.random.default_rng(9).random(truth.shape) * 3 + (truth % 3)
    data = np.stack([dna.values, marker])
    img = spatial_image(da.from_array(data, chunks=(1, 90, 90)), spacing=0.0005, origin=(2.0, 3.0),
                        dims=("c", "y", "x"), channels=["DNA", "CD45"], units="counts")
    return img, truth


def test_tiles_give_the_whole_image_objects(multiplex):
    img, truth = multiplex
    labels, table = segment_tiled(img, nuclei_channel="DNA", tile_px=100, sigma_um=0.5, diameter_um=10.0,
                                  expand_um=3.0)
    assert table["label"].is_unique and int(labels.max()) == len(table)
    assert set(np.unique(labels.values)) - {0} == set(table["label"].astype(int))
    thr = labels.attrs["threshold"]
    whole_img = img.copy(data=np.asarray(img.data))
    nuc = segment_nuclei(whole_img, channel="DNA", sigma_um=0.5, diameter_um=10.0, threshold=thr)
    whole = object_table(segment_cells(nuc, expand_um=3.0), whole_img)
    assert len(table) == len(whole) == int(truth.max())
    key = ["centroid_y_mm", "centroid_x_mm"]
    a = table.sort_values(key).reset_index(drop=True)
    b = whole.sort_values(key).reset_index(drop=True)
    np.testing.assert_allclose(a[key].to_numpy(), b[key].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(a["area_um2"], b["area_um2"])
    np.testing.assert_allclose(a["mean_CD45"], b["mean_CD45"])
    assert table["tile"].nunique() > 4
    # the threshold from merged tile histograms (1024 bins) is Otsu's of the whole smoothed channel (scikit-image's
    # threshold_otsu bins into 256)
    from scipy import ndimage as ndi

    smooth = ndi.gaussian_filter(np.asarray(img.data[0]), 1.0)
    assert abs(thr - foreground_threshold(smooth)) < np.ptp(smooth) / 256


def test_bad_channel_and_dims(multiplex):
    img, _ = multiplex
    with pytest.raises(AnalysisError, match=r"no channel 'H3'; channels are \['DNA', 'CD45'\]"):
        segment_tiled(img, nuclei_channel="H3")
    with pytest.raises(AnalysisError, match="2-D multichannel"):
        segment_tiled(img.isel(c=0), nuclei_channel="DNA")
