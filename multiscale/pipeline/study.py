"""The study file: a YAML description of a cohort, validated with errors that name the line.

A study names its subjects, each subject's images and masks, a registration graph (edges
moving -> fixed), the analyses to run and the output folder. Paths are relative to the study
file. Fields shared by every subject go under ``defaults``; ``{subject}`` in any path there is
replaced by the subject's id.

.. code-block:: yaml

    name: example
    output: results                 # relative to this file; `multiscale run --output` overrides
    reference: [mri, fluorescence]  # one reference frame per connected part of the graph
    defaults:
      images:
        mri: {path: "data/{subject}/mri.nii.gz", modality: MR, aspect: anatomy}
        pet: {path: "data/{subject}/pet.nii.gz", modality: PT, aspect: nanoparticle, units: SUVbw}
        msi:
          path: "data/{subject}/msi.imzML"
          modality: MSI
          aspect: drug
          targets: {doxorubicin: 544.1813, haem: 616.1767}
          options: {tol: 5, tol_unit: ppm}
      masks:
        tumour: {path: "data/{subject}/tumour_mask.nii.gz", on: mri}
        vessels: {path: "data/{subject}/vessel_mask.nii.gz", on: mri}
        # a mask drawn on another grid than its image's: resampled onto it (nearest neighbour)
        necrosis: {path: "data/{subject}/necrosis.nii.gz", on: mri, resample: true}
      registration:
        - {moving: pet, fixed: mri, method: rigid}
        # uncertainty: 4 transforms drawn around the result give a TRE estimate (mm), and analyses
        # with `uncertainty: true` report each value's range under them (registration_lo/_hi)
        - {moving: "msi:haem", fixed: "fluorescence:vessels", method: affine, uncertainty: 4}
      grids:                        # optional: analyse a frame on a coarser grid (here the MSI's pixel)
        fluorescence: {spacing: 0.075}
      sections:                     # optional: place a 2-D section frame in a 3-D volume frame
        - section: "fluorescence:vessels"   # a map of the section frame's own image
          volume: vessels                   # a map or mask of the volume's frame showing the same structure
          z_mm: 10.0                        # rough height of the section plane (or index: <slice>)
          search_mm: 1.0                    # heights within this distance are tried
          truth: {file: "data/{subject}/ground_truth.json", key: transforms.section_in_mri}
    subjects:
      - id: mouse01
      - id: mouse02
        images: {pet: {path: other/pet.nii.gz}}   # overrides one field of the default
    analyses:
      - {type: uptake, maps: [pet], masks: [tumour]}
      - {type: radial, maps: [pet], masks: [tumour], params: {shells: 5}}
      - {type: colocalisation, pairs: [["msi:doxorubicin", "fluorescence:nanoparticle dye"]], uncertainty: true}

The **study design** says what each subject is and what happened to it: ``covariates`` (any
columns: group, formulation, dose, time point, sex, weight...) and ``outcomes`` (numbers such as a
response or a survival time, and true/false events), under each subject, or in a CSV table joined
by subject id (every subject needs a row, every row a subject; a value given in both must agree).
A session or time point of an animal imaged several times is a subject of its own, with the animal
as a covariate (the unit mixed models group by). The design is not part of a subject's
fingerprint: editing it re-runs no subject.

.. code-block:: yaml

    covariates: {file: design.csv, id: subject}   # optional table: a 'subject' column, one row per subject
    outcomes: [response, pfs_days, progressed]    # the table's outcome columns (numbers, 0/1 events)
    subjects:
      - id: mouse01
        covariates: {group: treated, dose_mg_kg: 5, sex: F, animal: m1, day: 3}
        outcomes: {response: 0.42, pfs_days: 120, progressed: true}

A *map* is an image key, or ``image:channel`` for one channel of a multichannel image (a dye
name, an MSI target name, or an m/z value). A section link brings every map and mask of the volume's
frame into the section's frame, on the section's plane, as ``<name>@<section frame>`` (``pet@fluorescence``,
``tumour@fluorescence``), so analyses there can pair an ion image with the PET.

A mask must sit on the grid of its ``on`` image (same shape, spacing, origin and direction): a
mask on another grid is refused when the subject runs, naming the file, ``masks.<name>.on`` and
both grids, unless the mask says ``resample: true`` (optional, default false), which resamples
it onto the image's grid with nearest neighbour.

Names become file and folder names, so subject ids, image, mask and analysis names, references
and ``grids`` keys use letters, digits, ``_``, ``-`` and ``.``, start and end with a letter or
digit, contain no ``..``, have at most 100 characters, are not a Windows device name (``CON``,
``NUL``, ...) and do not differ from another of their kind only in case. A name YAML reads as a
number keeps its text: ``id: 007`` is the subject ``"007"``, not ``"7"``. YAML 1.2 rules apply where YAML 1.1 surprises: only ``true``/``false`` are booleans and dates
stay strings. Mapping keys are strings (except inside ``params`` and ``options`` values). A
study file is at most 5 MB, and uses at most 100 aliases (``*name``) expanding to at most
100000 nodes. An analysis names each map, mask and pair once. The study's ``output`` must not
hold input files in the subject folders a run replaces (``<output>/subjects/<id>``).
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from multiscale.analysis.families import FAMILIES, family_named
from multiscale.analysis.family import COLUMNS as RESULT_COLUMNS
from multiscale.analysis.family import ParameterError
from multiscale.errors import StudyError
from multiscale.image import ASPECTS, MODALITIES
from multiscale.io.info import describe

from .graph import check_graph, frames_of, linked_names, mask_frames, references_of
from .spec import (
    AnalysisSpec,
    Design,
    EdgeSpec,
    ImageSpec,
    MaskSpec,
    SectionSpec,
    Study,
    SubjectSpec,
    parse_map_name,
)

__all__ = [
    "StudyError",
    "ImageSpec",
    "MaskSpec",
    "EdgeSpec",
    "SubjectSpec",
    "AnalysisSpec",
    "Study",
    "load_study",
    "check_channels",
    "check_output",
    "parse_map_name",
    "MODALITIES",
    "ASPECTS",
    "analysis_types",
    "REGISTRATION_METHODS",
]


def analysis_types() -> tuple[str, ...]:
    """The analysis families a study can ask for (``type:``), from :data:`multiscale.analysis.FAMILIES`.

    Examples
    --------
    >>> "radial" in analysis_types()
    True
    """
    return tuple(f.name for f in FAMILIES)


#: registration methods an edge can name
REGISTRATION_METHODS: tuple[str, ...] = (
    "rigid", "affine", "auto", "similarity", "translation", "bspline", "deformable",
    "identity", "file",
)

_TOP_FIELDS = ("name", "description", "output", "reference", "defaults", "subjects", "analyses", "report",
               "covariates", "outcomes")
_DEFAULT_FIELDS = ("images", "masks", "registration", "reference", "grids", "sections")
_SUBJECT_FIELDS = ("id", "images", "masks", "registration", "reference", "grids", "sections", "covariates", "outcomes")
_DESIGN_FILE_FIELDS = ("file", "id")
#: design columns may not take the name of a column of the results table (they are joined to it)
_RESERVED_DESIGN = frozenset(RESULT_COLUMNS) | {"label", "lesion"}
_SECTION_FIELDS = ("section", "volume", "z_mm", "index", "search_mm", "step_mm", "options", "truth", "uncertainty")
_GRID_FIELDS = ("spacing", "smooth")
_IMAGE_FIELDS = ("path", "modality", "aspect", "agent", "units", "scale", "options", "targets", "motion")
#: what ``motion:`` of a time-series image may say (:func:`multiscale.registration.motion.motion_correct`)
_MOTION_FIELDS = ("reference", "transform", "metric")
_MOTION_TRANSFORMS = ("translation", "rigid", "similarity", "affine")
_MOTION_METRICS = ("ncc", "mattes_mi", "mean_squares")
_MASK_FIELDS = ("path", "on", "label", "labels", "resample", "options")
_EDGE_FIELDS = ("moving", "fixed", "method", "options", "transform", "truth", "landmarks", "uncertainty")
_LANDMARK_FIELDS = ("fixed", "moving", "use")
_TRUTH_FIELDS = ("file", "key")
_ANALYSIS_FIELDS = ("type", "name", "maps", "masks", "pairs", "inputs", "params", "uncertainty")




# ---------------------------------------------------------------------------------------------
# YAML with line numbers
# ---------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false, so ``on: mri`` and ``no: 3`` stay strings)
    and no timestamps (``2024-01-01`` stays the string it reads as, as in YAML 1.2)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


#: a study file larger than this is refused (a real one is a few kB)
MAX_STUDY_BYTES = 5 * 1024 * 1024
#: alias uses (``*name``) allowed in a study file; each expands its anchor's whole subtree
MAX_ALIASES = 100
#: YAML nodes a study file may expand to (aliases counted as often as they are used)
MAX_NODES = 100_000

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Doc:
    """The YAML document as python values plus the line of every node (by path).

    Refuses what a study never needs and a hostile file could use: more than
    :data:`MAX_ALIASES` alias uses or :data:`MAX_NODES` nodes once aliases are expanded ("billion
    laughs"), recursive aliases, and mapping keys that are not strings (outside the values of
    ``params`` and ``options``). Keeps the source text of plain numbers, so that ``id: 007`` is the
    subject ``"007"`` (not ``"7"``) where a string is expected.
    """

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines: dict[tuple[Any, ...], int] = {}
        self.raw: dict[tuple[Any, ...], str] = {}
        self._aliases = 0
        self._nodes = 0
        self._seen: set[int] = set()
        self._open: set[int] = set()
        try:
            loader = _Loader(text)
            try:
                node = loader.get_single_node()
                if node is None:
                    self.data: Any = None
                else:
                    self._walk(node, ())
                    self.data = loader.construct_document(node)
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 0
            problem = exc.problem or exc.context or "invalid YAML"
            raise StudyError(
                f"{path}:{line}: YAML syntax error: {problem}; check indentation, colons and quotes "
                "around values that contain ':' or '#'"
            ) from None
        except yaml.YAMLError as exc:
            raise StudyError(f"{path}: YAML error: {exc}") from None
        except RecursionError:
            raise StudyError(f"{path}: YAML nested too deeply; a study file needs a few levels of nesting") from None

    def _walk(self, node: yaml.Node, loc: tuple[Any, ...], expanding: bool = False) -> None:
        line = self.lines.get(loc, node.start_mark.line + 1)  # a mapping value: its key's line (an alias's use)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise StudyError(f"{self.path}:{line}: {_dotted(loc) or 'study'}: the document expands to more than "
                             f"{MAX_NODES} YAML nodes (anchors and aliases?); write the study out plainly")
        if id(node) in self._open:
            raise StudyError(f"{self.path}:{line}: {_dotted(loc) or 'study'}: recursive YAML alias (a node that "
                             "contains itself); remove the alias")
        if id(node) in self._seen and not expanding:  # an alias: the composer hands back the anchored node
            self._aliases += 1
            expanding = True
            if self._aliases > MAX_ALIASES:
                raise StudyError(f"{self.path}:{line}: {_dotted(loc) or 'study'}: more than {MAX_ALIASES} YAML "
                                 "alias uses (*name); write the repeated fields under 'defaults' instead")
        self._seen.add(id(node))
        self.lines.setdefault(loc, line)
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _NUMBER_TAGS and node.style is None:
                self.raw[loc] = node.value
            return
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                free = any(part in ("params", "options") for part in loc[:-1]) if loc else False
                seen: dict[str, int] = {}
                for key_node, value_node in node.value:
                    key = key_node.value
                    kline = key_node.start_mark.line + 1
                    if not isinstance(key_node, yaml.ScalarNode) or (
                            key_node.tag not in (_STR_TAG, _MERGE_TAG) and not free):
                        shown = key if isinstance(key, str) else "a list or mapping"
                        raise StudyError(
                            f"{self.path}:{kline}: {_dotted(loc) or 'study'}: key {shown!r} is not a string; "
                            f"quote it (\"{shown}\": ...) or use a name"
                        )
                    if key in seen:
                        raise StudyError(
                            f"{self.path}:{kline}: {_dotted(loc + (key,))}: duplicate key (first at line "
                            f"{seen[key]}); remove one of them"
                        )
                    seen[key] = kline
                    self.lines[loc + (key,)] = kline
                    self._walk(value_node, loc + (key,), expanding)
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    self._walk(item, loc + (i,), expanding)
        finally:
            self._open.discard(id(node))

    def text(self, loc: tuple[Any, ...], value: Any) -> str:
        """``value`` as a string: a plain number as written in the file (``007``, ``1.10``) when it came from ``loc``."""
        raw = self.raw.get(loc)
        if raw is not None and not isinstance(value, bool) and isinstance(value, (int, float)):
            try:
                if yaml.load(raw, Loader=_Loader) == value:
                    return raw
            except yaml.YAMLError:
                pass
        return str(value)

    def line(self, loc: tuple[Any, ...]) -> int:
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc, 1)

    def error(self, loc: tuple[Any, ...], message: str) -> StudyError:
        where = _dotted(loc)
        prefix = f"{self.path}:{self.line(loc)}: "
        return StudyError(prefix + (f"{where}: " if where else "") + message)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# ---------------------------------------------------------------------------------------------
# field checks
# ---------------------------------------------------------------------------------------------


def _check_fields(doc: _Doc, value: Any, loc: tuple[Any, ...], allowed: tuple[str, ...], what: str) -> dict:
    if not isinstance(value, Mapping):
        raise doc.error(loc, f"expected a mapping of {what} fields ({', '.join(allowed)}), got {_kind(value)}")
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed fields: {', '.join(allowed)}"
            raise doc.error(loc + (key,), f"unknown field {key!r} in {what}; {hint}")
    return dict(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "true/false"}.get(type(value), type(value).__name__)


def _string(doc: _Doc, value: Any, loc: tuple[Any, ...], what: str, required: bool = True) -> str:
    if value is None:
        if required:
            raise doc.error(loc, f"missing {what}")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise doc.error(loc, f"{what} must be a string, got {_kind(value)}")
    return value if isinstance(value, str) else doc.text(loc, value)


#: what a name (subject id, image, mask, analysis, reference, grid) may look like: it becomes part of
#: file and folder names, so letters, digits, ``_``, ``-`` and ``.``, starting and ending with a
#: letter or digit, no ``..``, at most :data:`MAX_NAME` characters
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
MAX_NAME = 100
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def _name_problem(name: str) -> str:
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"it has {len(name)} characters (at most {MAX_NAME})"
    if ".." in name:
        return "it contains '..'"
    if not _NAME_RE.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "_.-"))})
        if bad:
            return f"it contains {', '.join(repr(c) for c in bad)}"
        return "it does not start and end with a letter or digit"
    if name.split(".")[0].lower() in _RESERVED:
        return "it is a reserved device name on Windows"
    return ""


def _name(doc: _Doc, value: Any, loc: tuple[Any, ...], what: str) -> str:
    """A name that becomes part of file and folder names (:data:`_NAME_RE`), or a StudyError with its line."""
    name = _string(doc, value, loc, what)
    problem = _name_problem(name)
    if problem:
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise doc.error(loc, f"{what} {shown!r} is not a usable name: {problem}; use letters, digits, '_', '-' and "
                        f"'.', starting and ending with a letter or digit (at most {MAX_NAME} characters)")
    return name


def _unique(doc: _Doc, names: list[tuple[str, tuple[Any, ...]]], what: str) -> None:
    """Refuse names equal up to case: they collide as file names on macOS and Windows."""
    seen: dict[str, str] = {}
    for name, loc in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise doc.error(loc, f"{what} {name!r} and {other!r} differ only in case; their output files would "
                            "collide on macOS and Windows, rename one")


def _choice(doc: _Doc, value: Any, loc: tuple[Any, ...], choices: tuple[str, ...], what: str,
            required: bool = True, upper: bool = False) -> str:
    text = _string(doc, value, loc, what, required)
    if upper:
        text = text.upper()
    if text not in choices and (required or text):
        close = difflib.get_close_matches(text, choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise doc.error(loc, f"unknown {what} {text!r}; {hint}use one of {', '.join(c for c in choices if c)}")
    return text


def _string_list(doc: _Doc, value: Any, loc: tuple[Any, ...], what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise doc.error(loc, f"{what} must be a list of names, got {_kind(value)}")
    return tuple(_string(doc, v, loc + (i,), what) for i, v in enumerate(value))


def _options(doc: _Doc, value: Any, loc: tuple[Any, ...], what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise doc.error(loc, f"{what} must be a mapping of keyword arguments, got {_kind(value)}")
    return dict(value)


def _path(doc: _Doc, value: Any, loc: tuple[Any, ...], subject: str, check_exists: bool) -> Path:
    text = _string(doc, value, loc, "path").replace("{subject}", subject)
    if not text.strip() or "\0" in text:
        raise doc.error(loc, f"path {text!r} is {'empty' if not text.strip() else 'not a file name (NUL)'}; "
                        "give the file's path")
    p = Path(text).expanduser()
    if not p.is_absolute():
        p = doc.path.parent / p
    if check_exists and not p.exists():
        raise doc.error(
            loc, f"file not found: {p}; fix the path (relative paths are relative to {doc.path.parent})"
        )
    return p


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def _merge(default: Any, override: Any) -> Any:
    """Subject fields over defaults: mappings merge key by key, anything else replaces."""
    if isinstance(default, Mapping) and isinstance(override, Mapping):
        out = {k: copy.deepcopy(v) for k, v in default.items()}
        for k, v in override.items():
            out[k] = _merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


def _motion(doc: _Doc, raw: Any, loc: tuple) -> dict[str, Any]:
    """``motion:`` of an image: ``true`` (rigid to the time-mean), a transform name, or a mapping."""
    if raw is None or raw is False:
        return {}
    if raw is True:
        raw = {}
    elif isinstance(raw, str):
        raw = {"transform": raw}
    if not isinstance(raw, Mapping):
        raise doc.error(loc, f"motion must be true, a transform ({', '.join(_MOTION_TRANSFORMS)}) or a mapping "
                        f"with {', '.join(_MOTION_FIELDS)}; got {raw!r}")
    out: dict[str, Any] = {"reference": "mean", "transform": "rigid", "metric": "ncc"}
    for k, v in raw.items():
        if k not in _MOTION_FIELDS:
            raise doc.error(loc + (k,), f"unknown motion setting; accepted: {', '.join(_MOTION_FIELDS)}")
        out[str(k)] = v
    if not (out["reference"] == "mean" or (isinstance(out["reference"], int) and not isinstance(out["reference"], bool)
                                           and out["reference"] >= 0)):
        raise doc.error(loc + ("reference",), f"reference must be 'mean' or a frame index (0, 1, ...), "
                        f"got {out['reference']!r}")
    if out["transform"] not in _MOTION_TRANSFORMS:
        raise doc.error(loc + ("transform",), f"transform must be one of {', '.join(_MOTION_TRANSFORMS)}, "
                        f"got {out['transform']!r}")
    if out["metric"] not in _MOTION_METRICS:
        raise doc.error(loc + ("metric",), f"metric must be one of {', '.join(_MOTION_METRICS)} (mattes_mi when the "
                        f"contrast changes over time, as in DCE), got {out['metric']!r}")
    return out


def _parse_image(doc: _Doc, key: str, raw: Any, loc: tuple, subject: str, check: bool) -> ImageSpec:
    d = _check_fields(doc, raw, loc, _IMAGE_FIELDS, "image")
    if "path" not in d:
        raise doc.error(loc, f"image {key!r} has no path; add 'path: <file>'")
    targets_raw = d.get("targets") or {}
    if not isinstance(targets_raw, Mapping):
        raise doc.error(loc + ("targets",), "targets must map names to m/z values, e.g. {doxorubicin: 544.1813}")
    targets: dict[str, float] = {}
    for name, mz in targets_raw.items():
        tloc = loc + ("targets", name)
        if not str(name).strip() or str(name) != str(name).strip():
            raise doc.error(tloc, f"target name {name!r} must be non-empty without surrounding spaces (a map names "
                            "the channel as image:target, spaces stripped)")
        if isinstance(mz, bool) or not isinstance(mz, (int, float)) or not math.isfinite(mz) or mz <= 0:
            raise doc.error(tloc, f"m/z of target {name!r} must be a positive number, got {mz!r}")
        same = [k for k, v in targets.items() if v == float(mz)]
        if same:
            raise doc.error(tloc, f"targets {same[0]!r} and {name!r} have the same m/z {float(mz)}; "
                            "give each m/z once")
        targets[str(name)] = float(mz)
    options = _options(doc, d.get("options"), loc + ("options",), "options")
    if targets and "channels" in options:
        raise doc.error(loc + ("options", "channels"), "give the channels either as targets or as options.channels, "
                        "not both")
    return ImageSpec(
        key=key,
        motion=_motion(doc, d.get("motion"), loc + ("motion",)),
        path=_path(doc, d["path"], loc + ("path",), subject, check),
        modality=_choice(doc, d.get("modality"), loc + ("modality",), MODALITIES, "modality", upper=True),
        aspect=_choice(doc, d.get("aspect"), loc + ("aspect",), ASPECTS, "aspect", required=False),
        agent=_string(doc, d.get("agent"), loc + ("agent",), "agent", required=False),
        units=_string(doc, d.get("units"), loc + ("units",), "units", required=False),
        scale=_string(doc, d.get("scale"), loc + ("scale",), "scale", required=False),
        options=options,
        targets=targets,
        line=doc.line(loc),
    )


def _parse_mask(doc: _Doc, key: str, raw: Any, loc: tuple, subject: str, check: bool) -> MaskSpec:
    d = _check_fields(doc, raw, loc, _MASK_FIELDS, "mask")
    if "path" not in d:
        raise doc.error(loc, f"mask {key!r} has no path; add 'path: <file>'")
    if "on" not in d:
        raise doc.error(loc, f"mask {key!r} has no 'on' field; name the image whose grid it is drawn on, e.g. on: mri")
    label = d.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise doc.error(loc + ("label",), f"label must be an integer label value, got {label!r}")
    if label is not None and label <= 0:
        raise doc.error(loc + ("label",), f"label {label} would select the background (0) or nothing; give a "
                        "positive label value, or leave 'label' out for every non-zero voxel")
    resample = d.get("resample", False)
    if not isinstance(resample, bool):
        raise doc.error(loc + ("resample",), f"resample must be true or false, got {resample!r}")
    labels = d.get("labels", False)
    if not isinstance(labels, bool):
        raise doc.error(loc + ("labels",), f"labels must be true or false, got {labels!r} (true: one region per "
                        "label value of the image, e.g. one per lesion)")
    if labels and label is not None:
        raise doc.error(loc + ("labels",), "give either 'label' (one region: that label) or 'labels: true' (one "
                        "region per label), not both")
    options = _options(doc, d.get("options"), loc + ("options",), "options")
    for reserved in ("reference", "resample"):
        if reserved in options:
            raise doc.error(loc + ("options", reserved), f"options.{reserved} is set by the pipeline (the mask is "
                            "loaded on its 'on' image's grid); use the mask's 'resample: true' field instead")
    return MaskSpec(
        key=key,
        path=_path(doc, d["path"], loc + ("path",), subject, check),
        on=_string(doc, d["on"], loc + ("on",), "on"),
        label=label,
        options=options,
        line=doc.line(loc),
        resample=resample,
        labels=labels,
    )


def _truth(doc: _Doc, value: Any, loc: tuple, subject: str, check: bool) -> tuple[Path, str] | None:
    if value is None:
        return None
    t = _check_fields(doc, value, loc, _TRUTH_FIELDS, "truth")
    if "file" not in t or "key" not in t:
        raise doc.error(loc, "truth needs 'file' (a JSON file) and 'key' (the transform's name)")
    return (_path(doc, t["file"], loc + ("file",), subject, check), _string(doc, t["key"], loc + ("key",), "truth key"))


def _number(doc: _Doc, value: Any, loc: tuple, what: str, minimum: float | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise doc.error(loc, f"{what} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise doc.error(loc, f"{what} must be >= {minimum:g}, got {value!r}")
    return float(value)


def _flag(doc: _Doc, value: Any, loc: tuple, what: str) -> bool:
    if not isinstance(value, bool):
        raise doc.error(loc, f"{what} must be true or false, got {value!r}")
    return value


def _samples(doc: _Doc, value: Any, loc: tuple) -> int:
    """An edge's ``uncertainty``: how many transforms to draw around its result (0: none, at most 32)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 32:
        raise doc.error(loc, f"uncertainty must be a number of samples from 0 to 32 (e.g. 4), got {value!r}")
    return int(value)


