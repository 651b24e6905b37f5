"""The ``multiscale`` command: a thin layer over the library.

Subcommands
-----------
demo      generate the example study if absent and run it (what ``make demo`` runs)
run       run a study file on dask.distributed (LocalCluster by default, or ``--scheduler``)
validate  check a study file without running it
info      describe an image file (geometry, units, channels); ``--json`` for machines
features  IBSI texture features of one image and mask, optionally from a pyradiomics parameter file
view      open output OME-Zarr maps in napari (extra ``[viewer]``)

Options before the subcommand: ``--version``, ``-v`` (one line per finished pipeline step), ``-q``
(errors and warnings only), ``--log-file PATH`` (everything, with times, at debug level). Messages go to
stdout, warnings and errors to stderr (so ``multiscale features ... > table.csv`` stays a clean table).

Exit codes
----------
0  success
1  some subjects failed (the others completed), or the cohort outputs could not be written
2  bad study, file or arguments (also: an output folder that cannot be written, holds results
   multiscale did not write, or is in use by another run: ``--force`` writes over someone else's results)
3  no dask cluster: the ``--scheduler`` cannot be reached, or the LocalCluster did not start
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multiscale._util import write_text_atomic
from multiscale.errors import MultiscaleError

__all__ = ["main", "build_parser", "example_study_path", "ensure_example_data", "default_example_folder", "StepProgress",
           "ClusterError", "EXIT_OK", "EXIT_FAILED_SUBJECTS", "EXIT_BAD_INPUT", "EXIT_NO_CLUSTER"]

EXIT_OK, EXIT_FAILED_SUBJECTS, EXIT_BAD_INPUT, EXIT_NO_CLUSTER = 0, 1, 2, 3

#: the package's logger: the command's messages go through it (stdout; errors to stderr; ``--log-file``)
LOG = logging.getLogger("multiscale")

#: seconds to wait for a ``--scheduler`` before answering that it cannot be reached
SCHEDULER_TIMEOUT_S = 10.0


class ClusterError(MultiscaleError):
    """No dask cluster to run on: the scheduler cannot be reached, or the LocalCluster did not start."""


def example_study_path() -> Path:
    """The example study's file, ``example_datasets/study.yaml``."""
    import example_datasets

    return Path(example_datasets.__file__).resolve().parent / "study.yaml"


def default_example_folder() -> Path:
    """Where the example study's data go by default.

    ``example_datasets/generated`` in a source checkout (what ``make demo`` uses); for an installed
    package (inside site-packages, or a folder this user may not write) the user data folder
    (``$MULTISCALE_DATA_DIR``, else ``$XDG_DATA_HOME/multiscale/example`` or
    ``~/.local/share/multiscale/example``), so running the demo never writes into the installation.
    """
    env = os.environ.get("MULTISCALE_DATA_DIR")
    if env:
        return Path(env).expanduser() / "example"
    package = example_study_path().parent
    installed = any(part in ("site-packages", "dist-packages") for part in package.parts)
    if not installed and os.access(package, os.W_OK):
        return package / "generated"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "multiscale" / "example"


def ensure_example_data(size: str = "full", seed: int = 0, folder: str | Path | None = None,
                        progress: Any = print) -> Path:
    """Generate the example study's data into ``folder`` (default :func:`default_example_folder`) unless it is there.

    The generator's manifest records the seed and size; data of another size or seed (or
    edited files) are regenerated.
    """
    from example_datasets.generate import generate, study_is_complete

    folder = Path(folder).resolve() if folder else default_example_folder()
    if study_is_complete(folder, seed=seed, size=size):
        return folder
    if progress:
        progress(f"generating the example study ({size}, seed {seed}) into {folder} ...")
    return generate(folder, seed=seed, size=size, overwrite=True)


def example_study_for(data: Path) -> Path:
    """The example study file for data in ``data``: the packaged one, or a copy written beside the data."""
    default = example_study_path()
    if Path(data).resolve() == (default.parent / "generated").resolve():
        return default
    text = default.read_text(encoding="utf-8").replace("generated/", "")
    target = Path(data) / "study.yaml"
    write_text_atomic(target, text)
    return target


