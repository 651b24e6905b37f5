"""Motion correction of a series, and resampling that carries the t dim and its coords."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.errors import RegistrationError
from multiscale.image import spatial_image
from multiscale.registration import resample
from multiscale.registration.motion import motion_correct


def _blobs(shift_x: float, shift_y: float) -> np.ndarray:
    yy, xx = np.mgrid[:48, :48].astype(float)
    return np.exp(-((yy - 24 - shift_y) ** 2 + (xx - 22 - shift_x) ** 2) / 40.0) + 0.6 * np.exp(
        -((yy - 12 - shift_y) ** 2 + (xx - 32 - shift_x) ** 2) / 12.0
    )


def test_every_frame_is_brought_back_onto_the_reference():
    shifts = [(0.0, 0.0), (1.5, -0.5), (-2.0, 1.0), (0.5, 2.0)]
    frames = np.stack([_blobs(*s) * (1 + 0.2 * k) for k, s in enumerate(shifts)])  # contrast changes over time
    series = spatial_image(frames, spacing=0.5, dims=("t", "y", "x"), units="a.u.").assign_coords(
        t=[0.0, 10.0, 20.0, 30.0], frame_duration=("t", [10.0] * 4)
    )
    out = motion_correct(series, reference=0, transform="rigid", metric="ncc")
    got = np.c_[out.motion["shift_x_mm"], out.motion["shift_y_mm"]]
    np.testing.assert_allclose(got, 0.5 * np.asarray(shifts), atol=0.05)  # 0.5 mm pixels
    img = out.image
    assert img.dims == ("t", "y", "x") and img["t"].values.tolist() == [0.0, 10.0, 20.0, 30.0]
    assert img["frame_duration"].values.tolist() == [10.0] * 4
    ref = frames[0]
    for k in range(1, 4):  # after correction each frame matches the reference up to its contrast scale
        corrected = np.asarray(img.isel(t=k)) / (1 + 0.2 * k)
        assert np.abs(corrected - ref)[8:40, 8:40].max() < 0.03
    assert img.attrs["provenance"]["motion_corrected"]["reference"] == 0


def test_bad_requests_are_refused():
    series = spatial_image(np.zeros((2, 8, 8)), spacing=1.0, dims=("t", "y", "x"))
    with pytest.raises(RegistrationError, match="frame index"):
        motion_correct(series, reference=5)
    with pytest.raises(RegistrationError, match="time series"):
        motion_correct(series.isel(t=0))


def test_resample_keeps_t_and_its_coords():
    img = spatial_image(np.arange(3 * 16.0).reshape(3, 4, 4), spacing=1.0, dims=("t", "y", "x")).assign_coords(
        t=[1.0, 2.0, 4.0], echo_time=("t", [0.002, 0.004, 0.008])
    )
    out = resample(img, {"shape": (8, 8), "spacing": (0.5, 0.5), "origin": (0.0, 0.0)})
    assert out.dims == ("t", "y", "x") and out["t"].values.tolist() == [1.0, 2.0, 4.0]
    assert out["echo_time"].values.tolist() == [0.002, 0.004, 0.008]
    assert float(out.isel(t=2)[2, 2]) == pytest.approx(32 + 5.0)