def _parse_section(doc: _Doc, raw: Any, loc: tuple, subject: str, check: bool) -> SectionSpec:
    """A section link: ``{section: fluo:vessels, volume: vessels, z_mm: 10, search_mm: 1, truth: ...}``."""
    d = _check_fields(doc, raw, loc, _SECTION_FIELDS, "section link")
    for required in ("section", "volume"):
        if required not in d:
            raise doc.error(loc, f"section link has no {required!r}; links read 'section: <2-D map>, volume: <3-D map "
                            "or mask>, z_mm: <rough height>'")
    if ("z_mm" in d) == ("index" in d):
        raise doc.error(loc, "give the section's rough height in the volume as z_mm (mm) or index (slice), one of them")
    index = d.get("index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise doc.error(loc + ("index",), f"index must be a slice number >= 0, got {index!r}")
    step = _number(doc, d.get("step_mm"), loc + ("step_mm",), "step_mm", 0.0)
    if step is not None and step <= 0:
        raise doc.error(loc + ("step_mm",), f"step_mm must be > 0, got {step!r}")
    return SectionSpec(
        section=_string(doc, d["section"], loc + ("section",), "section"),
        volume=_string(doc, d["volume"], loc + ("volume",), "volume"),
        z_mm=_number(doc, d.get("z_mm"), loc + ("z_mm",), "z_mm"),
        index=index,
        search_mm=_number(doc, d.get("search_mm", 1.0), loc + ("search_mm",), "search_mm", 0.0),
        step_mm=step,
        options=_options(doc, d.get("options"), loc + ("options",), "options"),
        truth=_truth(doc, d.get("truth"), loc + ("truth",), subject, check),
        line=doc.line(loc),
        uncertainty=_samples(doc, d.get("uncertainty"), loc + ("uncertainty",)),
    )


def _check_sections(doc: _Doc, subject: SubjectSpec, loc: tuple) -> None:
    """Each link joins a 2-D frame's reference image (section) to a map or mask of another frame (volume)."""
    frame = frames_of(subject)
    refs = references_of(subject)
    seen: set[str] = set()
    for i, link in enumerate(subject.sections):
        lloc = loc + (i,)
        if link.section_image not in subject.images:
            raise doc.error(lloc + ("section",), f"section {link.section!r} is not an image of subject "
                            f"{subject.id!r}; images are {sorted(subject.images)}")
        if link.section_image not in refs:
            raise doc.error(lloc + ("section",), f"section {link.section!r} must be a map of a reference frame's own "
                            f"image (one of {', '.join(refs)}), the frame the volume's maps are brought into")
        volume = parse_map_name(link.volume)[0]
        if volume in subject.masks:
            vframe = frame[subject.masks[volume].on]
        elif volume in subject.images:
            vframe = frame[volume]
        else:
            raise doc.error(lloc + ("volume",), f"volume {link.volume!r} is neither an image nor a mask of subject "
                            f"{subject.id!r}; images are {sorted(subject.images)}, masks {sorted(subject.masks)}")
        if vframe == link.section_image:
            raise doc.error(lloc + ("volume",), f"volume {link.volume!r} is in the section's own frame "
                            f"{vframe!r}; a link joins two frames")
        if link.section_image in seen:
            raise doc.error(lloc + ("section",), f"section {link.section_image!r} is linked twice; link each "
                            "section frame to one volume")
        seen.add(link.section_image)


def _parse_edge(doc: _Doc, raw: Any, loc: tuple, subject: str, check: bool) -> EdgeSpec:
    d = _check_fields(doc, raw, loc, _EDGE_FIELDS, "registration edge")
    for required in ("moving", "fixed"):
        if required not in d:
            raise doc.error(loc, f"registration edge has no {required!r}; edges read 'moving: A, fixed: B'")
    method = _choice(doc, d.get("method", "rigid"), loc + ("method",), REGISTRATION_METHODS, "method")
    transform = None
    if "transform" in d:
        transform = _path(doc, d["transform"], loc + ("transform",), subject, check)
        if method not in ("file",):
            method = "file"
    elif method == "file":
        raise doc.error(loc, "method 'file' needs 'transform: <path to a transform file>'")
    truth = _truth(doc, d.get("truth"), loc + ("truth",), subject, check)
    landmarks, use_landmarks = None, False
    if d.get("landmarks") is not None:
        lm = _check_fields(doc, d["landmarks"], loc + ("landmarks",), _LANDMARK_FIELDS, "landmarks")
        if "fixed" not in lm or "moving" not in lm:
            raise doc.error(loc + ("landmarks",), "landmarks need 'fixed' and 'moving' CSV files of corresponding points")
        landmarks = (_path(doc, lm["fixed"], loc + ("landmarks", "fixed"), subject, check),
                     _path(doc, lm["moving"], loc + ("landmarks", "moving"), subject, check))
        use = lm.get("use", False)
        if not isinstance(use, bool):
            raise doc.error(loc + ("landmarks", "use"), f"use must be true or false, got {use!r}")
        use_landmarks = use
    return EdgeSpec(
        landmarks=landmarks,
        use_landmarks=use_landmarks,
        moving=_string(doc, d["moving"], loc + ("moving",), "moving"),
        fixed=_string(doc, d["fixed"], loc + ("fixed",), "fixed"),
        method=method,
        options=_options(doc, d.get("options"), loc + ("options",), "options"),
        transform=transform,
        truth=truth,
        line=doc.line(loc),
        uncertainty=_samples(doc, d.get("uncertainty"), loc + ("uncertainty",)),
    )


def _parse_subject(doc: _Doc, raw: Any, loc: tuple, defaults: dict, check: bool) -> SubjectSpec:
    d = _check_fields(doc, raw, loc, _SUBJECT_FIELDS, "subject")
    if "id" not in d:
        raise doc.error(loc, "subject has no id; add 'id: <name>'")
    sid = _name(doc, d["id"], loc + ("id",), "subject id")

    def section(name: str, kind: type) -> tuple[Any, tuple]:
        # the subject's own value wins; the line points where the (merged) value came from
        base = defaults.get(name)
        own = d.get(name)
        if own is None:
            return base, ("defaults", name)
        if base is not None and kind is dict and isinstance(own, Mapping) and isinstance(base, Mapping):
            return _merge(base, own), loc + (name,)
        return own, loc + (name,)

    images_raw, images_loc = section("images", dict)
    if not images_raw:
        raise doc.error(loc, f"subject {sid!r} has no images; add 'images:' here or under 'defaults'")
    if not isinstance(images_raw, Mapping):
        raise doc.error(images_loc, f"images must map names to image fields, got {_kind(images_raw)}")
    images = {}
    for key, value in images_raw.items():
        own = isinstance(d.get("images"), Mapping) and key in d["images"]
        iloc = (loc + ("images", key)) if own else ("defaults", "images", key)
        _name(doc, key, iloc, "image name")
        images[str(key)] = _parse_image(doc, str(key), value, iloc, sid, check)

    masks_raw, masks_loc = section("masks", dict)
    masks = {}
    if masks_raw:
        if not isinstance(masks_raw, Mapping):
            raise doc.error(masks_loc, f"masks must map names to mask fields, got {_kind(masks_raw)}")
        for key, value in masks_raw.items():
            own = isinstance(d.get("masks"), Mapping) and key in d["masks"]
            mloc = (loc + ("masks", key)) if own else ("defaults", "masks", key)
            _name(doc, key, mloc, "mask name")
            m = _parse_mask(doc, str(key), value, mloc, sid, check)
            if m.on not in images:
                raise doc.error(mloc + ("on",), f"mask {key!r} is on unknown image {m.on!r}; images are {sorted(images)}")
            if str(key) in images:
                raise doc.error(mloc, f"mask name {key!r} is also an image name; rename one of them")
            masks[str(key)] = m

    edges_raw, edges_loc = section("registration", list)
    edges = []
    if edges_raw:
        if not isinstance(edges_raw, list):
            raise doc.error(edges_loc, f"registration must be a list of edges, got {_kind(edges_raw)}")
        for i, value in enumerate(edges_raw):
            edges.append(_parse_edge(doc, value, edges_loc + (i,), sid, check))

    ref_raw, ref_loc = section("reference", list)
    if ref_raw is None:
        ref_raw = doc.data.get("reference")
        ref_loc = ("reference",)
    references = _string_list(doc, ref_raw, ref_loc, "reference")
    for i, r in enumerate(references):
        rloc = ref_loc + (i,) if isinstance(ref_raw, list) else ref_loc
        _name(doc, r, rloc, "reference")
        if r in references[:i]:
            raise doc.error(rloc, f"reference {r!r} is listed twice; list each reference frame once")

    grids_raw, grids_loc = section("grids", dict)
    grids: dict[str, dict[str, Any]] = {}
    if grids_raw is not None and not isinstance(grids_raw, Mapping):
        raise doc.error(grids_loc, f"grids must map reference frames to grid fields, got {_kind(grids_raw)}")
    for frame, g in (grids_raw or {}).items():
        gloc = grids_loc + (frame,)
        _name(doc, frame, gloc, "grid")
        g = _check_fields(doc, g, gloc, _GRID_FIELDS, "grid")
        sp = g.get("spacing")
        if isinstance(sp, bool) or not isinstance(sp, (int, float)) or not math.isfinite(sp) or sp <= 0:
            raise doc.error(gloc + ("spacing",), f"grid spacing must be a positive number of mm, got {sp!r}")
        smooth = g.get("smooth", True)
        if not isinstance(smooth, bool):
            raise doc.error(gloc + ("smooth",), f"smooth must be true or false, got {smooth!r}")
        grids[str(frame)] = {"spacing": float(sp), "smooth": smooth}
    _unique(doc, [(k, images_loc + (k,)) for k in images] + [(k, masks_loc + (k,)) for k in masks],
            "image/mask name")
    sections_raw, sections_loc = section("sections", list)
    sections = []
    if sections_raw:
        if not isinstance(sections_raw, list):
            raise doc.error(sections_loc, f"sections must be a list of section links, got {_kind(sections_raw)}")
        sections = [_parse_section(doc, v, sections_loc + (i,), sid, check) for i, v in enumerate(sections_raw)]
    subject = SubjectSpec(sid, images, masks, tuple(edges), references, line=doc.line(loc), grids=grids,
                          sections=tuple(sections))
    for frame, _g in grids.items():
        if frame not in references_of(subject):
            raise doc.error(grids_loc + (frame,), f"grid for {frame!r}, which is not a reference frame "
                            f"({', '.join(references_of(subject))}); grids resample a reference frame")
    check_graph(subject, doc, ref_loc, edges_loc)
    _check_sections(doc, subject, sections_loc)
    return subject


def _parse_analysis(doc: _Doc, raw: Any, loc: tuple, index: int) -> AnalysisSpec:
    """One analysis entry: its family, inputs by role (or the ``maps``/``pairs`` shorthand) and params.

    ``params`` are bound to the family's ``table`` signature here, so a misspelt or mistyped
    parameter is reported with its line before anything is loaded.
    """
    d = _check_fields(doc, raw, loc, _ANALYSIS_FIELDS, "analysis")
    types = analysis_types()
    if "type" not in d:
        raise doc.error(loc, f"analysis has no type; use one of {', '.join(types)}")
    kind = _choice(doc, d["type"], loc + ("type",), types, "analysis type")
    family = family_named(kind)
    pairs = []
    raw_pairs = d.get("pairs") or []
    if not isinstance(raw_pairs, list):
        raise doc.error(loc + ("pairs",), "pairs must be a list of [map_a, map_b] pairs")
    for i, p in enumerate(raw_pairs):
        if not isinstance(p, list) or len(p) != 2:
            raise doc.error(loc + ("pairs", i), f"each pair must be a list of two map names, got {p!r}")
        pairs.append((_string(doc, p[0], loc + ("pairs", i), "map"), _string(doc, p[1], loc + ("pairs", i), "map")))
    maps = list(_string_list(doc, d.get("maps"), loc + ("maps",), "maps"))
    masks = list(_string_list(doc, d.get("masks"), loc + ("masks",), "masks"))
    inputs_raw = _options(doc, d.get("inputs"), loc + ("inputs",), "inputs")
    extra: dict[str, str] = {}
    roles = family.roles
    for role, value in inputs_raw.items():
        rloc = loc + ("inputs", role)
        if role not in roles:
            close = difflib.get_close_matches(str(role), roles, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"{kind} takes {', '.join(roles)}"
            raise doc.error(rloc, f"unknown input role {role!r} of {kind}; {hint}")
        names = list(_string_list(doc, value, rloc, role))
        if role == "image":
            maps += names
        elif role == "mask":
            masks += names
        elif role in ("a", "b"):
            if len(names) != 1 or "a" not in inputs_raw or "b" not in inputs_raw:
                raise doc.error(rloc, "name one map for each of 'a' and 'b' (or list several under 'pairs:')")
        elif len(names) != 1:
            raise doc.error(rloc, f"input {role!r} takes one mask or map name, got {len(names)}")
        else:
            extra[str(role)] = names[0]
    if "a" in inputs_raw and "b" in inputs_raw:
        pairs.append((_string(doc, inputs_raw["a"], loc + ("inputs", "a"), "map"),
                      _string(doc, inputs_raw["b"], loc + ("inputs", "b"), "map")))
    if family.pairwise:
        if not pairs:
            raise doc.error(loc, f"{kind} compares two maps: give 'pairs: [[map_a, map_b], ...]' "
                            "or 'inputs: {a: map_a, b: map_b}'")
        if maps:
            raise doc.error(loc + ("maps",), f"{kind} takes pairs of maps, not 'maps'; use 'pairs:'")
    else:
        if pairs:
            raise doc.error(loc + ("pairs",), f"{kind} takes one map at a time; use 'maps:' instead of 'pairs:'")
        if not maps:
            raise doc.error(loc, f"{kind} needs 'maps: [...]' (image names or image:channel)")
    _no_repeats(doc, loc, maps, masks, pairs)
    params = _options(doc, d.get("params"), loc + ("params",), "params")
    try:
        family.check_params(params)
    except ParameterError as exc:
        raise doc.error(loc + ("params", exc.field), exc.message) from None
    name = _name(doc, d["name"], loc + ("name",), "analysis name") if d.get("name") is not None else f"{kind}{index}"
    return AnalysisSpec(
        type=kind,
        name=name,
        maps=tuple(maps),
        masks=tuple(masks),
        pairs=tuple(pairs),
        params=params,
        line=doc.line(loc),
        inputs=extra,
        uncertainty=_flag(doc, d.get("uncertainty", False), loc + ("uncertainty",), "uncertainty"),
    )


def _no_repeats(doc: _Doc, loc: tuple, maps: list[str], masks: list[str], pairs: list[tuple[str, str]]) -> None:
    """Refuse a map, mask or pair named twice (its rows would be repeated) and a pair of a map with itself."""
    seen: dict[tuple[str, str | None], str] = {}
    for name in maps:
        key = parse_map_name(name)
        whole = (key[0], None)
        if key in seen or (key[1] is not None and whole in seen):
            other = seen.get(key, seen.get(whole))
            raise doc.error(loc + ("maps",), f"map {name!r} is already named ({other!r}): its rows would be repeated; "
                            "name each map once (an image without ':channel' stands for all its channels)")
        if key[1] is None and any(k[0] == key[0] for k in seen):
            other = next(v for k, v in seen.items() if k[0] == key[0])
            raise doc.error(loc + ("maps",), f"map {name!r} (all its channels) repeats {other!r}: its rows would be "
                            "repeated; name each map once")
        seen[key] = name
    for i, m in enumerate(masks):
        if m in masks[:i]:
            raise doc.error(loc + ("masks",), f"mask {m!r} is named twice: its rows would be repeated; name it once")
    keys = [(parse_map_name(a), parse_map_name(b)) for a, b in pairs]
    for i, (a, b) in enumerate(keys):
        if a == b:
            raise doc.error(loc + ("pairs",), f"pair ({pairs[i][0]}, {pairs[i][1]}) compares a map with itself; "
                            "pair two different maps")
        if (a, b) in keys[:i] or (b, a) in keys[:i]:
            raise doc.error(loc + ("pairs",), f"pair ({pairs[i][0]}, {pairs[i][1]}) is named twice: its rows would "
                            "be repeated; name each pair once")


def _check_analysis_refs(doc: _Doc, analysis: AnalysisSpec, index: int, subject: SubjectSpec) -> None:
    loc = ("analyses", index)
    names = list(analysis.maps) + [m for p in analysis.pairs for m in p]
    linked = linked_names(subject)
    linked_maps = {n: src for n, (kind, src, _) in linked.items() if kind == "map"}
    linked_masks = {n for n, (kind, _, _) in linked.items() if kind == "mask"}
    mask_frame = mask_frames(subject)
    for name in names:
        image, channel = parse_map_name(name)
        if image in linked_maps:
            image = linked_maps[image]
        if image not in subject.images:
            raise doc.error(
                loc, f"map {name!r} refers to unknown image {image!r} of subject {subject.id!r}; "
                f"images are {sorted(subject.images)}"
            )
        spec = subject.images[image]
        if channel is not None and spec.targets and channel not in spec.targets:
            try:
                float(channel)
            except ValueError:
                raise doc.error(
                    loc, f"map {name!r}: {channel!r} is not a target of {image!r}; targets are {sorted(spec.targets)}"
                ) from None
    for mask in analysis.masks:
        if mask not in subject.masks and mask not in linked_masks:
            raise doc.error(
                loc + ("masks",), f"unknown mask {mask!r} for subject {subject.id!r}; masks are "
                f"{sorted(subject.masks) + sorted(linked_masks)}"
            )
    frame = frames_of(subject)
    for role, name in analysis.inputs.items():
        if name in mask_frame:
            where = mask_frame[name]
        else:
            image = parse_map_name(name)[0]
            if image not in subject.images and image not in linked_maps:
                raise doc.error(loc + ("inputs", role), f"input {role!r}: {name!r} is neither a mask nor a map of "
                                f"subject {subject.id!r}; masks are {sorted(subject.masks)}, images "
                                f"{sorted(subject.images)}")
            where = frame[image]
        for other in names:
            if frame[parse_map_name(other)[0]] != where:
                raise doc.error(loc + ("inputs", role), f"input {role!r} ({name}) lives in frame {where!r} but map "
                                f"{other!r} in frame {frame[parse_map_name(other)[0]]!r}; use inputs of one frame")
    for a, b in analysis.pairs:
        fa, fb = frame[parse_map_name(a)[0]], frame[parse_map_name(b)[0]]
        if fa != fb:
            raise doc.error(
                loc + ("pairs",), f"pair ({a}, {b}) spans two reference frames ({fa} and {fb}); "
                "register them into one frame or pair maps of the same frame"
            )
    for mask in analysis.masks:
        mframe = mask_frame[mask]
        for name in names:
            if frame[parse_map_name(name)[0]] != mframe:
                raise doc.error(
                    loc + ("masks",), f"mask {mask!r} lives in frame {mframe!r} but map {name!r} in frame "
                    f"{frame[parse_map_name(name)[0]]!r}; split this analysis by frame"
                )


# ---------------------------------------------------------------------------------------------
# the study design: covariates and outcomes per subject
# ---------------------------------------------------------------------------------------------


def _design_key(doc: _Doc, key: Any, loc: tuple, what: str) -> str:
    name = str(key).strip()
    if not name or name != str(key):
        raise doc.error(loc, f"{what} name {key!r} must be non-empty without surrounding spaces")
    if name in _RESERVED_DESIGN:
        raise doc.error(loc, f"{what} name {name!r} is a column of the results table the design is joined to; "
                        "rename it (e.g. 'group', 'dose_mg_kg', 'time_point')")
    return name


def _design_value(doc: _Doc, value: Any, loc: tuple, key: str, outcome: bool) -> Any:
    if isinstance(value, (Mapping, list)):
        raise doc.error(loc, f"{'outcome' if outcome else 'covariate'} {key!r} must be one value (text, number or "
                        f"true/false), got {_kind(value)}")
    if value is None:
        return None
    if outcome:
        if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
            return value
        raise doc.error(loc, f"outcome {key!r} must be a number (a survival time, a response) or true/false (an "
                        f"event), got {value!r}; put text such as groups under 'covariates'")
    if isinstance(value, float) and not math.isfinite(value):
        raise doc.error(loc, f"covariate {key!r} is {value!r}; give a finite number, or leave it out when unknown")
    return value


def _cell(text: str, path: Path, line: int, column: str, outcome: bool) -> Any:
    """A design table's cell: empty -> None, numbers -> int/float, true/false -> bool, else the text."""
    t = text.strip()
    if not t:
        return None
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        v = float(t)
        if math.isfinite(v):
            return v
    except ValueError:
        pass
    if outcome:
        raise StudyError(f"{path}:{line}: {column}: outcome must be a number (a survival time, a response) or "
                         f"true/false / 0/1 (an event), got {t!r}; fix the cell or list the column as a covariate")
    return t


def _read_design_table(doc: _Doc, loc: tuple, path: Path, id_column: str,
                       outcomes: tuple[str, ...]) -> tuple[list[str], dict[str, tuple[int, dict[str, Any]]]]:
    """The rows of a design CSV by subject id: ``(line, {column: value})``, with its columns (id excluded)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise StudyError(f"{path}:1: the design table is empty; write a header line ({id_column},group,...) "
                                 "and one row per subject")
            header = [h.strip() for h in header]
            if id_column not in header:
                raise doc.error(loc + ("id",), f"{path.name} has no column {id_column!r} (columns: {header}); name "
                                "its subject id column with covariates.id")
            seen_cols = set()
            for h in header:
                if h in seen_cols:
                    raise StudyError(f"{path}:1: column {h!r} appears twice; give each column once")
                seen_cols.add(h)
                if h != id_column:
                    if not h:
                        raise StudyError(f"{path}:1: a column has no name; name every column")
                    if h in _RESERVED_DESIGN:
                        raise StudyError(f"{path}:1: column {h!r} is a column of the results table the design is "
                                         "joined to; rename it")
            missing_outcomes = [o for o in outcomes if o not in header]
            if missing_outcomes:
                raise doc.error(("outcomes",), f"outcome(s) {missing_outcomes} are not columns of {path.name} "
                                f"(columns: {header}); fix the names")
            idx = header.index(id_column)
            rows: dict[str, tuple[int, dict[str, Any]]] = {}
            for rec in reader:
                line = reader.line_num
                if not any(c.strip() for c in rec):
                    continue
                if len(rec) != len(header):
                    raise StudyError(f"{path}:{line}: {len(rec)} cells but the header has {len(header)} columns; "
                                     "quote cells that contain commas")
                sid = rec[idx].strip()
                if not sid:
                    raise StudyError(f"{path}:{line}: {id_column}: empty subject id; give every row its subject")
                if sid in rows:
                    raise StudyError(f"{path}:{line}: {id_column}: subject {sid!r} repeats line {rows[sid][0]}; "
                                     "give one row per subject")
                rows[sid] = (line, {h: _cell(c, path, line, h, h in outcomes)
                                    for h, c in zip(header, rec) if h != id_column})
    except UnicodeDecodeError as exc:
        raise StudyError(f"{path}: not UTF-8 text ({exc.reason}); save the design table as UTF-8 CSV") from None
    except csv.Error as exc:
        raise StudyError(f"{path}: not a readable CSV table ({exc}); save it as comma-separated values") from None
    return [h for h in header if h != id_column], rows


def _parse_design(doc: _Doc, top: dict, raw_subjects: list, subjects: list[SubjectSpec], check: bool) -> Design:
    """Covariates and outcomes per subject: from ``covariates: {file, id}`` (a CSV) and each subject's own fields.

    Every subject must have a row in the table and every row must name a subject; a value given both
    in the table and under the subject must agree; outcomes are numbers (or true/false events).
    """
    outcomes_raw = top.get("outcomes")
    outcome_names: list[str] = []
    if outcomes_raw is not None:
        if not isinstance(outcomes_raw, list):
            raise doc.error(("outcomes",), "outcomes must be a list of the design table's outcome columns, e.g. "
                            "[response, pfs_days, progressed]")
        outcome_names = [_design_key(doc, _string(doc, v, ("outcomes", i), "outcome"), ("outcomes", i), "outcome")
                         for i, v in enumerate(outcomes_raw)]
    values: dict[str, dict[str, Any]] = {s.id: {} for s in subjects}
    covariates: list[str] = []
    sources: list[str] = []
    table_rows: dict[str, tuple[int, dict[str, Any]]] = {}
    table_path: Path | None = None
    if top.get("covariates") is not None:
        loc = ("covariates",)
        spec = _check_fields(doc, top["covariates"], loc, _DESIGN_FILE_FIELDS, "covariates table")
        if "file" not in spec:
            raise doc.error(loc, "covariates needs 'file' (a CSV table with one row per subject) and optionally 'id' "
                            "(its subject id column, default 'subject')")
        id_column = _string(doc, spec.get("id", "subject"), loc + ("id",), "id")
        table_path = _path(doc, spec["file"], loc + ("file",), "", check)
        if table_path.exists():
            columns, table_rows = _read_design_table(doc, loc, table_path, id_column, tuple(outcome_names))
            covariates += [c for c in columns if c not in outcome_names]
            missing = [s.id for s in subjects if s.id not in table_rows]
            if missing:
                raise doc.error(loc + ("file",), f"{table_path.name} has no row for subject(s) {missing}; add one "
                                f"row per subject ({id_column} column)")
            ids = {s.id for s in subjects}
            for sid, (line, row) in table_rows.items():
                if sid not in ids:
                    raise StudyError(f"{table_path}:{line}: {id_column}: {sid!r} is not a subject of the study "
                                     f"(subjects: {sorted(ids)[:20]}); fix the id or remove the row")
                values[sid].update(row)
            sources.append(str(table_path))
    elif outcome_names and not any(isinstance(r, Mapping) and r.get("outcomes") for r in raw_subjects):
        raise doc.error(("outcomes",), "outcomes name columns of the covariates table; add 'covariates: {file: "
                        "design.csv}' or give each subject 'outcomes: {...}'")
    for i, raw in enumerate(raw_subjects):
        sid = subjects[i].id
        for field_name, outcome in (("covariates", False), ("outcomes", True)):
            own = raw.get(field_name) if isinstance(raw, Mapping) else None
            if own is None:
                continue
            floc = ("subjects", i, field_name)
            if not isinstance(own, Mapping):
                raise doc.error(floc, f"{field_name} must map names to values, e.g. "
                                + ("{group: treated, dose_mg_kg: 5}" if not outcome else "{response: 0.4, pfs_days: 120, "
                                                                                          "progressed: true}"))
            for key, value in own.items():
                kloc = floc + (key,)
                name = _design_key(doc, key, kloc, "outcome" if outcome else "covariate")
                v = _design_value(doc, value, kloc, name, outcome or name in outcome_names)
                if name in table_rows.get(sid, (0, {}))[1]:
                    t = table_rows[sid][1][name]
                    if t is not None and t != v:
                        raise doc.error(kloc, f"{name} = {v!r} here but {t!r} in {table_path} line "
                                        f"{table_rows[sid][0]}; give one value")
                values[sid][name] = v
                target = outcome_names if outcome else covariates
                if name not in covariates and name not in outcome_names:
                    target.append(name)
    if any(r.get("covariates") or r.get("outcomes") for r in raw_subjects if isinstance(r, Mapping)):
        sources.append(str(doc.path))
    return Design(values={sid: v for sid, v in values.items()}, covariates=tuple(covariates),
                  outcomes=tuple(outcome_names), source="; ".join(sources))


_REPORT_FIELDS = ("mode", "templates", "downloads", "by", "test", "correction", "metrics", "outcome", "method",
                  "survival", "repeated", "lesions", "heatmap")
_LESION_REPORT_FIELDS = ("mask", "metric", "reference", "threshold", "ratio", "map", "concordance")
_SURVIVAL_FIELDS = ("duration", "event", "covariates", "by", "metric")


def _parse_report(doc: _Doc, value: Any) -> dict[str, Any]:
    """The report's options: how it is written (mode, templates, downloads) and which statistics it shows."""
    loc = ("report",)
    if value is None:
        return {}
    d = _check_fields(doc, value, loc, _REPORT_FIELDS, "report")
    if "mode" in d:
        _choice(doc, d["mode"], loc + ("mode",), ("inline", "folder"), "report mode")
    if "downloads" in d:
        _flag(doc, d["downloads"], loc + ("downloads",), "downloads")
    if "templates" in d:
        folder = Path(_string(doc, d["templates"], loc + ("templates",), "templates")).expanduser()
        if not folder.is_absolute():
            folder = doc.path.parent / folder
        if not folder.is_dir():
            raise doc.error(loc + ("templates",), f"templates folder not found: {folder}; give a folder of Jinja2 "
                            "templates (e.g. a copy of multiscale/pipeline/templates/style.css) beside the study file")
    if "test" in d:
        _choice(doc, d["test"], loc + ("test",), ("welch", "mannwhitney"), "test")
    if "method" in d:
        _choice(doc, d["method"], loc + ("method",), ("pearson", "spearman"), "correlation method")
    if "correction" in d:
        _choice(doc, d["correction"], loc + ("correction",), ("holm", "bonferroni", "fdr_bh", "fdr_by", "hommel",
                                                              "none"), "correction")
    for key in ("by", "outcome", "repeated"):
        if key in d and not (key == "repeated" and isinstance(d[key], list)):  # nested units: [animal, tumour]
            _string(doc, d[key], loc + (key,), key)
    if isinstance(d.get("repeated"), list):
        _string_list(doc, d["repeated"], loc + ("repeated",), "repeated")
    if "heatmap" in d:
        _choice(doc, d["heatmap"], loc + ("heatmap",), ("paged", "clustered"), "heatmap")
    if "metrics" in d:
        _string_list(doc, d["metrics"], loc + ("metrics",), "metrics")
    if "survival" in d:
        sv = _check_fields(doc, d["survival"], loc + ("survival",), _SURVIVAL_FIELDS, "survival")
        for key in ("duration", "event"):
            if key not in sv:
                raise doc.error(loc + ("survival",), f"survival needs '{key}' (design columns: duration, event; "
                                "optionally covariates: [...] for a Cox model)")
        _string_list(doc, sv.get("covariates"), loc + ("survival", "covariates"), "covariates")
    if "lesions" in d:
        lv = _check_fields(doc, d["lesions"], loc + ("lesions",), _LESION_REPORT_FIELDS, "lesions")
        if "mask" not in lv:
            raise doc.error(loc + ("lesions",), "lesions needs 'mask' (a mask with labels: true) and 'reference' (a "
                            "region, e.g. blood) or 'threshold' (a value)")
        if ("reference" in lv) == ("threshold" in lv):
            raise doc.error(loc + ("lesions",), "give lesions either 'reference' (a region) or 'threshold' (a value)")
        _number(doc, lv.get("threshold"), loc + ("lesions", "threshold"), "threshold")
        _number(doc, lv.get("ratio"), loc + ("lesions", "ratio"), "ratio", 0.0)
        pair = _string_list(doc, lv.get("concordance"), loc + ("lesions", "concordance"), "concordance")
        if pair and len(pair) != 2:
            raise doc.error(loc + ("lesions", "concordance"), "concordance names two maps (tracers), e.g. [pet, her2]")
    return dict(d)


def load_study(path: str | Path, check_files: bool = True) -> Study:
    """Read and validate a study file.

    Parameters
    ----------
    path : str or Path
        The YAML study file.
    check_files : bool
        Check that every input file exists (``multiscale validate`` does).

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        With ``file:line: field: problem; fix`` for malformed YAML, unknown or missing fields,
        unknown modalities, missing files, a disconnected registration graph or analyses that
        refer to unknown maps or masks.

    Examples
    --------
    >>> study = load_study("example_datasets/study.yaml", check_files=False)  # doctest: +SKIP
    >>> [s.id for s in study.subjects]  # doctest: +SKIP
    ['mouse01']
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise StudyError(f"{path}: study file not found; give the path to a YAML study file")
    size = path.stat().st_size
    if size > MAX_STUDY_BYTES:
        raise StudyError(f"{path}: the study file has {size} bytes (at most {MAX_STUDY_BYTES}); a study file "
                         "lists subjects and analyses, not data: give the path of the YAML study file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise StudyError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the study file "
                         "as UTF-8") from None
    doc = _Doc(path, text)
    top = _check_fields(doc, doc.data if doc.data is not None else {}, (), _TOP_FIELDS, "study")
    defaults = _check_fields(doc, top.get("defaults") or {}, ("defaults",), _DEFAULT_FIELDS, "defaults")
    raw_subjects = top.get("subjects")
    if not raw_subjects:
        raise doc.error(("subjects",) if "subjects" in top else (), "the study has no subjects; add 'subjects: [{id: ...}]'")
    if not isinstance(raw_subjects, list):
        raise doc.error(("subjects",), f"subjects must be a list, got {_kind(raw_subjects)}")
    subjects: list[SubjectSpec] = []
    for i, raw in enumerate(raw_subjects):
        s = _parse_subject(doc, raw, ("subjects", i), defaults, check_files)
        if any(o.id == s.id for o in subjects):
            raise doc.error(("subjects", i, "id"), f"subject id {s.id!r} appears twice; ids must be unique")
        subjects.append(s)
    _unique(doc, [(s.id, ("subjects", i, "id")) for i, s in enumerate(subjects)], "subject id")
    raw_analyses = top.get("analyses") or []
    if not isinstance(raw_analyses, list):
        raise doc.error(("analyses",), f"analyses must be a list, got {_kind(raw_analyses)}")
    analyses: list[AnalysisSpec] = []
    for i, raw in enumerate(raw_analyses):
        a = _parse_analysis(doc, raw, ("analyses", i), i)
        if any(o.name == a.name for o in analyses):
            raise doc.error(("analyses", i, "name"), f"analysis name {a.name!r} appears twice; give each a unique name")
        for s in subjects:
            _check_analysis_refs(doc, a, i, s)
        analyses.append(a)
    _unique(doc, [(a.name, ("analyses", i, "name")) for i, a in enumerate(analyses)], "analysis name")
    out_text = _string(doc, top.get("output"), ("output",), "output", required=False) or "results"
    output = Path(out_text).expanduser()
    if not output.is_absolute():
        output = (path.parent / output).resolve()
    report = _parse_report(doc, top.get("report"))
    name = _string(doc, top.get("name"), ("name",), "name", required=False) or path.stem
    design = _parse_design(doc, top, raw_subjects, subjects, check_files)
    columns = set(design.columns)
    if columns:
        for key, rloc in [(k, ("report", k)) for k in ("by", "outcome", "repeated")] + \
                [(k, ("report", "survival", k)) for k in ("duration", "event", "by")]:
            given = (report.get(key) if rloc[1] == key else (report.get("survival") or {}).get(key))
            for col in (given if isinstance(given, list) else [given]):  # repeated: [animal, tumour]
                if col is not None and str(col) not in columns:
                    close = difflib.get_close_matches(str(col), sorted(columns), n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise doc.error(rloc, f"{col!r} is not a column of the study design; {hint}columns are "
                                    f"{sorted(columns)}")
    study = Study(path, name, output, tuple(subjects), tuple(analyses), report, text, design)
    try:
        check_output(study, output)
    except StudyError as exc:
        raise StudyError(f"{path}:{doc.line(('output',))}: output: {exc}") from None
    return study


def check_output(study: Study, output: str | Path) -> None:
    """Refuse an output folder whose subject folders would hold input files.

    A subject's outputs replace ``<output>/subjects/<id>`` as a whole
    (:func:`multiscale.pipeline.outputs.subject_folder`), so an input file inside it would be
    deleted by the run. :func:`load_study` checks the study's own ``output``; a run with another
    output folder (``multiscale run --output``) should check that one too.

    Raises
    ------
    StudyError
        Naming the input file and the subject folder that contains it.
    """
    from .outputs import subject_folder  # outputs imports the steps: only when checking

    out = Path(output).expanduser().resolve()
    folders = [subject_folder(out, s.id) for s in study.subjects]
    for s in study.subjects:
        for f in s.input_files():
            f = Path(f).expanduser().resolve()
            for folder in folders:
                if f == folder or folder in f.parents:
                    raise StudyError(f"input file {f} of subject {s.id!r} lies in {folder}, which the run replaces "
                                     "with its outputs (and so would delete); choose another output folder")


def check_channels(study: Study) -> None:
    """Check that every ``image:channel`` the study names exists in the image's file.

    Opens each image that is referred to with a channel and has no ``targets`` (MSI targets are
    checked at parse time) through :func:`multiscale.io.info.describe`, lazily where the reader
    allows, so ``multiscale validate`` catches a misspelt dye before a run.

    Raises
    ------
    StudyError
        ``file:line: map 'fluo:dapi': <image file> has channels [...]; fix the channel name``.
    """
    cache: dict[Path, list[str] | None] = {}

    def channels_of(spec: ImageSpec) -> list[str] | None:
        if spec.path not in cache:
            try:
                ch = describe(spec.path, **spec.load_options()).get("channels")
            except Exception as exc:  # noqa: BLE001 - any reader error is reported with the line
                raise StudyError(f"{study.path}:{spec.line}: image {spec.key!r}: cannot read {spec.path}: {exc}") from None
            cache[spec.path] = [str(c) for c in ch] if ch is not None else None
        return cache[spec.path]

    def check(name: str, subject: SubjectSpec, line: int, where: str) -> None:
        image, channel = parse_map_name(name)
        spec = subject.images.get(image)
        if channel is None or spec is None or spec.targets:
            return
        names = channels_of(spec)
        if names is None:
            raise StudyError(f"{study.path}:{line}: {where}: map {name!r}: {spec.path} has no channels; "
                             f"refer to it as {image!r}")
        if channel in names:
            return
        try:
            mz = float(channel)
            if any(abs(float(c) - mz) <= 0.01 for c in names):
                return
        except ValueError:
            pass
        raise StudyError(f"{study.path}:{line}: {where}: map {name!r}: {spec.path} has channels {names}; "
                         "fix the channel name")

    for subject in study.subjects:
        for e in subject.edges:
            for name in (e.moving, e.fixed):
                check(name, subject, e.line, f"registration {e.name}")
        for a in study.analyses:
            for name in list(a.maps) + [m for p in a.pairs for m in p]:
                check(name, subject, a.line, f"analysis {a.name}")