#: where the dashboard of our LocalCluster listens unless ``--dashboard-address`` says otherwise:
#: this machine only (a free port), never every network interface
DASHBOARD_ADDRESS = "127.0.0.1:0"


def _client(workers: int | None, scheduler: str | None,
            dashboard_address: str | None = DASHBOARD_ADDRESS) -> tuple[Any, Any]:
    """A dask.distributed client: connected to ``scheduler``, or on a new LocalCluster of ``workers`` processes.

    Raises
    ------
    ClusterError
        The scheduler does not answer within :data:`SCHEDULER_TIMEOUT_S`, or the cluster does not start.
    """
    from distributed import Client

    if scheduler:
        try:
            return Client(scheduler, timeout=SCHEDULER_TIMEOUT_S), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the dask scheduler at {scheduler!r} within {SCHEDULER_TIMEOUT_S:g} s ({exc}); "
                "check that it runs (`dask scheduler`) and the address (tcp://host:8786), or drop --scheduler "
                "to start a LocalCluster") from exc
    n = workers or max(1, min(os.cpu_count() or 1, 4))
    try:
        cluster = local_cluster(n, dashboard_address=dashboard_address)
    except (OSError, TimeoutError, RuntimeError) as exc:
        raise ClusterError(f"the LocalCluster of {n} worker(s) did not start ({exc}); try --workers 0 "
                           "(run in this process) or fewer workers") from exc
    return Client(cluster), cluster


def _dashboard(value: str | None) -> str | None:
    """``--dashboard-address``: ``none``/``off`` disables the dashboard; a bare port listens on 127.0.0.1."""
    if value is None:
        return DASHBOARD_ADDRESS
    if value.strip().lower() in ("none", "off", ""):
        return None
    return f"127.0.0.1:{value}" if value.strip().isdigit() else value.strip()


#: what the scheduler of our LocalCluster assumes for moving data between its workers at first
LOCAL_BANDWIDTH = "1 GB"


