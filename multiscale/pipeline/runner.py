"""Run a study: one task graph per subject, on a dask.distributed client or in this process.

A failing subject is reported with its error and the others complete; ``resume=True`` skips
subjects whose outputs are complete for the same study settings and input files. After the
subjects, the cohort table (Parquet + CSV), the per-subject status table (``subjects.csv``), the
study report and the study provenance are written into a staging folder and renamed into the
output folder one by one; the report and the provenance both name the table they describe (its
row count and the sha256 of ``results.csv``).

The cohort table holds only the subjects whose folders are complete for the current study
settings and input files (:func:`multiscale.pipeline.outputs.subject_status`); a subject that
failed in this run, or whose folder is stale or damaged, is left out and listed in
``subjects.csv``, the report and the provenance with its status.

The output folder is claimed first (:func:`multiscale.pipeline.outputs.claim_output`): it must be
writable and multiscale's own (or empty), and what a killed run left there is repaired.

This module never creates a Client: pass one (``multiscale run`` makes a ``LocalCluster`` or
connects to ``--scheduler``), or pass none to run the subjects one after another here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from multiscale._util import atomic_write, private_tempdir, write_text_atomic

from . import report
from .outputs import (
    COMPLETE,
    SUCCESS_FILE,
    claim_output,
    explain_write_error,
    release_output,
    remove_staging,
    subject_folder,
    subject_status,
)
from .provenance import file_sha256, input_checksums, provenance_record, write_json
from .results import read_results, results_frame, write_results
from .spec import Study
from .study import check_output, load_study
from .wiring import format_error, subject_graph

__all__ = ["StudyRun", "run_study", "collect_results", "SUBJECTS_COLUMNS"]

#: columns of ``subjects.csv``: one row per subject of the study
SUBJECTS_COLUMNS = ("subject", "status", "in_table", "rows", "seconds", "fingerprint", "warnings", "error")


@dataclass
class StudyRun:
    """What a run did: the subjects completed, skipped (resume) and failed, and where the outputs are."""

    output: Path
    completed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    results: Path | None = None
    report: Path | None = None
    provenance: Path | None = None
    subjects_table: Path | None = None
    finish_seconds: float = 0.0
    statuses: list[dict[str, Any]] = field(default_factory=list)
    #: input checksums per subject, computed once in this run (by the subject's task, or to check resume)
    inputs: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when no subject failed."""
        return not self.failed


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _short(exc: BaseException) -> str:
    """``Type: message`` and the notes added on the way up (disk full, which image...), on one line."""
    return "; ".join([f"{type(exc).__name__}: {exc}"] + list(getattr(exc, "__notes__", [])))


