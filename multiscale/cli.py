"""The ``multiscale`` command: a thin layer over the library.

Subcommands
-----------
demo      generate the example study if absent and run it (what ``make demo`` runs)
run       run a study file on dask.distributed (LocalCluster by default, or ``--scheduler``)
validate  check a study file without running it
info      describe an image file (geometry, units, channels)
view      open output OME-Zarr maps in napari (extra ``[viewer]``)

Exit codes: 0 success, 1 some subjects failed (the others completed), 2 bad study or arguments (an
output folder that cannot be written, holds results multiscale did not write, or is in use by
another run: ``--force`` writes over someone else's results).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multiscale._util import write_text_atomic

__all__ = ["main", "build_parser", "example_study_path", "ensure_example_data", "default_example_folder"]

EXIT_OK, EXIT_FAILED_SUBJECTS, EXIT_BAD_INPUT = 0, 1, 2


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
    """A dask.distributed client: connected to ``scheduler``, or on a new LocalCluster of ``workers`` processes."""
    from distributed import Client

    if scheduler:
        return Client(scheduler), None
    n = workers or max(1, min(os.cpu_count() or 1, 4))
    cluster = local_cluster(n, dashboard_address=dashboard_address)
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
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    client = cluster = None
    if resume and not in_process:
        from multiscale.pipeline.outputs import subject_is_complete

        out = Path(output).expanduser().resolve() if output else study.output
        if all(subject_is_complete(study, s, out) for s in study.select(list(subjects) if subjects else None)):
            in_process = True  # nothing to compute: no cluster needed
    if not in_process:
        client, cluster = _client(workers, scheduler, dashboard_address)
        where = scheduler or f"LocalCluster with {len(client.scheduler_info()['workers'])} worker process(es)"
        dash = client.dashboard_link if (scheduler or dashboard_address) else "off"
        print(f"dask.distributed: {where}; dashboard {dash}")
    try:
        run = run_study(study, output=output, client=client, subjects=subjects, resume=resume, force=force)
    except StudyError as exc:  # the output folder: not writable, someone else's, or in use
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # writing the cohort outputs (disk full, read-only)
        print("error: " + "\n".join([str(exc)] + list(getattr(exc, "__notes__", []))), file=sys.stderr)
        return EXIT_FAILED_SUBJECTS
    finally:
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
        print(f"error: {exc}", file=sys.stderr)
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
    for a in study.analyses:
        what = ", ".join(f"{x} ~ {y}" for x, y in a.pairs) if a.pairs else ", ".join(a.maps)
        print(f"  analysis {a.name} ({a.type}): {what}" + (f" in {', '.join(a.masks)}" if a.masks else ""))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    data = ensure_example_data(args.size, args.seed, args.data)
    output = args.output or "demo_output"
    code = _run(example_study_for(data), output, args.workers or None, None, None, False,
                in_process=not args.workers, force=args.force, dashboard_address=_dashboard(args.dashboard_address))
    report = Path(output).resolve() / "report.html"
    if report.is_file():
        print(f"\nOpen the report: {report}")
    return code


def _cmd_info(args: argparse.Namespace) -> int:
    from multiscale.io import info

    for path in args.files:
        try:
            print(info.format_info(info.describe(path)))
        except (OSError, ValueError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_view(args: argparse.Namespace) -> int:
    from multiscale.viewer import view

    try:
        view(*args.paths)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


_DASHBOARD_HELP = ("where the LocalCluster's dask dashboard listens (default 127.0.0.1 on a free port: this "
                   "machine only; e.g. 0.0.0.0:8787 to show it to the network, a bare port for 127.0.0.1:PORT, "
                   "'none' for no dashboard)")
_FORCE_HELP = ("write into an output folder that holds results.csv, report.html or provenance.json not written "
               "by multiscale (refused otherwise)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``multiscale`` command."""
    p = argparse.ArgumentParser(prog="multiscale", description="Multiscale spatial imaging of nanomedicine.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="generate the example study if absent and run it")
    d.add_argument("--output", "-o", default=None, help="output folder (default: demo_output)")
    d.add_argument("--size", choices=("small", "full"), default="full", help="example size (small: for tests)")
    d.add_argument("--seed", type=int, default=0, help="seed of the example generator")
    d.add_argument("--data", default=None,
                   help="folder for the generated example data (default: example_datasets/generated)")
    d.add_argument("--workers", type=int, default=0,
                   help="run on a LocalCluster with this many workers (default: in this process)")
    d.add_argument("--dashboard-address", default=None, metavar="ADDR", help=_DASHBOARD_HELP)
    d.add_argument("--force", action="store_true", help=_FORCE_HELP)
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="run a study file")
    r.add_argument("study", help="the study's YAML file")
    r.add_argument("--output", "-o", default=None, help="output folder (default: the study's 'output')")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None,
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
    i.set_defaults(func=_cmd_info)

    w = sub.add_parser("view", help="open output maps (OME-Zarr) in napari; needs the [viewer] extra")
    w.add_argument("paths", nargs="+")
    w.set_defaults(func=_cmd_view)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``multiscale`` console script; returns the exit code.

    Examples
    --------
    >>> main(["validate", "example_datasets/study.yaml"])  # doctest: +SKIP
    0
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