def local_cluster(workers: int, dashboard_address: str | None = DASHBOARD_ADDRESS, processes: bool = True) -> Any:
    """The LocalCluster ``multiscale run`` starts: ``workers`` processes of one thread each.

    Its scheduler listens on 127.0.0.1 (LocalCluster's default) and its dashboard on
    ``dashboard_address``: 127.0.0.1 on a free port unless asked otherwise (``"0.0.0.0:8787"``
    shows it to the network; None starts none).

    Its workers share one machine, so data move between them as local copies (about 1 GB/s and
    more), not over a network: the scheduler starts from that figure rather than dask's default
    100 MB/s, which overprices handing a subject's next image task to an idle worker (two
    full-size subjects on two workers: one worker idled 2.3-2.9 s of a 9.8 s run with the default,
    1.1-1.5 s with 1 GB/s). The scheduler refines it from measured transfers as the run goes.

    Examples
    --------
    >>> cluster = local_cluster(2)  # doctest: +SKIP
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.bandwidth": LOCAL_BANDWIDTH}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                            dashboard_address=dashboard_address)


def _step_of(key: Any) -> str:
    """A task key as a step name: ``register-ct_to_mri-s01-<token>`` -> ``register-ct_to_mri-s01``."""
    text = key if isinstance(key, str) else str(key[0] if isinstance(key, tuple) and key else key)
    head, _, tail = text.rpartition("-")
    return head if head and len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else text


class StepProgress:
    """Progress of a run counted in pipeline steps (dask tasks: load, register, resample, analyse, write).

    A tqdm bar on stderr when it is a terminal (none with ``-q``), and one debug line per finished
    step (shown with ``-v``, always in ``--log-file``). In process it is a dask callback
    (:class:`dask.callbacks.Callback`); on dask.distributed a scheduler plugin counts the steps' transitions
    and a thread polls it twice a second.
    """

    def __init__(self, show_bar: bool = True) -> None:
        self.total = 0
        self.done = 0
        self._bar = None
        if show_bar and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=0, unit="step", desc="steps", file=sys.stderr, leave=False)

    def add(self, n: int) -> None:
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def finished(self, step: str, seconds: float | None = None, failed: bool = False) -> None:
        self.done += 1
        took = f" in {seconds:.2f} s" if seconds is not None else ""
        LOG.debug("step %s %s%s [%d/%d]", step, "FAILED" if failed else "done", took, self.done,
                  max(self.total, self.done))
        if self._bar is not None:
            self._bar.set_postfix_str(step, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def local(self) -> Any:
        """A dask callback (context manager) reporting the steps of synchronous computes."""
        from dask.callbacks import Callback

        progress = self
        started: dict[Any, float] = {}

        class _Steps(Callback):
            def _start_state(self, dsk: Any, state: Any) -> None:
                progress.add(len(state.get("ready", ())) + len(state.get("waiting", {})))

            def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
                started[key] = time.perf_counter()

            def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
                progress.finished(_step_of(key), time.perf_counter() - started.pop(key, time.perf_counter()))

        return _Steps()

    def watch(self, client: Any) -> Any:
        """Follow the steps on a dask.distributed scheduler; returns a function that stops following."""
        try:
            client.register_plugin(_StepCounter(), name=_StepCounter.name)
        except Exception as exc:  # noqa: BLE001 - progress must never stop a run
            LOG.debug("no step progress from the scheduler: %s", exc)
            return lambda: None
        stop = threading.Event()
        seen_done: set = set()

        def poll() -> None:
            while True:
                last = stop.wait(0.5)
                try:
                    total, done = client.run_on_scheduler(_step_counts)
                except Exception:  # noqa: BLE001 - the scheduler went away: the run reports it
                    return
                if total > self.total:
                    self.add(total - self.total)
                for key, failed in done:
                    if key not in seen_done:
                        seen_done.add(key)
                        self.finished(_step_of(key), failed=failed)
                if last:
                    return

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)

        return halt


def _step_counts(dask_scheduler: Any = None) -> tuple[int, list]:
    """(tasks seen, [(key, failed), ...] finished) from the :class:`_StepCounter` on the scheduler."""
    plugin = dask_scheduler.plugins.get(_StepCounter.name)
    if plugin is None:
        return 0, []
    return len(plugin.seen), list(plugin.done.items())


try:  # a scheduler plugin exists wherever dask.distributed is installed (a dependency)
    from distributed.diagnostics.plugin import SchedulerPlugin as _SchedulerPlugin
except ImportError:  # pragma: no cover
    _SchedulerPlugin = object  # type: ignore[assignment,misc]


class _StepCounter(_SchedulerPlugin):  # type: ignore[misc,valid-type]
    """Scheduler plugin: every task key it saw and those that finished (in memory or erred)."""

    name = "multiscale-step-progress"

    def __init__(self) -> None:
        self.seen: set = set()
        self.done: dict = {}

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        self.seen.add(key)
        if finish in ("memory", "erred") and key not in self.done:
            self.done[key] = finish == "erred"


def _error(message: str) -> None:
    LOG.error("error: %s", message)


def _run(study_path: Path, output: str | None, workers: int | None, scheduler: str | None,
         subjects: Sequence[str] | None, resume: bool, in_process: bool = False, force: bool = False,
         dashboard_address: str | None = DASHBOARD_ADDRESS) -> int:
    from multiscale.pipeline.runner import run_study
    from multiscale.pipeline.study import StudyError, load_study

    try:
        study = load_study(study_path)
        if subjects:
            study.select(list(subjects))
    except StudyError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    client = cluster = None
    if resume and not in_process:
        from multiscale.pipeline.outputs import subject_is_complete

        out = Path(output).expanduser().resolve() if output else study.output
        if all(subject_is_complete(study, s, out) for s in study.select(list(subjects) if subjects else None)):
            in_process = True  # nothing to compute: no cluster needed
    if not in_process:
        try:
            client, cluster = _client(workers, scheduler, dashboard_address)
        except ClusterError as exc:
            _error(str(exc))
            return EXIT_NO_CLUSTER
        where = scheduler or f"LocalCluster with {len(client.scheduler_info()['workers'])} worker process(es)"
        dash = client.dashboard_link if (scheduler or dashboard_address) else "off"
        LOG.info(f"dask.distributed: {where}; dashboard {dash}")
    steps = StepProgress(show_bar=LOG.getEffectiveLevel() <= logging.INFO)
    halt = steps.watch(client) if client is not None else None
    callback = steps.local() if client is None else None
    try:
        if callback is not None:
            with callback:
                run = run_study(study, output=output, client=client, subjects=subjects, resume=resume, force=force,
                                progress=LOG.info)
        else:
            run = run_study(study, output=output, client=client, subjects=subjects, resume=resume, force=force,
                            progress=LOG.info)
    except StudyError as exc:  # the output folder: not writable, someone else's, or in use
        _error(str(exc))
        return EXIT_BAD_INPUT
    except OSError as exc:  # writing the cohort outputs (disk full, read-only)
        _error("\n".join([str(exc)] + list(getattr(exc, "__notes__", []))))
        return EXIT_FAILED_SUBJECTS
    finally:
        if halt is not None:
            halt()
        steps.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return EXIT_OK if run.ok else EXIT_FAILED_SUBJECTS


def _cmd_run(args: argparse.Namespace) -> int:
    return _run(Path(args.study), args.output, args.workers, args.scheduler, args.subjects, args.resume,
                in_process=args.workers == 0, force=args.force, dashboard_address=_dashboard(args.dashboard_address))


def _cmd_validate(args: argparse.Namespace) -> int:
    from multiscale.pipeline.graph import chain_to_reference, references_of
    from multiscale.pipeline.study import StudyError, check_channels, load_study

    try:
        study = load_study(args.study, check_files=True)
        check_channels(study)
    except StudyError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    print(f"{study.path}: valid study {study.name!r}")
    print(f"  output: {study.output}")
    for s in study.subjects:
        chains = []
        for k in s.images:
            chain = chain_to_reference(s, k)
            if chain:
                chains.append(" -> ".join([k] + [e.fixed_image for e in chain]) + f" ({'+'.join(e.method for e in chain)})")
        print(f"  subject {s.id}: {len(s.images)} images, {len(s.masks)} masks; reference "
              f"{', '.join(references_of(s))}; " + ("; ".join(chains) if chains else "no registration"))
        for link in s.sections:
            where = f"z {link.z_mm:g} mm" if link.z_mm is not None else f"slice {link.index}"
            print(f"    section {link.section} placed in the frame of {link.volume} (around {where}, "
                  f"+-{link.search_mm:g} mm): its maps also appear on the section as <name>@{link.section_image}")
    if study.design:
        print(f"  design: covariates {', '.join(study.design.covariates) or '(none)'}; outcomes "
              f"{', '.join(study.design.outcomes) or '(none)'} ({study.design.source})")
    for a in study.analyses:
        what = ", ".join(f"{x} ~ {y}" for x, y in a.pairs) if a.pairs else ", ".join(a.maps)
        print(f"  analysis {a.name} ({a.type}): {what}" + (f" in {', '.join(a.masks)}" if a.masks else ""))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        data = ensure_example_data(args.size, args.seed, args.data, progress=LOG.info)
    except ImportError as exc:  # pyimzML, in the 'example' extra
        _error(str(exc))
        return EXIT_BAD_INPUT
    output = args.output or "demo_output"
    code = _run(example_study_for(data), output, args.workers or None, None, None, False,
                in_process=not args.workers, force=args.force, dashboard_address=_dashboard(args.dashboard_address))
    cohort = Path(data) / "cohort" / "cohort.yaml"
    if code == EXIT_OK and cohort.is_file():  # the designed cohort (two groups of mice): its own study
        LOG.info("\nthe example cohort (3 control, 3 treated mice): group statistics in its report")
        code = _run(cohort, str(Path(output) / "cohort"), args.workers or None, None, None, False,
                    in_process=not args.workers, force=args.force,
                    dashboard_address=_dashboard(args.dashboard_address))
    report = Path(output).resolve() / "report.html"
    if report.is_file():
        LOG.info(f"\nOpen the report: {report}")
        if (Path(output).resolve() / "cohort" / "report.html").is_file():
            LOG.info(f"The cohort's report: {Path(output).resolve() / 'cohort' / 'report.html'}")
    return code


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and numpy scalars as Python numbers (for ``info --json``)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _cmd_info(args: argparse.Namespace) -> int:
    from multiscale.io import info

    described = []
    for path in args.files:
        try:
            d = info.describe(path)
        except (OSError, ValueError) as exc:
            _error(f"{path}: {exc}")
            return EXIT_BAD_INPUT
        if args.json:
            described.append(_jsonable(d))
        else:
            print(info.format_info(d))
    if args.json:
        print(json.dumps(described if len(described) > 1 else described[0], indent=2))
    return EXIT_OK


def _cmd_features(args: argparse.Namespace) -> int:
    from multiscale.analysis.texture import pyradiomics as pr
    from multiscale.errors import MultiscaleError
    from multiscale.io import load

    try:
        params = pr.read_params(args.params) if args.params else pr.read_params({})
        if args.label is not None:
            params = params.with_label(args.label)
        image = load(args.image)
        mask = load(args.mask, reference=image)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = pr.pyradiomics_features(image, mask, params)
        for w in caught:
            LOG.warning(f"warning: {w.message}")
    except (OSError, ValueError, MultiscaleError) as exc:
        _error("\n".join([str(exc)] + list(getattr(exc, "__notes__", []))))
        return EXIT_BAD_INPUT
    if args.output:
        out = Path(args.output)
        (table.to_parquet if out.suffix == ".parquet" else table.to_csv)(out, index=False)
        LOG.info(f"{len(table)} features -> {out}")
    else:
        table.to_csv(sys.stdout, index=False)
    return EXIT_OK


def _cmd_view(args: argparse.Namespace) -> int:
    from multiscale.viewer import view

    try:
        view(*args.paths)
    except (ImportError, OSError) as exc:  # napari missing; a path that is not there or holds no map
        _error(str(exc))
        return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_stats(args: argparse.Namespace) -> int:
    from multiscale.pipeline.stats_command import stats_command

    return stats_command(args)


def _workers(text: str) -> int:
    """``--workers``: 0 (in this process) or a positive number of worker processes."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of worker processes") from None
    if n < 0:
        raise argparse.ArgumentTypeError(
            f"{n}: give 0 (run in this process) or a positive number of worker processes, e.g. --workers 2")
    return n