def _cohort(study: Study, output: Path, failed: Collection[str] = (),
            inputs: Mapping[str, Mapping[str, str]] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """The cohort table and every subject's :func:`subject_status` (``failed``: failed in this run, left out)."""
    frames, status = [], {}
    for s in study.subjects:
        if s.id in failed:
            status[s.id] = "failed"
            continue
        status[s.id] = subject_status(study, s, output, (inputs or {}).get(s.id))
        if status[s.id] == COMPLETE:
            frames.append(read_results(subject_folder(output, s.id) / "results.parquet"))
    if not frames:
        return results_frame([]), status
    return results_frame(pd.concat(frames, ignore_index=True).to_dict("records")), status


def collect_results(study: Study, output: Path, failed: Collection[str] = (),
                    inputs: Mapping[str, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """The cohort table: every subject whose folder is complete for the current settings and inputs, in study order.

    A subject in ``failed``, or whose folder is missing, stale (other settings or input files) or
    damaged (an output missing or of another size than written), is left out. ``inputs`` are
    input checksums already computed, by subject id.
    """
    return _cohort(study, Path(output), failed, inputs)[0]


def run_study(
    study: Study | str | Path,
    output: str | Path | None = None,
    client: Any = None,
    subjects: Sequence[str] | None = None,
    resume: bool = False,
    progress: Callable[[str], None] | None = print,
    heartbeat_s: float = 30.0,
    force: bool = False,
) -> StudyRun:
    """Run every (selected) subject of a study and write the cohort outputs.

    Parameters
    ----------
    study : Study or path
        A parsed study or the path to its YAML file.
    output : path, optional
        Output folder; the study's ``output`` field when not given.
    client : distributed.Client, optional
        Submit one graph per subject to this client. Without one, subjects run one after
        another in this process with dask's synchronous scheduler.
    subjects : sequence of str, optional
        Only these subject ids.
    resume : bool
        Skip subjects whose outputs are complete (same study settings, same input checksums).
    progress : callable, optional
        Called with one line per event (``print`` by default; ``None`` for silence).
    heartbeat_s : float
        On a client, also report how many subjects have finished every this many seconds (0: never).
    force : bool
        Write into an output folder that holds results, a report or provenance multiscale did not
        write (refused otherwise).

    Returns
    -------
    StudyRun

    Raises
    ------
    StudyError
        The output folder is not writable, holds someone else's results (without ``force``), or
        another run is writing into it.

    Examples
    --------
    >>> run = run_study("example_datasets/study.yaml", output="out", progress=None)  # doctest: +SKIP
    >>> run.completed, run.failed  # doctest: +SKIP
    (['mouse01'], {})
    """
    if not isinstance(study, Study):
        study = load_study(study)
    out = Path(output).expanduser().resolve() if output is not None else study.output
    if output is not None:
        check_output(study, out)  # the study's own output was checked when it was read
    selected = study.select(list(subjects) if subjects else None)
    token = uuid.uuid4().hex[:8]
    for line in claim_output(out, token, force=force, study_name=study.name):
        _say(progress, f"  output folder: {line} (left by an interrupted run)")
    try:
        return _run(study, out, selected, token, client, resume, progress, heartbeat_s)
    finally:
        release_output(out, token)


def _run(study: Study, out: Path, selected: list, token: str, client: Any, resume: bool,
         progress: Callable[[str], None] | None, heartbeat_s: float) -> StudyRun:
    run = StudyRun(output=out)
    todo = []
    for s in selected:
        if resume:
            run.inputs[s.id] = input_checksums(s.input_files())
            if subject_status(study, s, out, run.inputs[s.id]) == COMPLETE:
                run.skipped.append(s.id)
                _say(progress, f"  skip  {s.id}: outputs complete (resume)")
                continue
        todo.append(s)
    n = len(todo)
    _say(progress, f"study {study.name}: {n} subject(s) to run, {len(run.skipped)} skipped -> {out}")
    t_start = time.perf_counter()
    done = 0
    try:
        if client is None:
            for s in todo:
                t0 = time.perf_counter()
                try:
                    summary = subject_graph(study, s, out, token).compute(scheduler="sync")
                except Exception as exc:  # noqa: BLE001 - a subject's failure must not stop the others
                    run.failed[s.id] = format_error(exc)
                    status = f"FAILED {_short(exc)}"
                else:
                    run.completed.append(s.id)
                    run.inputs[s.id] = summary.get("inputs") or run.inputs.get(s.id)
                    status = "done"
                run.seconds[s.id] = time.perf_counter() - t0
                done += 1
                _say(progress, f"[{done}/{n}] {s.id}: {status} ({run.seconds[s.id]:.1f} s)")
        else:
            import threading

            from distributed import as_completed

            graphs = [subject_graph(study, s, out, token) for s in todo]
            futures = client.compute(graphs) if graphs else []
            ids = {f.key: s.id for f, s in zip(futures, todo)}
            stop = threading.Event()

            def heartbeat() -> None:  # a line every `heartbeat_s` while subjects run
                while not stop.wait(heartbeat_s):
                    finished = len(run.completed) + len(run.failed)
                    _say(progress, f"  ... {finished}/{n} subjects finished after {time.perf_counter() - t_start:.0f} s")

            beat = threading.Thread(target=heartbeat, daemon=True)
            if progress is not None and heartbeat_s:
                beat.start()
            try:
                _collect(futures, ids, run, t_start, progress, n, as_completed)
            finally:
                stop.set()
            order = [s.id for s in todo]
            run.completed.sort(key=order.index)
    finally:
        # a subject that failed (or a run interrupted) after some of its maps were staged
        for s in todo:
            if s.id not in run.completed:
                remove_staging(out, s.id, token)
    wall = time.perf_counter() - t_start
    t_finish = time.perf_counter()
    _finish(study, run, selected, wall, client)
    run.finish_seconds = time.perf_counter() - t_finish
    if run.failed:
        _say(progress, f"{len(run.failed)} subject(s) failed: {', '.join(run.failed)} (see {run.report})")
    left_out = [s["subject"] for s in run.statuses if not s["in_table"] and s["status"] not in ("failed", "not run")]
    if left_out:
        _say(progress, f"{len(left_out)} subject(s) left out of the table (stale or damaged outputs): "
                       f"{', '.join(left_out)} (see {run.subjects_table})")
    _say(progress, f"results: {run.results}")
    _say(progress, f"report:  {run.report}")
    return run


def _collect(futures: list, ids: dict, run: StudyRun, t_start: float, progress: Any, n: int,
             as_completed: Any) -> None:
    """Record each subject's future as it finishes: completed, or failed with its error."""
    done = 0
    for fut in as_completed(futures):
        sid = ids[fut.key]
        run.seconds[sid] = time.perf_counter() - t_start
        if fut.status == "error":
            exc = fut.exception()
            run.failed[sid] = format_error(exc, fut.traceback())
            status = f"FAILED {_short(exc)}"
        else:
            summary = fut.result()
            run.completed.append(sid)
            if isinstance(summary, dict) and summary.get("inputs"):
                run.inputs[sid] = summary["inputs"]
            status = "done"
        done += 1
        _say(progress, f"[{done}/{n}] {sid}: {status} (after {run.seconds[sid]:.1f} s)")
        fut.release()


def _statuses(study: Study, run: StudyRun, selected: list, table: pd.DataFrame,
              status: Mapping[str, str]) -> list[dict[str, Any]]:
    """One entry per subject of the study: its status, whether its rows are in the table, and why not."""
    chosen = {s.id for s in selected}
    out = []
    for s in study.subjects:
        folder = subject_folder(run.output, s.id)
        st = status[s.id]
        entry: dict[str, Any] = {"subject": s.id, "fingerprint": study.subject_fingerprint(s), "in_table": False,
                                 "rows": 0, "seconds": float("nan"), "error": "", "warnings": []}
        if s.id in run.failed:
            entry.update(status="failed", error=run.failed[s.id], seconds=round(run.seconds.get(s.id, float("nan")), 2))
        elif st == COMPLETE:
            marker = json.loads((folder / SUCCESS_FILE).read_text())
            try:
                warnings = json.loads((folder / "provenance.json").read_text()).get("warnings") or []
            except (OSError, ValueError):
                warnings = []
            entry.update(status="completed" if s.id in run.completed else
                         ("skipped (resume)" if s.id in run.skipped else "from an earlier run"),
                         in_table=True, rows=int((table.subject == s.id).sum()), warnings=list(warnings),
                         seconds=round(sum(marker.get("timings_s", {}).values()), 2))
        elif st.startswith("missing: no outputs") and s.id not in chosen:
            entry.update(status="not run")
        else:
            entry.update(status=st)
        out.append(entry)
    return out


def _finish(study: Study, run: StudyRun, selected: list, wall: float, client: Any) -> None:
    out = run.output
    table, status = _cohort(study, out, run.failed, run.inputs)
    run.statuses = statuses = _statuses(study, run, selected, table, status)
    listed = [s for s in statuses if s["status"] != "not run"]  # the report's and provenance's cohort
    specs = report.cohort_figure_specs(table, heatmap=(study.report or {}).get("heatmap", "paged"))
    if client is not None and specs:
        # the cohort figures are drawn on the workers, side by side, rather than one after another here
        futures = [client.submit(report.cohort_figure_png, kind, data, pure=False) for _, kind, data in specs]
        figures = list(zip([caption for caption, _, _ in specs], client.gather(futures)))
    else:
        figures = [(caption, report.cohort_figure_png(kind, data)) for caption, kind, data in specs]
    workers = None
    if client is not None:
        try:
            workers = len(client.scheduler_info().get("workers", {}))
        except Exception:  # noqa: BLE001 - informational only
            workers = None
    # everything into a staging folder first, then renamed in one by one, the provenance last: the
    # report and the provenance name the table (rows, sha256) they were written with
    stage = private_tempdir(out, ".cohort-")
    names = ("results.parquet", "results.csv", "subjects.csv", "report.html", "provenance.json")
    try:
        write_results(table, stage)
        rows = pd.DataFrame([{**{k: s.get(k) for k in SUBJECTS_COLUMNS}, "warnings": " | ".join(s["warnings"])}
                             for s in statuses], columns=list(SUBJECTS_COLUMNS))
        atomic_write(stage / "subjects.csv", lambda tmp: rows.to_csv(tmp, index=False))
        summary = {"rows": len(table), "sha256": file_sha256(stage / "results.csv"),
                   "parquet_sha256": file_sha256(stage / "results.parquet"),
                   "subjects": [s["subject"] for s in statuses if s["in_table"]]}
        html = report.study_report_html(study, table, listed, out, figures, table_summary=summary)
        write_text_atomic(stage / "report.html", html)
        prov = provenance_record(
            {"study_file": str(study.path), "subjects_selected": [s.id for s in selected]},
            {str(study.path): file_sha256(study.path)},
            {"study_wall": wall, **{f"subject-{k}": v for k, v in run.seconds.items()}},
            study=study.name, statuses=[{k: v for k, v in s.items() if k != "fingerprint"} for s in listed],
            results=summary, scheduler="distributed" if client is not None else "in-process", workers=workers,
        )
        write_json(prov, stage / "provenance.json")
        for name in names:
            os.replace(stage / name, out / name)
    except BaseException as exc:
        explain_write_error(exc, "the cohort table and report", out)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    run.results, run.subjects_table = out / "results.parquet", out / "subjects.csv"
    run.report, run.provenance = out / "report.html", out / "provenance.json"
