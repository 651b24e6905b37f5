"""What makes an analysis callable from a study file: :class:`Family` and the tidy result schema.

A family is one module of :mod:`multiscale.analysis` that ends with ``FAMILY = Family(...)``: its
name (the study file's ``type:``), the input roles it takes (``image`` and ``mask``, or ``a``,
``b`` and ``mask`` for pairs, plus optional image roles such as ``vessels``), a ``table`` function
that returns tidy rows **with units decided in that module**, and optionally ``images`` (maps worth
saving) and ``figure`` (drawn from the result). The plain functions of the module stay the API for
notebooks; ``table`` is a thin wrapper over them, so a study run and a notebook give the same
numbers by construction. :data:`multiscale.analysis.FAMILIES` lists the families in order; the
study pipeline loops over it and never names one.

The tidy schema (:data:`COLUMNS`): one row per subject x region x map x metric, ``value`` with its
``units``, ``bin``/``bin_lo``/``bin_hi``/``bin_units`` for profiles, free-text ``detail``,
``flags`` (the warnings raised while the row was computed, so they travel with the number) and
``registration_lo``/``registration_hi``: the range the value spans when the maps are resampled under
transforms drawn from their registrations' uncertainty (empty unless the study asks for it).
A family's ``table`` fills ``metric``, ``value``, ``units`` and, where it applies, the bin columns
and ``detail``; the pipeline adds ``subject``, ``region``, ``map`` and ``analysis``.

Examples
--------
>>> import numpy as np
>>> from multiscale.image import spatial_image
>>> from multiscale.analysis import FAMILIES
>>> uptake = next(f for f in FAMILIES if f.name == "uptake")
>>> pet = spatial_image(np.full((4, 4, 4), 2.0), spacing=1.0, units="SUVbw")
>>> mask = spatial_image(np.ones((4, 4, 4), np.uint8), spacing=1.0)
>>> res = uptake.evaluate({"image": pet, "mask": mask}, {"peak_volume_ml": 0.001})
>>> row = res.rows.set_index("metric").loc["suv_max"]
>>> float(row["value"]), row["units"]
(2.0, 'SUVbw')
"""

from __future__ import annotations

import difflib
import inspect
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "ROW_COLUMNS",
    "Family",
    "FamilyResult",
    "ParameterError",
    "results_frame",
    "tidy_rows",
    "image_units",
]

#: the tidy results table's columns, in order
COLUMNS: tuple[str, ...] = (
    "subject", "region", "map", "analysis", "metric", "value", "units", "bin", "bin_lo", "bin_hi",
    "bin_units", "detail", "flags", "registration_lo", "registration_hi",
)
#: the columns a family's ``table`` fills (the pipeline adds subject, region, map and analysis, and the
#: registration interval when asked)
ROW_COLUMNS: tuple[str, ...] = COLUMNS[4:-2]
_NUMERIC_COLUMNS = ("value", "bin", "bin_lo", "bin_hi", "registration_lo", "registration_hi")
_STRING_COLUMNS = ("subject", "region", "map", "analysis", "metric", "units", "bin_units", "detail", "flags")
_ROLE_NAMES = ("image", "mask", "a", "b")


