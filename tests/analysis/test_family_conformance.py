"""One contract test run over every analysis family in the registry (nibabel's test_image_api pattern).

A family is tested the moment it is listed in ``multiscale.analysis.FAMILIES``: its table returns the tidy
schema with a non-empty unit on every row, its parameters bind (and a misspelt one is refused with a
suggestion), its figure draws, and the study parser accepts it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiscale.analysis import FAMILIES
from multiscale.analysis.family import ROW_COLUMNS, Family, FamilyResult, ParameterError
from multiscale.image import spatial_image

#: parameters that keep a family fast on the small sample (defaults otherwise)
SMALL = {
    "msi_colocalisation": {"n_permutations": 20},
    "msi_segmentation": {"n_clusters": 2, "n_components": 2},
    "msi_quantitation": {"calibration": [[0.0, 0.1], [1.0, 1.1], [2.0, 2.0], [4.0, 4.1]]},
    "msi_composition": {"lod_numerator": 1.0},
    "uptake": {"peak_volume_ml": 0.005},
    "radial": {"shells": 3, "n_boot": 20},
    "colocalisation": {"threshold": "costes"},
    "texture": {"families": ["stat", "glcm"], "bins": 8},
    "texture_map": {"features": ["cm_joint_avg", "cm_contrast"], "radius": 1, "bins": 8},
    "spatial": {},
    "unmixing": {"endmembers": ["HbO2"], "wavelengths": [800.0]},
    "ratiometric": {"calibration_ratios": [0.0, 10.0], "calibration_values": [6.0, 8.0], "units": "pH"},
    "spectral_ct": {"materials": ["water"], "energies_kev": [70.0], "input_units": "1/cm"},
    "fluorescence_calibration": {"standards_concentration": [0.0, 1.0, 2.0], "standards_intensity": [0.0, 2.0, 4.0]},
    "stains": {"threshold": 3.0},
    "cells": {"diameter_um": 2000.0},
    "cell_patterns": {"diameter_um": 2000.0, "n_simulations": 5},
    "hotspots": {"n_lags": 6},
    "tracks": {"diameter_um": 6000.0, "search_range_um": 3000.0, "threshold_rel": 0.5},
    "vessels": {},
    "perivascular": {"n_boot": 20},
    "penetration_comparison": {"n_boot": 10},
    "dce": {"model": "tofts", "aif_delay": 8.0},
    "curves": {},
    "relaxometry": {},
    "extravasation": {},
    "change": {"threshold": 0.5},
}


def _sample() -> dict[str, object]:
    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[:10, :14, :14]
    r = np.sqrt(((z - 4.5) * 1.0) ** 2 + ((y - 6.5) * 0.8) ** 2 + ((x - 6.5) * 0.8) ** 2)
    base = np.exp(-r / 4.0) * 5 + rng.random(r.shape)
    img = spatial_image(base, spacing=(1.0, 0.8, 0.8), units="SUVbw", modality="PT")
    other = spatial_image(2 * base + rng.random(r.shape), spacing=(1.0, 0.8, 0.8), units="a.u.")
    mask = spatial_image((r < 4.5).astype(np.uint8), spacing=(1.0, 0.8, 0.8))
    vessels = spatial_image((np.abs(x - 6) < 1).astype(np.uint8), spacing=(1.0, 0.8, 0.8))
    # a time series (t coords in s, echo times for relaxometry) for the time families: "<role>@<family>"
    from multiscale.analysis.kinetics import models, population_aif

    t = np.arange(0, 120.0, 4.0)
    curve = models.tofts(t, population_aif("parker", t, delay=8.0, hematocrit=0.42), 0.2, 0.3)
    series = spatial_image(1.0 + curve[:, None, None, None] * base[None], spacing=(1.0, 0.8, 0.8), units="mM",
                           dims=("t", "z", "y", "x")).assign_coords(t=t, echo_time=("t", 0.002 + t / 1e4))
    timed = {f"image@{name}": series for name in ("dce", "curves", "relaxometry", "extravasation", "tracks")}
    return {"image": img, "a": img, "b": other, "mask": mask, "vessels": vessels, "reference": mask, **timed}


@pytest.fixture(scope="module")
def sample() -> dict[str, object]:
    return _sample()


@pytest.fixture(scope="module", params=[f.name for f in FAMILIES])
def evaluated(request, sample) -> tuple[Family, FamilyResult]:
    family = next(f for f in FAMILIES if f.name == request.param)
    inputs = {role: sample.get(f"{role}@{family.name}", sample[role]) for role in family.inputs}
    return family, family.evaluate(inputs, SMALL.get(family.name, {}))


def test_every_family_is_complete():
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names)), "family names must be unique"
    for f in FAMILIES:
        assert isinstance(f, Family) and f.description, f.name
        assert f.name in SMALL, f"{f.name}: add its small-sample parameters to SMALL in this file"
        assert set(f.inputs) <= {"image", "mask", "a", "b"}, f.name
        assert callable(f.table)


def test_table_returns_the_schema_with_units(evaluated):
    family, res = evaluated
    rows = res.rows
    assert isinstance(rows, pd.DataFrame) and len(rows) > 0, family.name
    assert list(rows.columns[: len(ROW_COLUMNS)]) == list(ROW_COLUMNS)
    assert rows["metric"].astype(str).str.len().gt(0).all()
    assert rows["units"].astype(str).str.len().gt(0).all(), rows.loc[rows["units"] == "", "metric"].tolist()
    assert pd.to_numeric(rows["value"], errors="coerce").notna().any()


def test_table_called_directly_gives_the_same_numbers(evaluated, sample):
    """A notebook calling ``table`` and the pipeline calling ``evaluate`` get the same rows."""
    family, res = evaluated
    direct = family.table(**{role: sample.get(f"{role}@{family.name}", sample[role]) for role in family.inputs},
                          **SMALL.get(family.name, {}))
    direct = pd.DataFrame(list(direct)) if not isinstance(direct, pd.DataFrame) else direct
    assert direct["metric"].tolist() == res.rows["metric"].tolist()
    np.testing.assert_array_equal(direct["value"].to_numpy(float), res.rows["value"].to_numpy(float))


def test_params_bind_and_misspelt_ones_are_refused(evaluated):
    family, _ = evaluated
    family.check_params(SMALL.get(family.name, {}))
    names = list(family.parameters())
    if not names:
        return
    first = names[0]
    with pytest.raises(ParameterError) as err:
        family.check_params({first + "x": 1})
    assert err.value.field == first + "x" and err.value.suggestion == first


def test_mistyped_params_are_refused():
    radial = next(f for f in FAMILIES if f.name == "radial")
    with pytest.raises(ParameterError, match="shells: 'five' is not a valid value"):
        radial.check_params({"shells": "five"})
    radial.check_params({"shells": [0.0, 1.0, 2.0], "by": "normalised_depth", "gradient": False})
    with pytest.raises(ParameterError, match="input role"):
        radial.check_params({"vessels": "x"})


def test_figure_draws(evaluated):
    family, res = evaluated
    if family.figure is None:
        pytest.skip(f"{family.name} has no figure")
    figs = family.figure(res, title="sample")
    assert figs, family.name
    for name, fig in figs:
        assert isinstance(name, str) and name
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=40)
        assert buf.getvalue().startswith(b"\x89PNG")


def test_optional_roles_are_used(sample):
    """An optional role changes the answer: radial distances from vessels, uptake's reference region."""
    radial = next(f for f in FAMILIES if f.name == "radial")
    base = radial.evaluate({"image": sample["image"], "mask": sample["mask"]}, SMALL["radial"]).rows
    vess = radial.evaluate({"image": sample["image"], "mask": sample["mask"], "vessels": sample["vessels"]},
                           SMALL["radial"]).rows
    assert not np.allclose(base.loc[base.metric == "shell_mean", "value"], vess.loc[vess.metric == "shell_mean", "value"])
    uptake = next(f for f in FAMILIES if f.name == "uptake")
    rows = uptake.evaluate({"image": sample["image"], "mask": sample["mask"], "reference": sample["mask"]},
                           SMALL["uptake"]).rows.set_index("metric")
    assert rows.loc["tumour_to_reference_ratio", "units"] == "1"
    assert rows.loc["reference_mean", "units"] == "SUVbw"


