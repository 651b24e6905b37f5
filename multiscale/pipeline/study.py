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
      registration:
        - {moving: pet, fixed: mri, method: rigid}
        - {moving: "msi:haem", fixed: "fluorescence:vessels", method: affine}
      grids:                        # optional: analyse a frame on a coarser grid (here the MSI's pixel)
        fluorescence: {spacing: 0.075}
    subjects:
      - id: mouse01
      - id: mouse02
        images: {pet: {path: other/pet.nii.gz}}   # overrides one field of the default
    analyses:
      - {type: uptake, maps: [pet], masks: [tumour]}
      - {type: radial, maps: [pet], masks: [tumour], params: {shells: 5}}
      - {type: colocalisation, pairs: [["msi:doxorubicin", "fluorescence:nanoparticle dye"]]}

A *map* is an image key, or ``image:channel`` for one channel of a multichannel image (a dye
name, an MSI target name, or an m/z value).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from multiscale.analysis.families import FAMILIES, family_named
from multiscale.analysis.family import ParameterError
from multiscale.errors import StudyError
from multiscale.image import ASPECTS, MODALITIES
from multiscale.io.info import describe

from .graph import check_graph, frames_of, references_of
from .spec import AnalysisSpec, EdgeSpec, ImageSpec, MaskSpec, Study, SubjectSpec, parse_map_name

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

_TOP_FIELDS = ("name", "description", "output", "reference", "defaults", "subjects", "analyses", "report")
_DEFAULT_FIELDS = ("images", "masks", "registration", "reference", "grids")
_SUBJECT_FIELDS = ("id", "images", "masks", "registration", "reference", "grids")
_GRID_FIELDS = ("spacing", "smooth")
_IMAGE_FIELDS = ("path", "modality", "aspect", "agent", "units", "scale", "options", "targets")
_MASK_FIELDS = ("path", "on", "label", "options")
_EDGE_FIELDS = ("moving", "fixed", "method", "options", "transform", "truth", "landmarks")
_LANDMARK_FIELDS = ("fixed", "moving", "use")
_TRUTH_FIELDS = ("file", "key")
_ANALYSIS_FIELDS = ("type", "name", "maps", "masks", "pairs", "inputs", "params")




# ---------------------------------------------------------------------------------------------
# YAML with line numbers
# ---------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so ``on: mri`` and ``no: 3`` stay strings."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Doc:
    """The YAML document as python values plus the line of every node (by path)."""

    def __init__(self, path: Path, text: str):
        self.path = path
        try:
            loader = _Loader(text)
            try:
                node = loader.get_single_node()
                self.lines: dict[tuple[Any, ...], int] = {}
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

    def _walk(self, node: yaml.Node, loc: tuple[Any, ...]) -> None:
        self.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise StudyError(
                        f"{self.path}:{line}: {_dotted(loc + (key,))}: duplicate key (first at line "
                        f"{seen[key]}); remove one of them"
                    )
                seen[key] = line
                self._walk(value_node, loc + (key,))
                self.lines[loc + (key,)] = line
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, loc + (i,))

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
    return str(value)


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


def _parse_image(doc: _Doc, key: str, raw: Any, loc: tuple, subject: str, check: bool) -> ImageSpec:
    d = _check_fields(doc, raw, loc, _IMAGE_FIELDS, "image")
    if "path" not in d:
        raise doc.error(loc, f"image {key!r} has no path; add 'path: <file>'")
    targets_raw = d.get("targets") or {}
    if not isinstance(targets_raw, Mapping):
        raise doc.error(loc + ("targets",), "targets must map names to m/z values, e.g. {doxorubicin: 544.1813}")
    targets: dict[str, float] = {}
    for name, mz in targets_raw.items():
        if isinstance(mz, bool) or not isinstance(mz, (int, float)) or mz <= 0:
            raise doc.error(loc + ("targets", name), f"m/z of target {name!r} must be a positive number, got {mz!r}")
        targets[str(name)] = float(mz)
    options = _options(doc, d.get("options"), loc + ("options",), "options")
    if targets and "channels" in options:
        raise doc.error(loc + ("options", "channels"), "give the channels either as targets or as options.channels, "
                        "not both")
    return ImageSpec(
        key=key,
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
    return MaskSpec(
        key=key,
        path=_path(doc, d["path"], loc + ("path",), subject, check),
        on=_string(doc, d["on"], loc + ("on",), "on"),
        label=label,
        options=_options(doc, d.get("options"), loc + ("options",), "options"),
        line=doc.line(loc),
    )


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
    truth = None
    if d.get("truth") is not None:
        t = _check_fields(doc, d["truth"], loc + ("truth",), _TRUTH_FIELDS, "truth")
        if "file" not in t or "key" not in t:
            raise doc.error(loc + ("truth",), "truth needs 'file' (a JSON file) and 'key' (the transform's name)")
        truth = (
            _path(doc, t["file"], loc + ("truth", "file"), subject, check),
            _string(doc, t["key"], loc + ("truth", "key"), "truth key"),
        )
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
    )


