"""Run a study: one task graph per subject, on a dask.distributed client or in this process.

A failing subject is reported with its error and the others complete; ``resume=True`` skips
subjects whose outputs are complete for the same study settings and input files. After the
subjects, the cohort table (Parquet + CSV), the study report and the study provenance are
written atomically into the output folder.

This module never creates a Client: pass one (``multiscale run`` makes a ``LocalCluster`` or
connects to ``--scheduler``), or pass none to run the subjects one after another here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from multiscale._util import write_text_atomic

from . import report
from .outputs import SUCCESS_FILE, remove_staging, subject_folder, subject_is_complete
from .provenance import file_sha256, provenance_record, write_json
from .results import read_results, results_frame, write_results
from .spec import Study
from .study import load_study
from .wiring import format_error, subject_graph

__all__ = ["StudyRun", "run_study", "collect_results"]


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
    finish_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no subject failed."""
        return not self.failed


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def collect_results(study: Study, output: Path) -> pd.DataFrame:
    """The cohort table: every subject of the study whose folder is complete, in study order."""
    frames = []
    for s in study.subjects:
        folder = subject_folder(output, s.id)
        if (folder / SUCCESS_FILE).is_file() and (folder / "results.parquet").is_file():
            frames.append(read_results(folder / "results.parquet"))
    if not frames:
        return results_frame([])
    return results_frame(pd.concat(frames, ignore_index=True).to_dict("records"))


def run_study(
    study: Study | str | Path,
    output: str | Path | None = None,
    client: Any = None,
    subjects: Sequence[str] | None = None,
    resume: bool = False,
    progress: Callable[[str], None] | None = print,
    heartbeat_s: float = 30.0,
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

    Returns
    -------
    StudyRun

    Examples
    --------
    >>> run = run_study("example_datasets/study.yaml", output="out", progress=None)  # doctest: +SKIP
    >>> run.completed, run.failed  # doctest: +SKIP
    (['mouse01'], {})
    """
    if not isinstance(study, Study):
        study = load_study(study)
    out = Path(output).expanduser().resolve() if output is not None else study.output
    out.mkdir(parents=True, exist_ok=True)
    run = StudyRun(output=out)
    selected = study.select(list(subjects) if subjects else None)
    todo = []
    for s in selected:
        if resume and subject_is_complete(study, s, out):
            run.skipped.append(s.id)
            _say(progress, f"  skip  {s.id}: outputs complete (resume)")
        else:
            todo.append(s)
    n = len(todo)
    _say(progress, f"study {study.name}: {n} subject(s) to run, {len(run.skipped)} skipped -> {out}")
    token = uuid.uuid4().hex[:8]
    t_start = time.perf_counter()
    done = 0
    if client is None:
        for s in todo:
            t0 = time.perf_counter()
            try:
                subject_graph(study, s, out, token).compute(scheduler="sync")
            except Exception as exc:  # noqa: BLE001 - a subject's failure must not stop the others
                run.failed[s.id] = format_error(exc)
                status = f"FAILED {type(exc).__name__}: {exc}"
            else:
                run.completed.append(s.id)
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
    for sid in run.failed:  # a subject that failed after some of its maps were staged
        remove_staging(out, sid, token)
    wall = time.perf_counter() - t_start
    t_finish = time.perf_counter()
    _finish(study, run, selected, wall, client)
    run.finish_seconds = time.perf_counter() - t_finish
    if run.failed:
        _say(progress, f"{len(run.failed)} subject(s) failed: {', '.join(run.failed)} (see {run.report})")
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
            status = f"FAILED {type(exc).__name__}: {exc}"
        else:
            fut.result()
            run.completed.append(sid)
            status = "done"
        done += 1
        _say(progress, f"[{done}/{n}] {sid}: {status} (after {run.seconds[sid]:.1f} s)")
        fut.release()


def _finish(study: Study, run: StudyRun, selected: list, wall: float, client: Any) -> None:
    out = run.output
    table = collect_results(study, out)
    run.results, _ = write_results(table, out)
    statuses = []
    for s in study.subjects:
        folder = subject_folder(out, s.id)
        complete = (folder / SUCCESS_FILE).is_file()
        if s.id in run.failed:
            statuses.append({"subject": s.id, "status": "failed", "error": run.failed[s.id],
                             "seconds": round(run.seconds.get(s.id, float("nan")), 2), "rows": 0})
        elif s.id in run.completed or s.id in run.skipped or complete:
            marker = json.loads((folder / SUCCESS_FILE).read_text()) if complete else {}
            status = "completed" if s.id in run.completed else ("skipped (resume)" if s.id in run.skipped
                                                              else "from an earlier run")
            statuses.append({"subject": s.id, "status": status,
                             "seconds": round(sum(marker.get("timings_s", {}).values()), 2),
                             "rows": int((table.subject == s.id).sum())})
    specs = report.cohort_figure_specs(table)
    if client is not None and specs:
        # the cohort figures are drawn on the workers, side by side, rather than one after another here
        futures = [client.submit(report.cohort_figure_png, kind, data, pure=False) for _, kind, data in specs]
        figures = list(zip([caption for caption, _, _ in specs], client.gather(futures)))
    else:
        figures = [(caption, report.cohort_figure_png(kind, data)) for caption, kind, data in specs]
    html = report.study_report_html(study, table, statuses, out, figures)
    run.report = out / "report.html"
    write_text_atomic(run.report, html)
    workers = None
    if client is not None:
        try:
            workers = len(client.scheduler_info().get("workers", {}))
        except Exception:  # noqa: BLE001 - informational only
            workers = None
    prov = provenance_record(
        {"study_file": str(study.path), "subjects_selected": [s.id for s in selected]},
        {str(study.path): file_sha256(study.path)},
        {"study_wall": wall, **{f"subject-{k}": v for k, v in run.seconds.items()}},
        study=study.name, statuses=statuses, scheduler="distributed" if client is not None else "in-process",
        workers=workers,
    )
    run.provenance = write_json(prov, out / "provenance.json")
