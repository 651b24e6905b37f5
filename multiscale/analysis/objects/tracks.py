"""The study family ``tracks``: single particles or cells followed through a time-lapse image.

Input: ``image`` with a ``t`` dim (frame times in s as coords), ``mask`` the region. Each frame's spots are
found by the Laplacian of Gaussian (:func:`~multiscale.analysis.objects.detect_spots`), linked across frames by
trackpy (:func:`~multiscale.analysis.objects.link_tracks`), and summarised
(:mod:`multiscale.analysis.objects.tracking`). Rows (units decided here): ``spots_per_frame`` (spots),
``n_tracks`` (tracks, of at least ``min_frames`` frames), ``duration_mean`` (s), ``speed_mean``,
``speed_median`` (µm/s), ``net_displacement_mean`` (µm), ``straightness_median`` (1), ``msd`` per lag (µm²;
``bin`` = lag in frames, ``bin_lo = bin_hi`` = lag in s), ``diffusion_coefficient`` (µm²/s, from
MSD = 2 d D tau + offset over the first ``fit_lags`` lags) and ``anomalous_exponent`` (1). Tables: ``spots``,
``tracks`` (linked positions) and ``per_track``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import spatial_dims

from ..family import Family, FamilyResult
from .tracking import diffusion_fit, link_tracks, msd_table, spots_over_time, track_table

__all__ = ["tracks_table", "tracks_evaluate", "tracks_figure", "FAMILY"]


def tracks_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    diameter_um: float = 2.0,
    threshold: float | None = None,
    threshold_rel: float | None = 0.1,
    search_range_um: float = 5.0,
    memory: int = 0,
    min_frames: int = 3,
    max_lag: int = 10,
    fit_lags: int = 4,
) -> FamilyResult:
    """Rows, tables and figure data of the ``tracks`` family (see :func:`tracks_table`)."""
    if "t" not in image.dims or image.sizes["t"] < 2:
        raise AnalysisError("the tracks family needs a time series (a 't' dim with frame times in s, at least two "
                            "frames); give a time-lapse image")
    img = image.isel(c=0, drop=True) if "c" in image.dims and image.sizes["c"] == 1 else image
    if "c" in img.dims:
        raise AnalysisError(f"the time series has {img.sizes['c']} channels; name one (map 'image:channel')")
    d = len(spatial_dims(img))
    spots = spots_over_time(img, mask=mask, radius_um=(0.25 * diameter_um, 0.75 * diameter_um),
                            threshold=threshold, threshold_rel=threshold_rel)
    n_frames = img.sizes["t"]
    rows: list[dict[str, Any]] = []

    def add(metric: str, value: float, unit: str, detail: str = "", **bins: Any) -> None:
        rows.append({"metric": metric, "value": float(value), "units": unit, "detail": detail, **bins})

    nan = float("nan")
    add("spots_per_frame", len(spots) / n_frames, "spots", f"LoG spots of {diameter_um:g} µm, {n_frames} frames")
    tracks = per = msd = None
    fit = {"D_um2_per_s": nan, "alpha": nan, "offset_um2": nan}
    if len(spots):
        tracks = link_tracks(spots, search_range_um=search_range_um, memory=memory)
        per = track_table(tracks, min_frames=min_frames)
        if len(per):
            keep = tracks["particle"].isin(per["particle"])
            msd = msd_table(tracks[keep], max_lag=max_lag)
            if len(msd) >= 2:
                fit = diffusion_fit(msd, ndim=d, fit_lags=fit_lags)
    if per is None or not len(per):
        warnings.warn(f"no track of at least {min_frames} frames; the motion rows are NaN", AnalysisWarning,
                      stacklevel=2)
    dl = f"trackpy links within {search_range_um:g} µm (memory {memory}); tracks of >= {min_frames} frames"
    ok = per is not None and len(per) > 0
    add("n_tracks", len(per) if ok else 0, "tracks", dl)
    add("duration_mean", per["duration_s"].mean() if ok else nan, "s", dl)
    add("speed_mean", per["mean_speed_um_per_s"].mean() if ok else nan, "µm/s", dl + "; path length / duration")
    add("speed_median", per["mean_speed_um_per_s"].median() if ok else nan, "µm/s", dl)
    add("net_displacement_mean", per["net_displacement_um"].mean() if ok else nan, "µm", dl)
    add("straightness_median", per["straightness"].median() if ok else nan, "1", dl + "; net / path length")
    if msd is not None:
        for r in msd.itertuples():
            add("msd", r.msd_um2, "µm²", "ensemble MSD (trackpy emsd)", bin=int(r.lag), bin_lo=r.lag_s,
                bin_hi=r.lag_s, bin_units="s")
    df = f"MSD = 2 d D tau + offset over the first {fit_lags} lags (d = {d}); alpha from log-log MSD"
    add("diffusion_coefficient", fit["D_um2_per_s"], "µm²/s", df)
    add("anomalous_exponent", fit["alpha"], "1", df)
    tables = {"spots": spots}
    if tracks is not None:
        tables["tracks"] = tracks
    if per is not None:
        tables["per_track"] = per
    return FamilyResult(rows=pd.DataFrame(rows), tables=tables,
                        data={"tracks": tracks, "msd": msd, "fit": fit, "per_track": per})


def tracks_table(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    diameter_um: float = 2.0,
    threshold: float | None = None,
    threshold_rel: float | None = 0.1,
    search_range_um: float = 5.0,
    memory: int = 0,
    min_frames: int = 3,
    max_lag: int = 10,
    fit_lags: int = 4,
) -> pd.DataFrame:
    """Spots tracked through a time series: speed, displacement, straightness, MSD, D and alpha as tidy rows.

    Parameters
    ----------
    image, mask : xarray.DataArray
        Time-lapse image (``t`` dim, frame times in s) and region.
    diameter_um, threshold, threshold_rel
        Spot size and LoG thresholds (:func:`~multiscale.analysis.objects.detect_spots`).
    search_range_um, memory
        trackpy linking (:func:`~multiscale.analysis.objects.link_tracks`).
    min_frames, max_lag, fit_lags
        Shortest track kept, longest MSD lag (frames), lags of the linear MSD fit.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:40, :40]
    >>> frames = np.stack([np.exp(-((yy - 20) ** 2 + (xx - 8 - 2 * k) ** 2) / 4.0) for k in range(6)])
    >>> img = spatial_image(frames, spacing=0.0005, dims=("t", "y", "x")).assign_coords(t=np.arange(6) * 0.5)
    >>> rows = tracks_table(img, diameter_um=2.0).set_index("metric")
    >>> int(rows.loc["n_tracks", "value"]), round(float(rows.loc["speed_mean", "value"]), 2)   # 1 µm per 0.5 s
    (1, 2.0)
    """
    return tracks_evaluate(image, mask, diameter_um=diameter_um, threshold=threshold, threshold_rel=threshold_rel,
                           search_range_um=search_range_um, memory=memory, min_frames=min_frames, max_lag=max_lag,
                           fit_lags=fit_lags).rows


def tracks_figure(result: FamilyResult, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Trajectories (y/x in µm) and the ensemble MSD with the fitted line."""
    from ..figures import new_figure

    fig = new_figure((8.0, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    tracks = result.data.get("tracks")
    if tracks is not None and len(tracks):
        for _, g in list(tracks.groupby("particle"))[:200]:
            ax.plot(g["x_um"], g["y_um"], lw=0.8)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.invert_yaxis()
    ax.set_title(title or "tracks", fontsize="small")
    ax2 = fig.add_subplot(1, 2, 2)
    msd = result.data.get("msd")
    if msd is not None and len(msd):
        ax2.loglog(msd["lag_s"], msd["msd_um2"], "o", ms=3, label="ensemble MSD")
        fit = result.data.get("fit", {})
        if np.isfinite(fit.get("D_um2_per_s", np.nan)):
            tau = msd["lag_s"].to_numpy(float)
            d = fit.get("ndim", 2.0)
            ax2.loglog(tau, np.maximum(2 * d * fit["D_um2_per_s"] * tau + fit["offset_um2"], 1e-12), "-",
                       label=f"D = {fit['D_um2_per_s']:.3g} µm²/s, alpha = {fit['alpha']:.2f}")
        ax2.legend(frameon=False, fontsize="small")
    ax2.set_xlabel("lag (s)")
    ax2.set_ylabel("MSD (µm²)")
    return [("tracks", fig)]


FAMILY = Family(
    name="tracks",
    table=tracks_table,
    inputs=("image", "mask"),
    evaluate_fn=tracks_evaluate,
    figure=tracks_figure,
    description="spots tracked through a time series (trackpy): speed, displacement, straightness, MSD, D, alpha",
)