def _parse_subject(doc: _Doc, raw: Any, loc: tuple, defaults: dict, check: bool) -> SubjectSpec:
    d = _check_fields(doc, raw, loc, _SUBJECT_FIELDS, "subject")
    if "id" not in d:
        raise doc.error(loc, "subject has no id; add 'id: <name>'")
    sid = _string(doc, d["id"], loc + ("id",), "id")
    if not sid or any(c in sid for c in "/\\:") or sid.startswith("."):
        raise doc.error(loc + ("id",), f"subject id {sid!r} must be a plain name usable as a folder name")

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
        if ":" in str(key):
            raise doc.error(images_loc + (key,), f"image name {key!r} must not contain ':'")
        own = isinstance(d.get("images"), Mapping) and key in d["images"]
        iloc = (loc + ("images", key)) if own else ("defaults", "images", key)
        images[str(key)] = _parse_image(doc, str(key), value, iloc, sid, check)

    masks_raw, masks_loc = section("masks", dict)
    masks = {}
    if masks_raw:
        if not isinstance(masks_raw, Mapping):
            raise doc.error(masks_loc, f"masks must map names to mask fields, got {_kind(masks_raw)}")
        for key, value in masks_raw.items():
            own = isinstance(d.get("masks"), Mapping) and key in d["masks"]
            mloc = (loc + ("masks", key)) if own else ("defaults", "masks", key)
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

    grids_raw, grids_loc = section("grids", dict)
    grids: dict[str, dict[str, Any]] = {}
    for frame, g in (grids_raw or {}).items():
        gloc = grids_loc + (frame,)
        g = _check_fields(doc, g, gloc, _GRID_FIELDS, "grid")
        sp = g.get("spacing")
        if isinstance(sp, bool) or not isinstance(sp, (int, float)) or sp <= 0:
            raise doc.error(gloc + ("spacing",), f"grid spacing must be a positive number of mm, got {sp!r}")
        smooth = g.get("smooth", True)
        if not isinstance(smooth, bool):
            raise doc.error(gloc + ("smooth",), f"smooth must be true or false, got {smooth!r}")
        grids[str(frame)] = {"spacing": float(sp), "smooth": smooth}
    subject = SubjectSpec(sid, images, masks, tuple(edges), references, line=doc.line(loc), grids=grids)
    for frame, _g in grids.items():
        if frame not in references_of(subject):
            raise doc.error(grids_loc + (frame,), f"grid for {frame!r}, which is not a reference frame "
                            f"({', '.join(references_of(subject))}); grids resample a reference frame")
    check_graph(subject, doc, ref_loc, edges_loc)
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
    params = _options(doc, d.get("params"), loc + ("params",), "params")
    try:
        family.check_params(params)
    except ParameterError as exc:
        raise doc.error(loc + ("params", exc.field), exc.message) from None
    return AnalysisSpec(
        type=kind,
        name=_string(doc, d.get("name"), loc + ("name",), "name", required=False) or f"{kind}{index}",
        maps=tuple(maps),
        masks=tuple(masks),
        pairs=tuple(pairs),
        params=params,
        line=doc.line(loc),
        inputs=extra,
    )


def _check_analysis_refs(doc: _Doc, analysis: AnalysisSpec, index: int, subject: SubjectSpec) -> None:
    loc = ("analyses", index)
    names = list(analysis.maps) + [m for p in analysis.pairs for m in p]
    for name in names:
        image, channel = parse_map_name(name)
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
        if mask not in subject.masks:
            raise doc.error(
                loc + ("masks",), f"unknown mask {mask!r} for subject {subject.id!r}; masks are {sorted(subject.masks)}"
            )
    frame = frames_of(subject)
    for role, name in analysis.inputs.items():
        if name in subject.masks:
            where = frame[subject.masks[name].on]
        else:
            image = parse_map_name(name)[0]
            if image not in subject.images:
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
        mframe = frame[subject.masks[mask].on]
        for name in names:
            if frame[parse_map_name(name)[0]] != mframe:
                raise doc.error(
                    loc + ("masks",), f"mask {mask!r} lives in frame {mframe!r} but map {name!r} in frame "
                    f"{frame[parse_map_name(name)[0]]!r}; split this analysis by frame"
                )


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
    text = path.read_text(encoding="utf-8")
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
    out_text = _string(doc, top.get("output"), ("output",), "output", required=False) or "results"
    output = Path(out_text).expanduser()
    if not output.is_absolute():
        output = (path.parent / output).resolve()
    report = _options(doc, top.get("report"), ("report",), "report")
    name = _string(doc, top.get("name"), ("name",), "name", required=False) or path.stem
    return Study(path, name, output, tuple(subjects), tuple(analyses), report, text)


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
