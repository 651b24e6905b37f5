"""A subject as a dask task graph: which step feeds which, named after the step.

:func:`subject_graph` builds one ``dask.delayed`` graph per subject whose nodes are named after
their step (``load-mri-mouse01``, ``register-pet_to_mri-mouse01``, ...). Every node returns its
value with the wall time of each step so far; the final node writes the subject's outputs
(:mod:`.outputs`). The steps themselves are in :mod:`.steps`.

Nothing here creates a dask Client: the graph runs on whatever scheduler computes it
(:mod:`multiscale.pipeline.runner`). Inside a step, dask collections are computed with the
synchronous scheduler so a worker's memory does not depend on the number of subjects.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .graph import chain_to_reference, frames_of, linked_names, mask_frames, references_of
from .outputs import frame_maps_step, remove_staging, write_subject_step
from .provenance import input_checksums
from .spec import Study, SubjectSpec, parse_map_name
from .steps import (
    analysis_figures_step,
    analysis_step,
    grid_step,
    load_image_step,
    load_mask_step,
    place_section_step,
    register_step,
    registration_figures_step,
    resample_sample_step,
    resample_step,
)

__all__ = ["StepOutput", "subject_graph", "run_subject", "format_error"]

_INNER_SCHEDULER = "sync"


@dataclass
class StepOutput:
    """A step's value and the wall time (s) of every step it depends on, by step name."""

    value: Any
    timings: dict[str, float] = field(default_factory=dict)


def _register_sizeof() -> None:
    """Tell dask how big a step's output is (its value's size, images included).

    Without it dask sizes a ``StepOutput`` as the bare object (56 bytes), so the scheduler would
    place tasks without regard to where their images are, and a worker's memory accounting
    (spilling, limits) would not see them.
    """
    try:
        from dask.sizeof import sizeof
    except ImportError:  # pragma: no cover - dask is a core dependency
        return

    @sizeof.register(StepOutput)
    def _sizeof_step(out: StepOutput) -> int:
        return int(sizeof(out.value)) + int(sizeof(out.timings))


_register_sizeof()


def _unwrap(obj: Any, timings: dict[str, float]) -> Any:
    if isinstance(obj, StepOutput):
        timings.update(obj.timings)
        return obj.value
    if isinstance(obj, list):
        return [_unwrap(o, timings) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_unwrap(o, timings) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, timings) for k, v in obj.items()}
    return obj


_THREADS_LIMITED = False


def _limit_threads_on_worker() -> None:
    """On a dask worker, let SimpleITK use the worker's threads only (once per process).

    Without this each worker's registrations and resamplings use every core, so k workers on k
    cores oversubscribe the machine k-fold; one subject per worker thread is the parallelism.
    """
    global _THREADS_LIMITED
    if _THREADS_LIMITED:
        return
    _THREADS_LIMITED = True
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(getattr(worker, "nthreads", 1) or 1)))


def _step(name: str, fn: Any, *args: Any, **kwargs: Any) -> StepOutput:
    import dask

    _limit_threads_on_worker()
    timings: dict[str, float] = {}
    args = _unwrap(list(args), timings)
    kwargs = _unwrap(dict(kwargs), timings)
    t0 = time.perf_counter()
    with dask.config.set(scheduler=_INNER_SCHEDULER):
        value = fn(*args, **kwargs)
    timings[name] = time.perf_counter() - t0
    return StepOutput(value, timings)