class ParameterError(TypeError):
    """Study ``params`` that do not bind to a family's ``table`` (unknown name or wrong type).

    ``field`` is the parameter's name and ``suggestion`` the closest accepted name, if any.
    """

    def __init__(self, message: str, field: str = "", suggestion: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field
        self.suggestion = suggestion


def image_units(image: Any) -> str:
    """The units an image's values are in (``attrs["units"]``); ``"a.u."`` (arbitrary units) when unset.

    Every metric carries a unit; a map that does not say what its values are in is in arbitrary units.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> image_units(spatial_image(np.zeros((2, 2)), spacing=1.0, units="SUVbw"))
    'SUVbw'
    >>> image_units(spatial_image(np.zeros((2, 2)), spacing=1.0))
    'a.u.'
    """
    return str(getattr(image, "attrs", {}).get("units", "") or "") or "a.u."


def results_frame(rows: Any) -> pd.DataFrame:
    """The tidy table from row mappings (or a DataFrame): missing columns filled, types fixed.

    Examples
    --------
    >>> df = results_frame([{"subject": "m1", "region": "tumour", "map": "pet", "analysis": "uptake",
    ...                      "metric": "suv_max", "value": 3.2, "units": "SUVbw"}])
    >>> list(df.columns[:7]), float(df.value[0])
    (['subject', 'region', 'map', 'analysis', 'metric', 'value', 'units'], 3.2)
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = np.nan if col in _NUMERIC_COLUMNS else ""
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[list(COLUMNS) + extra]
    for col in _STRING_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    df["bin"] = pd.to_numeric(df["bin"], errors="coerce").astype("Int64")
    for col in ("bin_lo", "bin_hi", "registration_lo", "registration_hi"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df.reset_index(drop=True)


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(-1)[0])
    return None


def tidy_rows(result: Any, units: Mapping[str, str] | str | Callable[[str], str], prefix: str = "",
              **columns: Any) -> list[dict[str, Any]]:
    """Rows ``{metric, value, units, **columns}`` for every number in an analysis result.

    Nested mappings get dotted metric names; non-numeric values (method names, arrays) are
    skipped. ``units`` decides each metric's unit: one string for all, a mapping by metric name
    (the last dotted part is also looked up), or a function of the name. Every family states its
    units here, next to the metric's definition; a metric without a unit is an error, so a new
    metric cannot silently get an empty unit.

    Examples
    --------
    >>> tidy_rows({"pearson": 0.8, "n": 10}, {"pearson": "1", "n": "voxels"})[1]
    {'metric': 'n', 'value': 10.0, 'units': 'voxels'}
    >>> tidy_rows({"x": 1.0}, {})
    Traceback (most recent call last):
    ...
    KeyError: "no unit defined for metric 'x'"
    """
    def unit_of(name: str) -> str:
        if callable(units):
            u = units(name)
        elif isinstance(units, str):
            u = units
        else:
            u = units.get(name, units.get(name.rsplit(".", 1)[-1]))
        if u is None:
            raise KeyError(f"no unit defined for metric {name!r}")
        return str(u)

    rows: list[dict[str, Any]] = []
    if hasattr(result, "__dataclass_fields__"):
        result = {k: getattr(result, k) for k in result.__dataclass_fields__}
    if isinstance(result, pd.Series):
        result = result.to_dict()
    for k, v in result.items():
        if isinstance(v, Mapping):
            rows.extend(tidy_rows(v, units, prefix=f"{prefix}{k}.", **columns))
            continue
        num = _number(v)
        if num is None:
            continue
        name = prefix + str(k)
        rows.append(dict(metric=name, value=num, units=unit_of(name), **columns))
    return rows


@dataclass
class FamilyResult:
    """What one family computed for one set of inputs (one map or pair, one region).

    ``rows`` is the tidy table (:data:`ROW_COLUMNS`); ``images`` the maps worth saving, by name;
    ``data`` what a figure needs beyond the table (e.g. a joint histogram); ``warnings`` the
    messages of the warnings raised while computing (also in every row's ``flags``); ``tables``
    per-object tables by name (one row per cell, spot...), written beside the results as Parquet.
    """

    rows: pd.DataFrame
    images: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from YAML: numbers, strings, lists, mappings, None) fits a type hint."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, Iterable):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return not args or all(any(_type_ok(v, a) for a in args) for v in value)
    if hint in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, Mapping)
    return True  # images, arrays and other objects: not checked here


def _describe_hint(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "").replace("collections.abc.", "")


@dataclass(frozen=True)
class Family:
    """An analysis the study pipeline can run: its name, input roles, table, images and figure.

    Parameters
    ----------
    name : str
        The study file's ``type:``.
    table : callable
        ``table(<roles>, **params) -> list of row mappings or DataFrame`` with :data:`ROW_COLUMNS`
        (``metric``, ``value``, ``units`` at least). Study ``params`` bind to its signature.
    inputs : tuple of str
        Required roles, passed by keyword: ``("image", "mask")`` for one map in a region,
        ``("a", "b", "mask")`` for pairs (``mask`` may then be None: the whole image).
    optional : tuple of str
        Optional image roles (e.g. ``("vessels",)``) that a study names under ``inputs:``.
    images : callable, optional
        ``images(<roles>, **params) -> dict[str, DataArray]``: maps worth saving.
    figure : callable, optional
        ``figure(result: FamilyResult, title: str, labels: tuple[str, ...]) -> list[(name, Figure)]``;
        ``labels`` name the input maps (one, or two for pairs).
    evaluate : callable, optional
        ``evaluate(<roles>, **params) -> FamilyResult`` when rows and images share work (a
        texture map is computed once for both); by default ``table`` then ``images``.
    settings : callable, optional
        For a ``table`` that takes ``**settings``: a function returning the accepted extra names.
    description : str
        One line for ``multiscale validate`` and the report.
    whole_image : bool
        The family takes a multi-channel image whole (a spectral stack's wavelengths, an RGB slide's colours):
        the pipeline passes an image named without a channel as it is, instead of one channel at a time.
        Rows about one channel of it (an ion ranked against a reference) say so in a ``channel`` column;
        the results table then names that row's map ``<image>:<channel>``.
    """

    name: str
    table: Callable[..., Any]
    inputs: tuple[str, ...] = ("image", "mask")
    optional: tuple[str, ...] = ()
    images: Callable[..., dict[str, Any]] | None = None
    figure: Callable[..., list[tuple[str, Any]]] | None = None
    evaluate_fn: Callable[..., FamilyResult] | None = None
    settings: Callable[[], Sequence[str]] | None = None
    description: str = ""
    whole_image: bool = False

    @property
    def pairwise(self) -> bool:
        """True for families over pairs of maps (roles ``a`` and ``b``)."""
        return "a" in self.inputs and "b" in self.inputs

    @property
    def roles(self) -> tuple[str, ...]:
        """Every input role, required then optional."""
        return tuple(self.inputs) + tuple(self.optional)

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The study-settable parameters of ``table`` (its signature less the input roles)."""
        sig = inspect.signature(self.table)
        return {n: p for n, p in sig.parameters.items()
                if n not in self.roles and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Bind study ``params`` to ``table``'s signature; return them, or raise :class:`ParameterError`.

        Unknown names get the closest accepted name as a suggestion; values of the wrong type
        (``shells: "five"`` for an ``int``) are refused with the expected type.

        Examples
        --------
        >>> from multiscale.analysis import FAMILIES
        >>> radial = next(f for f in FAMILIES if f.name == "radial")
        >>> radial.check_params({"shels": 5})
        Traceback (most recent call last):
        ...
        multiscale.analysis.family.ParameterError: shels: unknown parameter of radial; did you mean 'shells'?
        """
        params = dict(params or {})
        accepted = self.parameters()
        sig = inspect.signature(self.table)
        takes_more = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
        extra = set(self.settings()) if self.settings is not None else set()
        try:
            hints = typing.get_type_hints(self.table)
        except Exception:  # noqa: BLE001 - unresolvable annotations are not checked
            hints = {}
        for key, value in params.items():
            if key in self.roles:
                raise ParameterError(f"{key!r} is an input role of {self.name}, not a parameter; "
                                     f"name it under 'inputs:'", key)
            if key not in accepted and not (takes_more and key in extra):
                names = sorted(accepted) + sorted(extra)
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"accepted: {', '.join(names)}"
                raise ParameterError(f"unknown parameter of {self.name}; {hint}", key,
                                     close[0] if close else None)
            if key in hints and not _type_ok(value, hints[key]):
                raise ParameterError(f"{value!r} is not a valid value for {self.name}; expected "
                                     f"{_describe_hint(hints[key])}", key)
        return params

    def evaluate(self, inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> FamilyResult:
        """Run the family on named inputs; the warnings raised become the rows' ``flags``.

        Parameters
        ----------
        inputs : mapping role -> image
            Every required role (``mask`` may be None for pair families), optional roles if given.
        params : mapping, optional
            Study parameters (checked with :meth:`check_params`).
        """
        params = self.check_params(params or {})
        missing = [r for r in self.inputs if r not in inputs]
        if missing:
            raise TypeError(f"{self.name}: missing input role(s) {missing}; roles are {list(self.roles)}")
        unknown = [r for r in inputs if r not in self.roles]
        if unknown:
            raise TypeError(f"{self.name}: unknown input role(s) {unknown}; roles are {list(self.roles)}")
        kwargs = {k: v for k, v in inputs.items()}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if self.evaluate_fn is not None:
                result = self.evaluate_fn(**kwargs, **params)
            else:
                rows = self.table(**kwargs, **params)
                imgs = self.images(**kwargs, **params) if self.images is not None else {}
                result = FamilyResult(rows=rows, images=dict(imgs))
        messages: list[str] = []
        for w in caught:
            text = f"{w.category.__name__}: {w.message}"
            if text not in messages:
                messages.append(text)
        for w in caught:  # still shown to the user, once, where they ran it
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        rows = result.rows if isinstance(result.rows, pd.DataFrame) else pd.DataFrame(list(result.rows))
        for col in ROW_COLUMNS:
            if col not in rows.columns:
                rows[col] = np.nan if col in ("value", "bin", "bin_lo", "bin_hi") else ""
        if len(rows) and (rows["units"].isna() | (rows["units"].astype(str) == "")).any():
            bad = rows.loc[rows["units"].isna() | (rows["units"].astype(str) == ""), "metric"].tolist()
            raise ValueError(f"family {self.name!r} returned metrics without units: {bad[:5]}")
        flags = "; ".join(messages + list(result.warnings))
        rows["flags"] = [flags] * len(rows)
        result.rows = rows[list(ROW_COLUMNS) + [c for c in rows.columns if c not in ROW_COLUMNS]]
        result.warnings = messages + list(result.warnings)
        return result

