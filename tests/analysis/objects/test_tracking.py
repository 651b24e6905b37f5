"""Tracking: simulated Brownian and directed tracks, linked by trackpy; D within 5 %, alpha, straightness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiscale.analysis.objects.tracking import diffusion_fit, link_tracks, msd_table, spots_over_time, track_table
from multiscale.image import spatial_image


def _brownian(rng, n=150, frames=60, d_um2_s=0.5, dt=0.1, spacing_um=25.0, drift_um_s=0.0):
    side = int(np.ceil(np.sqrt(n)))
    start = (np.mgrid[:side, :side].reshape(2, -1).T[:n] + 0.5) * spacing_um
    steps = rng.normal(0, np.sqrt(2 * d_um2_s * dt), (frames - 1, n, 2))
    steps[..., 1] += drift_um_s * dt
    pos = start[None] + np.concatenate([np.zeros((1, n, 2)), np.cumsum(steps, axis=0)])
    rows = [{"frame": f, "t_s": f * dt, "centroid_y_mm": pos[f, i, 0] / 1000, "centroid_x_mm": pos[f, i, 1] / 1000,
             "truth": i} for f in range(frames) for i in range(n)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


def test_brownian_tracks_give_d_within_5_percent():
    rng = np.random.default_rng(0)
    table = _brownian(rng)
    tracks = link_tracks(table, search_range_um=3.0)
    assert tracks["particle"].nunique() == 150
    assert (tracks.groupby("particle")["truth"].nunique() == 1).all()       # every link right
    msd = msd_table(tracks, max_lag=10)
    fit = diffusion_fit(msd)
    assert fit["D_um2_per_s"] == pytest.approx(0.5, rel=0.05)
    assert fit["alpha"] == pytest.approx(1.0, abs=0.1)
    per = track_table(tracks)
    assert per["straightness"].median() < 0.3 and len(per) == 150


def test_directed_motion_is_straight_and_superdiffusive():
    rng = np.random.default_rng(1)
    tracks = link_tracks(_brownian(rng, n=30, frames=40, d_um2_s=0.01, drift_um_s=2.0), search_range_um=2.0)
    per = track_table(tracks)
    assert per["straightness"].min() > 0.9
    assert per["mean_speed_um_per_s"].median() == pytest.approx(2.0, rel=0.1)
    fit = diffusion_fit(msd_table(tracks, max_lag=15))
    assert fit["alpha"] > 1.7


def test_spots_over_time_and_uneven_frames():
    yy, xx = np.mgrid[:40, :40]
    frames = np.stack([np.exp(-((yy - 20) ** 2 + (xx - 10 - 3 * k) ** 2) / 4.0) for k in range(5)])
    img = spatial_image(frames, spacing=0.0005, dims=("t", "y", "x"))
    img = img.assign_coords(t=np.arange(5) * 2.0)
    spots = spots_over_time(img, radius_um=(0.5, 2.0))
    tracks = link_tracks(spots, search_range_um=3.0)
    per = track_table(tracks)
    assert len(per) == 1 and per["mean_speed_um_per_s"].iloc[0] == pytest.approx(0.75, rel=0.05)  # 1.5 µm / 2 s
    tracks.loc[tracks["frame"] == 4, "t_s"] = 9.0
    with pytest.raises(Exception, match="evenly spaced"):
        track_table(tracks)


def test_tracks_family_on_a_time_lapse_image():
    """Brownian particles rendered as spots (0.1 µm pixels): the family's D within 10 % of the simulated one."""
    from multiscale.analysis.objects.tracks import FAMILY

    rng = np.random.default_rng(3)
    n, frames, d_true, dt, px = 16, 30, 0.5, 0.1, 0.1
    start = (np.mgrid[:4, :4].reshape(2, -1).T + 0.5) * 6.0                 # µm, 6 µm apart
    steps = rng.normal(0, np.sqrt(2 * d_true * dt), (frames - 1, n, 2))
    pos = start[None] + np.concatenate([np.zeros((1, n, 2)), np.cumsum(steps, axis=0)])
    yy, xx = (np.mgrid[:240, :240] + 0.0) * px
    movie = np.stack([sum(np.exp(-((yy - p[0]) ** 2 + (xx - p[1]) ** 2) / (2 * 0.2 ** 2)) for p in pos[f])
                      for f in range(frames)])
    img = spatial_image(movie, spacing=px / 1000, dims=("t", "y", "x")).assign_coords(t=np.arange(frames) * dt)
    res = FAMILY.evaluate({"image": img, "mask": None}, {"diameter_um": 0.6, "search_range_um": 2.0})
    rows = res.rows.set_index("metric")
    assert rows.loc["n_tracks", "value"] == n
    assert rows.loc["diffusion_coefficient", "value"] == pytest.approx(d_true, rel=0.15)
    assert rows.loc["diffusion_coefficient", "units"] == "µm²/s"
    assert {"spots", "tracks", "per_track"} <= set(res.tables)
    with pytest.raises(Exception, match="time series"):
        FAMILY.evaluate({"image": img.isel(t=0), "mask": None}, {})