def test_warnings_travel_with_the_rows(sample):
    """A NaN voxel in the region is dropped with a warning, and the warning is in every row's flags."""
    uptake = next(f for f in FAMILIES if f.name == "uptake")
    img = sample["image"].copy(data=np.array(sample["image"].data))
    img.data[4, 6, 6] = np.nan
    with pytest.warns(UserWarning):
        res = uptake.evaluate({"image": img, "mask": sample["mask"]}, SMALL["uptake"])
    assert res.warnings and (res.rows["flags"] != "").all()
    assert "NaN" in res.rows["flags"].iloc[0]


@pytest.mark.parametrize("name", [f.name for f in FAMILIES if f.evaluate_fn is not None])
def test_evaluate_takes_the_tables_parameters_with_the_same_defaults(name):
    """A study binds its params to ``table``'s signature and then calls ``evaluate_fn``: a parameter missing
    there, or a different default, would make a study's numbers differ from a notebook's ``*_table`` call."""
    import inspect

    family = next(f for f in FAMILIES if f.name == name)
    ev = inspect.signature(family.evaluate_fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in ev.values())
    for pname, p in family.parameters().items():
        if pname not in ev:
            assert takes_any, f"{name}: evaluate_fn lacks the table's parameter {pname!r}"
            continue
        assert ev[pname].default == p.default or (ev[pname].default is p.default), (
            f"{name}: {pname!r} defaults to {p.default!r} in the table but {ev[pname].default!r} in evaluate_fn")