def subject_graph(study: Study, subject: SubjectSpec, output: Path, token: str = "") -> Any:
    """The subject's ``dask.delayed`` task graph; computing it writes the outputs and returns a summary.

    Examples
    --------
    >>> g = subject_graph(study, study.subjects[0], Path("out"))  # doctest: +SKIP
    >>> g.compute(scheduler="sync")["rows"]  # doctest: +SKIP
    42
    """
    from dask import delayed

    sid = subject.id

    suffix = f"-{sid}" + (f"-{token}" if token else "")

    def node(name: str, fn: Any, *args: Any) -> Any:
        return delayed(_step, pure=False)(name, fn, *args, dask_key_name=f"{name}{suffix}")

    images = {k: node(f"load-{k}", load_image_step, spec) for k, spec in subject.images.items()}
    # a mask is read on the grid of the image it is drawn on (refused if it differs, unless resample: true)
    masks_raw = {k: node(f"load-mask-{k}", load_mask_step, spec, images[spec.on]) for k, spec in subject.masks.items()}
    regs = {e.name: node(f"register-{e.name}", register_step, e, images[e.fixed_image], images[e.moving_image],
                         {k: masks_raw[k] for k, spec in subject.masks.items() if spec.on == e.fixed_image})
            for e in subject.edges}
    frame_of = frames_of(subject)
    # each reference frame's grid: the reference image's own, or a coarser analysis grid
    grid = {r: images[r] for r in references_of(subject)}
    smooth = {r: None for r in grid}
    for r, g in subject.grids.items():
        grid[r] = node(f"grid-{r}", grid_step, images[r], g["spacing"], r)
        smooth[r] = g["spacing"] if g.get("smooth", True) else None
    maps: dict[str, Any] = {}
    masks: dict[str, Any] = {}
    # how each map and mask reaches its frame: (source, grid, registrations of its chain, interpolation, smoothing)
    recipe: dict[str, tuple] = {}
    for k in subject.images:
        chain = chain_to_reference(subject, k)
        r = frame_of[k]
        if not chain and r not in subject.grids:
            maps[k] = images[k]
        else:
            recipe[k] = (images[k], grid[r], [e.name for e in chain], "linear", smooth[r])
            maps[k] = node(f"resample-{k}", resample_step, images[k], grid[r],
                           [regs[e.name] for e in chain], "linear", smooth[r])
    for k, spec in subject.masks.items():
        chain = chain_to_reference(subject, spec.on)
        recipe[k] = (masks_raw[k], grid[frame_of[spec.on]], [e.name for e in chain], "nearest", None)
        masks[k] = node(f"resample-mask-{k}", resample_step, masks_raw[k], grid[frame_of[spec.on]],
                        [regs[e.name] for e in chain], "nearest")
    # a section placed in a volume: the volume frame's maps and masks, resampled once onto the section's plane
    for link in subject.sections:
        volume = parse_map_name(link.volume)[0]
        volume_input = masks[volume] if volume in masks else maps[volume]
        regs[link.name] = node(f"place-{link.name}", place_section_step, link, images[link.section_image],
                               volume_input)
    for name, (kind, source, section_frame) in linked_names(subject).items():
        link = next(x for x in subject.sections if x.section_image == section_frame)
        if kind == "map":
            chain = [e.name for e in chain_to_reference(subject, source)] + [link.name]
            recipe[name] = (images[source], grid[section_frame], chain, "linear", smooth[section_frame])
            maps[name] = node(f"resample-{name}", resample_step, images[source], grid[section_frame],
                              [regs[c] for c in chain], "linear", smooth[section_frame])
        else:
            on = subject.masks[source].on
            chain = [e.name for e in chain_to_reference(subject, on)] + [link.name]
            recipe[name] = (masks_raw[source], grid[section_frame], chain, "nearest", None)
            masks[name] = node(f"resample-mask-{name}", resample_step, masks_raw[source], grid[section_frame],
                               [regs[c] for c in chain], "nearest")
    # registrations that draw transforms around their result (``uncertainty: n``)
    sampled = {e.name: e.uncertainty for e in subject.edges if e.uncertainty}
    sampled.update({x.name: x.uncertainty for x in subject.sections if x.uncertainty})
    alt_cache: dict[tuple[str, int], Any] = {}

    def alternative(name: str, k: int, default: Any) -> Any:
        """``name`` resampled under the k-th transform sample of every sampled registration of its chain."""
        if name not in recipe or not any(c in sampled for c in recipe[name][2]):
            return default
        if (name, k) not in alt_cache:
            source, grid_node, chain, interp, smooth_to = recipe[name]
            alt_cache[(name, k)] = node(f"resample-sample{k}-{name}", resample_sample_step, source, grid_node,
                                        [regs[c] for c in chain], k, interp, smooth_to)
        return alt_cache[(name, k)]

    results = []
    for a in study.analyses:
        needed = {parse_map_name(n)[0] for n in list(a.maps) + [m for p in a.pairs for m in p]
                  + [n for n in a.inputs.values() if n not in masks]}
        used_masks = set(a.masks) | {n for n in a.inputs.values() if n in masks}
        alternatives = None
        affected = [n for n in needed | used_masks if n in recipe and any(c in sampled for c in recipe[n][2])]
        if a.uncertainty and affected:
            n_samples = max(sampled[c] for n in affected for c in recipe[n][2] if c in sampled)
            alternatives = [({k: alternative(k, j, maps[k]) for k in needed},
                             {k: alternative(k, j, masks[k]) for k in used_masks}) for j in range(n_samples)]
        results.append(node(f"analysis-{a.name}", analysis_step, sid, a, {k: maps[k] for k in needed},
                            {k: masks[k] for k in used_masks}, alternatives))
    # figures in tasks of their own (one per reference frame, registration and analysis), so that
    # the workers share a subject's figures instead of one worker drawing them all at its end
    # a frame's tasks get that frame's maps and masks only (fewer images to move between workers)
    maps_in = {r: {k: m for k, m in maps.items() if frame_of[k] == r} for r in references_of(subject)}
    mask_frame = mask_frames(subject)
    masks_in = {r: {k: m for k, m in masks.items() if mask_frame[k] == r} for r in references_of(subject)}
    fmt = study.figure_formats
    figures = [node(f"figures-overlay-{r}", registration_figures_step, subject, maps_in[r], masks_in[r], {}, [r], fmt)
               for r in references_of(subject)]
    figures += [node(f"figures-registration-{name}", registration_figures_step, subject, {}, {},
                     {name: regs[name]}, [], fmt)
                for name in [e.name for e in subject.edges] + [x.name for x in subject.sections]]
    figures += [node(f"figures-{a.name}", analysis_figures_step, r, fmt) for a, r in zip(study.analyses, results)]
    # and each reference frame's OME-Zarr, in a staging folder that the write step moves in
    stores = {r: node(f"maps-{r}", frame_maps_step, subject, r, maps_in[r], masks_in[r], results, Path(output),
                      token or "run")
              for r in references_of(subject)}
    return delayed(_final, pure=False)(
        study, subject, Path(output), maps, masks, regs, results, figures, stores, dask_key_name=f"write{suffix}")



