"""What a study file says, parsed: images, masks, registration edges, subjects, analyses.

Plain frozen dataclasses, shared by the study parser (:mod:`.study`), the registration graph
(:mod:`.graph`) and the steps; nothing here reads files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multiscale._util import jsonable
from multiscale.errors import StudyError
from multiscale.io import companions

__all__ = [
    "ImageSpec",
    "MaskSpec",
    "EdgeSpec",
    "SubjectSpec",
    "SectionSpec",
    "AnalysisSpec",
    "Design",
    "Study",
    "parse_map_name",
]


@dataclass(frozen=True)
class ImageSpec:
    """One image of a subject: where it is and what it shows."""

    key: str
    path: Path
    modality: str
    aspect: str = ""
    agent: str = ""
    units: str = ""
    scale: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    #: motion correction of a time series (``motion:`` in the study): keyword arguments of
    #: :func:`multiscale.registration.motion.motion_correct` (``reference``, ``transform``, ``metric``); empty: none
    motion: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`multiscale.io.load` (targets become ``channels=[...]``: m/z values for MSI)."""
        opts = dict(self.options)
        if self.targets:
            opts["channels"] = [float(v) for v in self.targets.values()]
        return opts


@dataclass(frozen=True)
class MaskSpec:
    """A mask (label image) defined on the grid of image ``on``; ``label`` picks one label value.

    The mask must sit on ``on``'s grid (shape, spacing, origin, direction); ``resample`` allows
    a different grid, resampled onto ``on``'s with nearest neighbour.
    """

    key: str
    path: Path
    on: str
    label: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    resample: bool = False
    #: a label image: one region per label value (``<name>#<label>`` in the results), e.g. lesions
    labels: bool = False


@dataclass(frozen=True)
class EdgeSpec:
    """A registration edge: ``moving`` is registered to ``fixed`` (maps given as ``image[:channel]``).

    ``truth`` optionally points to a ground-truth transform (``file`` JSON, ``key``) that the
    report compares with the recovered one. ``landmarks`` optionally names two CSV files of
    corresponding points (columns ``x, y[, z]`` in mm, world frame, one row per landmark, same
    order): the target registration error is reported, and with ``use: true`` the landmarks also
    initialise and check the registration. ``uncertainty: n`` draws ``n`` transforms around the result
    (:func:`multiscale.registration.uncertainty.transform_samples`): the edge gets a TRE estimate in mm,
    and analyses with ``uncertainty: true`` report the range of each metric under those transforms.
    """

    moving: str
    fixed: str
    method: str = "rigid"
    options: dict[str, Any] = field(default_factory=dict)
    transform: Path | None = None
    truth: tuple[Path, str] | None = None
    landmarks: tuple[Path, Path] | None = None
    use_landmarks: bool = False
    line: int = 0
    uncertainty: int = 0

    @property
    def moving_image(self) -> str:
        """The moving image's key (without channel)."""
        return parse_map_name(self.moving)[0]

    @property
    def fixed_image(self) -> str:
        """The fixed image's key (without channel)."""
        return parse_map_name(self.fixed)[0]

    @property
    def name(self) -> str:
        """``moving_to_fixed``, used for transform file names."""
        return f"{self.moving_image}_to_{self.fixed_image}"


@dataclass(frozen=True)
class SectionSpec:
    """A 2-D section placed in a 3-D volume: links the section's reference frame to the volume's.

    ``section`` is a map of the 2-D frame's reference image (``fluorescence:vessels``) and ``volume``
    a map or mask of the 3-D frame (``vessel_mask``) that show the same structure; the section's pose
    is searched around the height ``z_mm`` (or the volume's z ``index``) within ``search_mm``. Every
    map and mask of the volume's frame then also appears in the section's frame, resampled on the
    section's plane, as ``<name>@<section frame>`` (``pet@fluorescence``), so 3-D maps and section maps
    meet in one frame while the volume's own frame keeps its 3-D analyses.
    """

    section: str
    volume: str
    z_mm: float | None = None
    index: int | None = None
    search_mm: float = 1.0
    step_mm: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    truth: tuple[Path, str] | None = None
    line: int = 0
    uncertainty: int = 0

    @property
    def section_image(self) -> str:
        """The section's image key (without channel)."""
        return parse_map_name(self.section)[0]

    @property
    def name(self) -> str:
        """``<volume>_in_<section image>``, used for the transform file and the report."""
        return f"{parse_map_name(self.volume)[0]}_in_{self.section_image}"


