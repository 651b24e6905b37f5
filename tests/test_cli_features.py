"""``multiscale features IMAGE MASK --params pyradiomics.yaml``: pyradiomics' values from the command line."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from multiscale.cli import EXIT_BAD_INPUT, main

from .analysis._pyradiomics_reference import REFERENCE
from .analysis.test_pyradiomics_params import NOT_REPRODUCED, _texture_case

sitk = pytest.importorskip("SimpleITK")


def _write_case(tmp_path):
    img, mask, sp, org = _texture_case()
    paths = []
    for name, arr in (("image", img), ("mask", mask)):
        im = sitk.GetImageFromArray(arr)
        im.SetSpacing(tuple(float(v) for v in sp[::-1]))
        im.SetOrigin(tuple(float(v) for v in org[::-1]))
        paths.append(tmp_path / f"{name}.nrrd")
        sitk.WriteImage(im, str(paths[-1]))
    return paths


def test_features_with_a_pyradiomics_parameter_file(tmp_path, capsys):
    image, mask = _write_case(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text("setting:\n  binCount: 16\n  voxelArrayShift: 300\n  gldm_a: 1\n")
    assert main(["features", str(image), str(mask), "--params", str(params)]) == 0
    captured = capsys.readouterr()
    table = pd.read_csv(io.StringIO(captured.out))
    ref = REFERENCE["texture_bincount_shift_gldm_a"]["values"]
    got = dict(zip(table["pyradiomics"], table["value"]))
    assert set(got) == set(ref) - NOT_REPRODUCED
    for key, want in ref.items():
        if key in got and "_shape_" not in key:
            assert got[key] == pytest.approx(want, rel=1e-6, abs=1e-12), key
    assert captured.err == ""

    out = tmp_path / "features.parquet"
    assert main(["-q", "features", str(image), str(mask), "--label", "1", "-o", str(out)]) == 0
    assert len(pd.read_parquet(out)) == len(REFERENCE["texture_default"]["values"]) - len(NOT_REPRODUCED)


def test_features_bad_inputs_exit_2_with_the_reason(tmp_path, capsys):
    image, mask = _write_case(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text("setting:\n  binWidht: 25\n")
    assert main(["features", str(image), str(mask), "--params", str(params)]) == EXIT_BAD_INPUT
    assert f"{params}: setting.binWidht: unknown pyradiomics setting" in capsys.readouterr().err
    assert main(["features", str(image), str(mask), "--label", "9"]) == EXIT_BAD_INPUT
    assert "label 9 is not in the mask" in capsys.readouterr().err
    assert main(["features", str(tmp_path / "none.nrrd"), str(mask)]) == EXIT_BAD_INPUT
    assert "none.nrrd" in capsys.readouterr().err
    assert np.isfinite(1.0)