_DASHBOARD_HELP = ("where the LocalCluster's dask dashboard listens (default 127.0.0.1 on a free port: this "
                   "machine only; e.g. 0.0.0.0:8787 to show it to the network, a bare port for 127.0.0.1:PORT, "
                   "'none' for no dashboard)")
_FORCE_HELP = ("write into an output folder that holds results.csv, report.html or provenance.json not written "
               "by multiscale (refused otherwise)")


def _version() -> str:
    """The installed distribution's version (``importlib.metadata``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("multiscale")
    except PackageNotFoundError:  # pragma: no cover - a source tree on sys.path, not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``multiscale`` command."""
    p = argparse.ArgumentParser(prog="multiscale", description="Multiscale spatial imaging of nanomedicine.",
                                epilog="exit codes: 0 success; 1 some subjects failed; 2 bad study, file or "
                                       "arguments; 3 no dask cluster (scheduler unreachable, LocalCluster did not start)")
    p.add_argument("--version", action="version", version=f"multiscale {_version()}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more detail: one line per finished step")
    p.add_argument("-q", "--quiet", action="count", default=0, help="errors and warnings only")
    p.add_argument("--log-file", default=None, metavar="PATH", help="also write every message, with times, to PATH")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="generate the example study if absent and run it")
    d.add_argument("--output", "-o", default=None, help="output folder (default: demo_output)")
    d.add_argument("--size", choices=("small", "full"), default="full", help="example size (small: for tests)")
    d.add_argument("--seed", type=int, default=0, help="seed of the example generator")
    d.add_argument("--data", default=None,
                   help="folder for the generated example data (default: example_datasets/generated)")
    d.add_argument("--workers", type=_workers, default=0,
                   help="run on a LocalCluster with this many workers (default: in this process)")
    d.add_argument("--dashboard-address", default=None, metavar="ADDR", help=_DASHBOARD_HELP)
    d.add_argument("--force", action="store_true", help=_FORCE_HELP)
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="run a study file")
    r.add_argument("study", help="the study's YAML file")
    r.add_argument("--output", "-o", default=None, help="output folder (default: the study's 'output')")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--workers", type=_workers, default=None,
                   help="LocalCluster worker processes (default: min(CPUs, 4); 0 runs in this process)")
    g.add_argument("--scheduler", default=None, help="address of an existing dask scheduler, e.g. tcp://host:8786")
    r.add_argument("--subjects", nargs="+", default=None, metavar="ID", help="run only these subjects")
    r.add_argument("--resume", action="store_true", help="skip subjects whose outputs are complete")
    r.add_argument("--dashboard-address", default=None, metavar="ADDR", help=_DASHBOARD_HELP)
    r.add_argument("--force", action="store_true", help=_FORCE_HELP)
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="check a study file without running it")
    v.add_argument("study")
    v.set_defaults(func=_cmd_validate)

    i = sub.add_parser("info", help="describe image files (geometry, units, channels)")
    i.add_argument("files", nargs="+")
    i.add_argument("--json", action="store_true", help="print the description as JSON (a list for several files)")
    i.set_defaults(func=_cmd_info)

    f = sub.add_parser("features", help="IBSI texture features of an image in a mask (pyradiomics parameter files "
                                        "accepted)")
    f.add_argument("image", help="the image file (any format multiscale reads)")
    f.add_argument("mask", help="the mask on the image's grid (label image, NIfTI, NRRD, DICOM SEG/RTSTRUCT...)")
    f.add_argument("--params", default=None, metavar="YAML",
                   help="a pyradiomics parameter file (setting:, featureClass:, imageType: Original)")
    f.add_argument("--label", type=int, default=None, help="the mask value of the region (pyradiomics' label)")
    f.add_argument("--output", "-o", default=None, help="write the table here (.csv or .parquet; default: stdout)")
    f.set_defaults(func=_cmd_features)

    w = sub.add_parser("view", help="open output maps (OME-Zarr) in napari; needs the [viewer] extra")
    w.add_argument("paths", nargs="+")
    w.set_defaults(func=_cmd_view)

    from multiscale.pipeline.stats_command import add_stats_arguments

    st = sub.add_parser("stats", help="statistics of a run's results: groups (--by), outcome, Cox (multiscale.stats)")
    add_stats_arguments(st).set_defaults(func=_cmd_stats)
    return p


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def _logging(verbose: int, quiet: int, log_file: str | None) -> list[tuple[logging.Logger, logging.Handler]]:
    """Handlers for the command's messages: info (and debug with -v; nothing with -q) to stdout, warnings and
    errors to stderr, everything to ``log_file``. Returns what to remove when the command ends."""
    level = logging.WARNING if quiet > verbose else logging.DEBUG if verbose > quiet else logging.INFO
    out = logging.StreamHandler(sys.stdout)
    out.setLevel(level)
    out.addFilter(_Below(logging.WARNING))
    out.setFormatter(logging.Formatter("%(message)s"))
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    err.setFormatter(logging.Formatter("%(message)s"))
    added = [(LOG, out), (LOG, err)]
    if log_file:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        added += [(LOG, fh), (logging.getLogger("py.warnings"), fh), (logging.getLogger("distributed"), fh)]
    LOG.setLevel(logging.DEBUG if log_file else level)
    LOG.propagate = False
    for logger, handler in added:
        logger.addHandler(handler)
    return added


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``multiscale`` console script; returns the exit code (see the module's docstring).

    Examples
    --------
    >>> main(["validate", "example_datasets/study.yaml"])  # doctest: +SKIP
    0
    """
    args = build_parser().parse_args(argv)
    try:
        added = _logging(args.verbose, args.quiet, args.log_file)
    except OSError as exc:
        print(f"error: --log-file {args.log_file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    capture = bool(args.log_file)
    if capture:
        logging.captureWarnings(True)
    try:
        LOG.debug("multiscale %s", " ".join(argv if argv is not None else sys.argv[1:]))
        return int(args.func(args) or 0)
    finally:
        if capture:
            logging.captureWarnings(False)
        for logger, handler in added:
            logger.removeHandler(handler)
            handler.close()
        LOG.propagate = True


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
