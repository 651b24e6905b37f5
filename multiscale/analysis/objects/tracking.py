"""Tracking over time: objects linked across frames (trackpy), speed, displacement, straightness, MSD and D.

Positions are world mm in the tables (``centroid_<dim>_mm``) and µm in the results; frame times come from
the image's ``t`` coords (seconds), as everywhere in multiscale.

* :func:`spots_over_time`: LoG spots (:func:`~multiscale.analysis.objects.detect_spots`) of every frame;
* :func:`link_tracks`: trackpy's ``link_df`` (nearest-neighbour linking within ``search_range_um``, with
  ``memory`` frames of disappearance allowed);
* :func:`track_table`: per track, ``n_frames``, ``duration_s``, ``path_length_um``, ``net_displacement_um``,
  ``mean_speed_um_per_s`` (path length / duration), ``straightness`` (net displacement / path length: 1 for a
  straight run, ~0 for diffusion);
* :func:`msd_table`: the ensemble mean squared displacement per lag (trackpy's ``emsd``: time-averaged within
  each track, then averaged over tracks weighted by the number of displacements);
* :func:`diffusion_fit`: ``MSD = 2 d D tau + offset`` over the first lags (offset: localisation error) gives
  the diffusion coefficient D; a log-log fit ``MSD = K tau^alpha`` gives the anomalous exponent alpha (1:
  Brownian, < 1 sub-diffusive or confined, ~2 directed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError

from ..metrics import Metrics
from .segment import detect_spots

__all__ = ["spots_over_time", "link_tracks", "track_table", "msd_table", "diffusion_fit"]

_UM = 1000.0


def _pos_columns(table: pd.DataFrame) -> list[str]:
    cols = [f"centroid_{d}_mm" for d in ("z", "y", "x") if f"centroid_{d}_mm" in table.columns]
    if len(cols) < 2:
        raise AnalysisError(f"the table has no centroid_<dim>_mm columns (columns: {list(table.columns)[:12]})")
    return cols


def spots_over_time(image: xr.DataArray, **spot_options: Any) -> pd.DataFrame:
    """LoG spots of every frame of a time-lapse image (``t`` dim, frame times in s as coords).

    Returns
    -------
    pandas.DataFrame
        :func:`~multiscale.analysis.objects.detect_spots` columns plus ``frame`` and ``t_s``.
    """
    if "t" not in image.dims:
        raise AnalysisError("spots_over_time needs an image with a 't' dim (frame times in s as coords)")
    times = np.asarray(image.coords["t"].values, float) if "t" in image.coords else np.arange(image.sizes["t"])
    parts = []
    for k in range(image.sizes["t"]):
        frame = image.isel(t=k, drop=True)
        spots = detect_spots(frame, **spot_options)
        parts.append(spots.assign(frame=k, t_s=float(times[k])))
    return pd.concat(parts, ignore_index=True)


def link_tracks(table: pd.DataFrame, *, search_range_um: float, memory: int = 0) -> pd.DataFrame:
    """Link objects of consecutive frames into tracks with trackpy (``particle`` column added).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per object per frame: ``frame`` (int), ``centroid_<dim>_mm`` and optionally ``t_s``.
    search_range_um : float
        The farthest an object moves between two frames (µm).
    memory : int
        Frames an object may vanish for and still keep its track.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"frame": [0, 0, 1, 1], "centroid_y_mm": [0.0, 0.1, 0.001, 0.1],
    ...                   "centroid_x_mm": [0.0, 0.1, 0.0, 0.101]})
    >>> link_tracks(t, search_range_um=5)[["particle", "frame"]].values.tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    import trackpy

    if "frame" not in table.columns:
        raise AnalysisError("link_tracks needs a 'frame' column (the frame index of each object)")
    cols = _pos_columns(table)
    um = [c.replace("centroid_", "").replace("_mm", "_um") for c in cols]
    df = table.copy()
    for c, u in zip(cols, um):
        df[u] = df[c] * _UM
    trackpy.quiet()
    try:
        out = trackpy.link_df(df, float(search_range_um), pos_columns=um, t_column="frame", memory=int(memory))
    except trackpy.SubnetOversizeException as exc:
        raise AnalysisError(f"linking: too many candidate links within search_range_um={search_range_um} ({exc}); "
                            "lower search_range_um (the farthest an object moves between frames) or detect "
                            "fewer spots (raise the spot threshold)") from exc
    return out.sort_values(["particle", "frame"], kind="stable").reset_index(drop=True)


def _frame_interval(tracks: pd.DataFrame, dt_s: float | None) -> float:
    if dt_s is not None:
        return float(dt_s)
    if "t_s" in tracks.columns:
        per = tracks.groupby("frame")["t_s"].first().sort_index()
        steps = np.diff(per.to_numpy(float)) / np.diff(per.index.to_numpy(float))
        if steps.size and np.allclose(steps, steps[0], rtol=1e-3):
            return float(steps[0])
        if steps.size:
            raise AnalysisError("frames are not evenly spaced in time; give dt_s or resample the time series")
    raise AnalysisError("no frame interval: give dt_s, or a t_s column of frame times")