@dataclass(frozen=True)
class SubjectSpec:
    """One subject with its images, masks, registration edges and reference frames."""

    id: str
    images: dict[str, ImageSpec]
    masks: dict[str, MaskSpec]
    edges: tuple[EdgeSpec, ...]
    references: tuple[str, ...]
    line: int = 0
    grids: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: tuple[SectionSpec, ...] = ()

    def input_files(self) -> list[Path]:
        """Every file this subject reads (images, masks, their companion files, transforms, ground truth)."""
        files: list[Path] = []
        for spec in list(self.images.values()) + list(self.masks.values()):
            files.append(spec.path)
            files.extend(companions(spec.path))
        for e in self.edges:
            if e.transform is not None:
                files.append(e.transform)
            if e.truth is not None:
                files.append(e.truth[0])
            if e.landmarks is not None:
                files.extend(e.landmarks)
        files += [link.truth[0] for link in self.sections if link.truth is not None]
        seen: list[Path] = []
        for f in files:
            if f not in seen:
                seen.append(f)
        return seen


@dataclass(frozen=True)
class AnalysisSpec:
    """One analysis: a family (``type``), its maps (or pairs), regions (masks), other inputs and parameters.

    ``maps`` fill the family's ``image`` role one at a time, ``pairs`` its ``a``/``b`` roles, and
    ``masks`` are the regions (the ``mask`` role); ``inputs`` names the optional roles (e.g.
    ``{"vessels": "vessel_mask"}``: a mask name or a map ``image[:channel]``).
    """

    type: str
    name: str
    maps: tuple[str, ...] = ()
    masks: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    inputs: dict[str, str] = field(default_factory=dict)
    uncertainty: bool = False


@dataclass(frozen=True)
class Design:
    """The study design: covariates and outcomes per subject (from the study file and/or a CSV table).

    ``values`` maps each subject id to ``{column: value}`` (strings, numbers, booleans; ``None`` when
    a table cell is empty); ``covariates`` and ``outcomes`` name the columns in order (outcomes are
    numbers, or 0/1 events). ``source`` names where they came from (the study file, the CSV).
    The design is not part of a subject's fingerprint: editing a covariate re-runs no subject.

    Examples
    --------
    >>> d = Design({"m1": {"group": "treated"}, "m2": {"group": "control"}}, ("group",))
    >>> d.frame().loc["m2", "group"]
    'control'
    """

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    covariates: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    source: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """Every design column: covariates, then outcomes."""
        return self.covariates + tuple(c for c in self.outcomes if c not in self.covariates)

    def __bool__(self) -> bool:
        return bool(self.columns)

    def frame(self) -> Any:
        """The design as a pandas DataFrame indexed by ``subject`` (one column per covariate and outcome)."""
        import pandas as pd

        frame = pd.DataFrame.from_dict({sid: {c: v.get(c) for c in self.columns} for sid, v in self.values.items()},
                                       orient="index", columns=list(self.columns))
        frame.index.name = "subject"
        return frame


@dataclass(frozen=True)
class Study:
    """A parsed, validated study file."""

    path: Path
    name: str
    output: Path
    subjects: tuple[SubjectSpec, ...]
    analyses: tuple[AnalysisSpec, ...]
    report: dict[str, Any]
    text: str
    design: Design = field(default_factory=Design)

    @property
    def figure_formats(self) -> tuple[str, ...]:
        """The subject figures' file formats: PNG, plus SVG for a folder report that offers downloads."""
        folder = (self.report or {}).get("mode") == "folder"
        return ("png", "svg") if folder and (self.report or {}).get("downloads", True) else ("png",)

    def subject(self, subject_id: str) -> SubjectSpec:
        """The subject called ``subject_id``."""
        for s in self.subjects:
            if s.id == subject_id:
                return s
        raise StudyError(
            f"{self.path}: no subject {subject_id!r}; subjects are {[s.id for s in self.subjects]}"
        )

    def select(self, subject_ids: list[str] | None) -> list[SubjectSpec]:
        """The subjects listed in ``subject_ids`` (all when None), in study order."""
        if not subject_ids:
            return list(self.subjects)
        for sid in subject_ids:
            self.subject(sid)
        return [s for s in self.subjects if s.id in set(subject_ids)]

    def subject_fingerprint(self, subject: SubjectSpec) -> str:
        """A hash of everything that decides a subject's outputs except file contents."""
        payload = {
            "subject": jsonable(subject, drop=("line",)),
            "analyses": [jsonable(a, drop=("line",)) for a in self.analyses],
            "report": self.report,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def parse_map_name(name: str) -> tuple[str, str | None]:
    """Split ``"image:channel"`` into ``("image", "channel")``; ``"image"`` gives ``("image", None)``.

    Examples
    --------
    >>> parse_map_name("msi:doxorubicin")
    ('msi', 'doxorubicin')
    >>> parse_map_name("pet")
    ('pet', None)
    """
    if ":" in name:
        image, channel = name.split(":", 1)
        return image.strip(), channel.strip()
    return name.strip(), None
