"""One feature row of the texture table (the columns of :func:`multiscale.analysis.texture.features`)."""

from __future__ import annotations

COLUMNS: tuple[str, ...] = ("tag", "ibsi_id", "aggregation", "family", "feature", "value")


def feature_row(tag: str, ibsi_id: str, family: str, feature: str, value: float, aggregation: str = "") -> dict:
    """A row dict with the table's columns; ``value`` as float (NaN allowed)."""
    return {"tag": tag, "ibsi_id": ibsi_id, "aggregation": aggregation, "family": family,
            "feature": feature, "value": float(value)}