def track_table(tracks: pd.DataFrame, *, dt_s: float | None = None, min_frames: int = 3) -> pd.DataFrame:
    """Per-track motion: duration, path length, net displacement, mean speed, straightness.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"particle": [0, 0, 0], "frame": [0, 1, 2], "y_um": [0.0, 0.0, 0.0],
    ...                   "x_um": [0.0, 3.0, 6.0]})
    >>> track_table(t, dt_s=2.0)[["path_length_um", "mean_speed_um_per_s", "straightness"]].values.tolist()
    [[6.0, 1.5, 1.0]]
    """
    dt = _frame_interval(tracks, dt_s)
    um = [c for c in ("z_um", "y_um", "x_um") if c in tracks.columns]
    if not um:
        raise AnalysisError("track_table needs the tracks of link_tracks (y_um/x_um columns)")
    rows = []
    for pid, g in tracks.sort_values("frame").groupby("particle"):
        if len(g) < int(min_frames):
            continue
        p = g[um].to_numpy(float)
        step = np.linalg.norm(np.diff(p, axis=0), axis=1)
        path = float(step.sum())
        net = float(np.linalg.norm(p[-1] - p[0]))
        dur = float((g["frame"].iloc[-1] - g["frame"].iloc[0]) * dt)
        rows.append({"particle": int(pid), "n_frames": len(g), "duration_s": dur, "path_length_um": path,
                     "net_displacement_um": net, "max_displacement_um": float(np.linalg.norm(p - p[0], axis=1).max()),
                     "mean_speed_um_per_s": path / dur if dur > 0 else float("nan"),
                     "straightness": net / path if path > 0 else float("nan")})
    cols = ["particle", "n_frames", "duration_s", "path_length_um", "net_displacement_um", "max_displacement_um",
            "mean_speed_um_per_s", "straightness"]
    return pd.DataFrame(rows, columns=cols)


def msd_table(tracks: pd.DataFrame, *, dt_s: float | None = None, max_lag: int = 20) -> pd.DataFrame:
    """Ensemble mean squared displacement per lag (trackpy ``emsd``), in µm² against lag in s.

    Returns
    -------
    pandas.DataFrame
        ``lag``, ``lag_s``, ``msd_um2``, ``n`` (displacements averaged).
    """
    import trackpy

    dt = _frame_interval(tracks, dt_s)
    um = [c for c in ("z_um", "y_um", "x_um") if c in tracks.columns]
    ordered = tracks.sort_values(["particle", "frame"], kind="stable")      # trackpy differences rows in order
    em = trackpy.emsd(ordered, mpp=1.0, fps=1.0 / dt, max_lagtime=int(max_lag), detail=True, pos_columns=um)
    out = pd.DataFrame({"lag": np.asarray(em.index, dtype=int), "lag_s": em["lagt"].to_numpy(float),
                        "msd_um2": em["msd"].to_numpy(float), "n": em["N"].to_numpy(float)})
    out.attrs["ndim"] = len(um)
    return out


#: units of :func:`diffusion_fit`'s numbers (the ``tracks`` family's rows use the same)
DIFFUSION_UNITS = {"D_um2_per_s": "µm²/s", "offset_um2": "µm²", "alpha": "1", "K_um2": "µm²/s^alpha", "ndim": "1"}


def diffusion_fit(msd: pd.DataFrame, *, ndim: int | None = None, fit_lags: int = 4) -> Metrics:
    """Diffusion coefficient (linear fit over the first lags) and anomalous exponent (log-log fit) of an MSD.

    Returns
    -------
    Metrics
        ``D_um2_per_s`` (slope / (2 d), µm²/s), ``offset_um2`` (intercept: 2 d sigma² of localisation error, µm²),
        ``alpha`` (1) and ``K_um2`` (µm²/s^alpha) of ``MSD = K tau^alpha`` (all lags), ``ndim``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> tau = np.arange(1, 11) * 0.1
    >>> r = diffusion_fit(pd.DataFrame({"lag_s": tau, "msd_um2": 4 * 0.5 * tau}), ndim=2)
    >>> round(r["D_um2_per_s"], 6), round(r["alpha"], 6)
    (0.5, 1.0)
    """
    d = int(ndim if ndim is not None else msd.attrs.get("ndim", 2))
    m = msd.dropna(subset=["msd_um2"])
    m = m[m["lag_s"] > 0]
    if len(m) < 2:
        raise AnalysisError("the MSD has fewer than two lags; track longer")
    first = m.iloc[: max(2, int(fit_lags))]
    slope, intercept = np.polyfit(first["lag_s"].to_numpy(float), first["msd_um2"].to_numpy(float), 1)
    alpha, logk = np.polyfit(np.log(m["lag_s"].to_numpy(float)), np.log(m["msd_um2"].to_numpy(float)), 1)
    return Metrics({"D_um2_per_s": float(slope / (2 * d)), "offset_um2": float(intercept), "alpha": float(alpha),
                    "K_um2": float(np.exp(logk)), "ndim": float(d)}, DIFFUSION_UNITS)