def _final(study: Study, subject: SubjectSpec, output: Path, maps: dict, masks: dict, regs: dict,
           results: list, figures: list | None = None, stores: dict | None = None) -> dict[str, Any]:
    import dask

    t0 = time.perf_counter()
    inputs = input_checksums(subject.input_files())  # on the worker, in parallel across subjects
    timings: dict[str, float] = {"checksum-inputs": time.perf_counter() - t0}
    maps, masks, regs, results, figures, stores = _unwrap([maps, masks, regs, results, figures, stores], timings)
    merged = None
    if figures is not None:
        merged = {}
        for f in figures:
            merged.update(f)
    timings = {f"{k}": v for k, v in timings.items()}
    with dask.config.set(scheduler=_INNER_SCHEDULER):
        return write_subject_step(study, subject, output, maps, masks, regs, results, timings, inputs, merged, stores)


def run_subject(study: Study, subject: SubjectSpec, output: Path) -> dict[str, Any]:
    """Run one subject in this process (synchronous scheduler) and return its summary.

    Raises whatever the failing step raised, with the step's traceback.
    """
    try:
        return subject_graph(study, subject, output, "run").compute(scheduler="sync")
    except BaseException:
        remove_staging(output, subject.id, "run")
        raise


def format_error(exc: BaseException, tb: Any = None) -> str:
    """``Type: message`` plus the last frames of the traceback, for reports."""
    lines = traceback.format_exception(type(exc), exc, tb if tb is not None else exc.__traceback__)
    return "".join(lines[-6:]).strip()
