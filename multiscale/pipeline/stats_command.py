"""``multiscale stats OUTPUT``: the study's design read back from a run's output, passed to :mod:`multiscale.stats`.

The design (covariates and outcomes per subject) is found through the study file that the run's
``provenance.json`` names, unless ``--design CSV`` gives one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from multiscale.errors import StudyError

from .cohort import design_frame

if TYPE_CHECKING:  # the command line builds its parser from here: keep this import light
    import pandas as pd

__all__ = ["add_stats_arguments", "study_design", "stats_command"]


def add_stats_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``multiscale stats`` arguments (:func:`multiscale.stats.command.add_arguments`)."""
    from multiscale.stats.command import add_arguments

    return add_arguments(parser)


def study_design(output: str | Path) -> pd.DataFrame | None:
    """The design of the study whose run wrote ``output``, for the subjects in its results table.

    Reads ``provenance.json`` (the study file's path) and the study file; None when the study has
    no design or the study file is gone.
    """
    from .study import load_study  # the study parser: only when reading a design back

    out = Path(output)
    folder = out if out.is_dir() else out.parent
    try:
        prov = json.loads((folder / "provenance.json").read_text())
        study_file = prov["parameters"]["study_file"]
        subjects = list(prov.get("results", {}).get("subjects") or [])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not Path(study_file).is_file():
        return None
    study = load_study(study_file, check_files=False)
    return design_frame(study, subjects or None)


def stats_command(args: argparse.Namespace) -> int:
    """``multiscale stats``: the study's design (unless ``--design``) passed to :func:`multiscale.stats.command.main`."""
    import sys

    from multiscale.stats.command import main

    design = None
    if args.design is None:
        try:
            design = study_design(args.output)
        except StudyError as exc:
            print(f"error: the study file of this run no longer reads: {exc}; give --design CSV", file=sys.stderr)
            return 2
    return main(args=args, design=design)
