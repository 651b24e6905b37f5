"""Named metrics of one region: a ``dict`` (as the notebook API always returned) that knows each metric's unit.

The library's return convention for metrics is a tidy :class:`pandas.DataFrame` (``metric``, ``value``,
``units``; see "Return conventions" in ``ARCHITECTURE.md``). Functions that measure a handful of named numbers
of one region (``uptake_metrics``, ``colocalisation``, ``radial_gradient``, ...) keep returning a mapping, so
``m["suv_max"]`` keeps working, but the mapping is a :class:`Metrics` whose :meth:`Metrics.to_frame` is that
tidy table, with the units decided in the function's own module (the same units its family's rows carry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from .family import tidy_rows

__all__ = ["Metrics", "METRIC_COLUMNS"]

#: the columns of :meth:`Metrics.to_frame`, before any extra ``columns=``
METRIC_COLUMNS = ("metric", "value", "units")


class Metrics(dict):
    """A ``dict`` of named metrics whose numbers carry units; :meth:`to_frame` gives the tidy table.

    Parameters
    ----------
    values : mapping
        Metric name -> value. Numbers (nested mappings give dotted names) become rows; other values
        (method names, positions as tuples, arrays) stay in the mapping only.
    units : str, mapping or callable
        Each number's unit, as :func:`multiscale.analysis.family.tidy_rows` takes it. Resolved at once:
        a number without a unit is an error here, not later. Kept as a plain mapping in :attr:`units`
        (metric name -> unit), so a ``Metrics`` pickles like a dict.

    Examples
    --------
    >>> m = Metrics({"suv_max": 4.2, "volume_ml": 1.5, "method": "percist"}, {"suv_max": "SUVbw", "volume_ml": "mL"})
    >>> m["suv_max"], m.units["volume_ml"]
    (4.2, 'mL')
    >>> m.to_frame()
          metric  value  units
    0    suv_max    4.2  SUVbw
    1  volume_ml    1.5     mL
    """

    units: dict[str, str]

    def __init__(self, values: Mapping[str, Any] = (), units: Mapping[str, str] | str | Callable[[str], str] = "",
                 **kw: Any) -> None:
        super().__init__(values, **kw)
        self.units = {r["metric"]: r["units"] for r in tidy_rows(self, units)}

    def to_frame(self, **columns: Any) -> pd.DataFrame:
        """The tidy table: one row per number (``metric``, ``value``, ``units``, then ``columns`` as given).

        Examples
        --------
        >>> Metrics({"n": 3}, "voxels").to_frame(region="tumour").to_dict("records")
        [{'metric': 'n', 'value': 3.0, 'units': 'voxels', 'region': 'tumour'}]
        """
        rows = tidy_rows(self, self.units, **columns)
        return pd.DataFrame(rows, columns=[*METRIC_COLUMNS, *columns])

    def __repr__(self) -> str:
        return f"Metrics({dict.__repr__(self)})"
