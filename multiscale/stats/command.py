"""The body of ``multiscale stats OUTPUT --by group``: group comparisons, correlation with an outcome, Cox models.

``OUTPUT`` is a study run's output folder (or its ``results.parquet``/``results.csv``). The design
(covariates and outcomes per subject) is ``--design FILE.csv`` or, through ``multiscale stats``, the
study's own design (read back from the study file the run's ``provenance.json`` names).

Examples
--------
>>> p = build_parser()
>>> p.parse_args(["out", "--by", "group"]).by
'group'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["add_arguments", "build_parser", "run", "main", "format_table"]

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``stats`` command's arguments to ``p``."""
    p.add_argument("output", help="a study run's output folder (or its results.parquet / results.csv)")
    p.add_argument("--by", default=None, help="design column of the groups to compare (group, formulation, dose...)")
    p.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                   help="only these metrics (names such as rim_core_ratio, or full labels); default: every scalar")
    p.add_argument("--design", default=None, metavar="CSV",
                   help="covariates and outcomes, one row per subject (default: the study's design)")
    p.add_argument("--id", default="subject", help="the design table's subject id column (default: subject)")
    p.add_argument("--test", choices=("welch", "mannwhitney"), default="welch",
                   help="two groups: Welch t or Mann-Whitney U; more: ANOVA + Tukey or Kruskal-Wallis + Holm pairs")
    p.add_argument("--correction", default="holm", help="across metrics: holm (default), fdr_bh, bonferroni, none")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level of the intervals (default 0.05)")
    p.add_argument("--outcome", default=None, help="correlate every metric with this outcome column")
    p.add_argument("--method", choices=("pearson", "spearman"), default="pearson", help="correlation (default pearson)")
    p.add_argument("--duration", default=None, help="survival time column (with --event and --covariates: Cox)")
    p.add_argument("--event", default=None, help="event column (1/true: event, 0/false: censored)")
    p.add_argument("--covariates", nargs="+", default=None, help="Cox covariates: design columns or metrics")
    p.add_argument("--repeated", default=None, metavar="UNIT",
                   help="with --by: also a mixed model per metric with a random intercept per UNIT (a design column "
                        "such as animal, or subject for lesions within subjects)")
    p.add_argument("--lesions", default=None, metavar="MASK",
                   help="lesion summaries of this label-image mask (regions MASK#label): needs --reference or "
                        "--threshold, and --lesion-metric")
    p.add_argument("--lesion-metric", default="suv_mean", help="the lesion metric compared (default suv_mean)")
    p.add_argument("--reference", default=None, help="reference region of the lesion summaries (e.g. blood)")
    p.add_argument("--threshold", type=float, default=None, help="fixed level of the lesion summaries")
    p.add_argument("--save", default=None, metavar="PREFIX",
                   help="also write the tables as CSV: PREFIX_groups.csv, PREFIX_correlation.csv, PREFIX_cox.csv")
    p.add_argument("--wide", action="store_true", help="print every column")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone parser (``python -m multiscale.stats.command``)."""
    return add_arguments(argparse.ArgumentParser(prog="multiscale stats", description=__doc__.split("\n")[0]))


_SHORT = {
    "groups": ["label", "comparison", "n_a", "n_b", "mean_a", "mean_b", "difference", "difference_ci_low",
               "difference_ci_high", "hedges_g", "test", "p_value", "p_adjusted", "note"],
    "correlation": ["label", "outcome", "method", "n", "r", "ci_low", "ci_high", "p_value", "p_adjusted", "note"],
    "cox": ["covariate", "coef", "se", "hazard_ratio", "hr_ci_low", "hr_ci_high", "p_value", "n", "events"],
    "mixed": ["label", "unit", "comparison", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "n_rows",
              "n_units", "note"],
    "lesions": ["subject", "map", "n_lesions", "n_positive", "fraction_positive", "burden_fraction_positive",
                "criterion"],
}


def format_table(table: Any, kind: str, wide: bool = False) -> str:
    """A results table as fixed-width text (the main columns unless ``wide``)."""
    import pandas as pd

    cols = list(table.columns) if wide else [c for c in _SHORT[kind] if c in table.columns]
    with pd.option_context("display.width", None, "display.max_columns", None):
        return table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}", max_colwidth=90)


def run(args: argparse.Namespace, design: Any = None) -> dict[str, Any]:
    """The tables the arguments ask for: ``groups``, ``mixed``, ``lesions``, ``correlation``, ``cox`` (DataFrames)."""
    from multiscale.errors import StatsError

    from .design import as_design
    from .groups import compare_groups
    from .outcome import correlate, cox

    if args.design is not None:
        design = as_design(Path(args.design), id_column=args.id)
    if not (args.by or args.outcome or args.duration or args.lesions):
        raise StatsError("say what to compute: --by COLUMN (groups), --outcome COLUMN (correlation), "
                         "--duration T --event E --covariates ... (Cox) or --lesions MASK --reference REGION")
    out: dict[str, Any] = {}
    if args.by:
        out["groups"] = compare_groups(args.output, by=args.by, metrics=args.metrics, design=design, test=args.test,
                                       correction=args.correction, alpha=args.alpha)
    if args.by and args.repeated:
        from .mixed import compare_groups_mixed

        out["mixed"] = compare_groups_mixed(args.output, by=args.by, unit=args.repeated, metrics=args.metrics,
                                            design=design, alpha=args.alpha, correction=args.correction)
    if args.lesions:
        from .lesions import lesion_summary

        out["lesions"] = lesion_summary(args.output, metric=args.lesion_metric, lesions=args.lesions,
                                        reference=args.reference, threshold=args.threshold)
    if args.outcome:
        out["correlation"] = correlate(args.output, outcome=args.outcome, metrics=args.metrics, design=design,
                                       method=args.method, alpha=args.alpha, correction=args.correction)
    if args.duration or args.event or args.covariates:
        if not (args.duration and args.event and args.covariates):
            raise StatsError("a Cox model needs --duration, --event and --covariates")
        out["cox"] = cox(args.output, duration=args.duration, event=args.event, covariates=args.covariates,
                         design=design, alpha=args.alpha)
    return out


def main(argv: Sequence[str] | None = None, design: Any = None, args: argparse.Namespace | None = None,
         stdout: TextIO | None = None) -> int:
    """Run the command; print the tables; exit code 0, or 2 for bad input (message on stderr)."""
    from multiscale.errors import MultiscaleError

    stdout = stdout or sys.stdout
    if args is None:
        args = build_parser().parse_args(argv)
    try:
        tables = run(args, design)
    except (MultiscaleError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for kind, table in tables.items():
        print(f"\n{kind}:", file=stdout)
        print(format_table(table, kind, args.wide) if len(table) else "(no rows)", file=stdout)
        if args.save:
            path = Path(f"{args.save}_{kind}.csv")
            table.to_csv(path, index=False)
            print(f"-> {path}", file=stdout)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
