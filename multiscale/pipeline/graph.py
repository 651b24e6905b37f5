"""The registration graph of a subject: edges moving -> fixed, resolved into chains per reference frame.

Each image is registered at most once (one outgoing edge); following edges from any image
must reach a *reference* image, whose grid is the frame every map of that part of the graph is
resampled into. A chain ``a -> b -> ref`` is composed into one transform so that ``a`` is
resampled once, never twice.

Directions follow SimpleITK: the transform of edge ``moving -> fixed`` maps points of the fixed
frame to the moving frame; the chain's transform maps reference points to ``a``'s frame and is
``T(a->b) o T(b->ref)`` (apply ``T(b->ref)`` first).
"""

from __future__ import annotations

from typing import Any

from multiscale.errors import StudyError

from .spec import EdgeSpec, SubjectSpec, parse_map_name

__all__ = ["check_graph", "frames_of", "chain_to_reference", "references_of", "linked_names", "mask_frames"]


def _err(doc: Any, loc: tuple, subject: SubjectSpec, message: str) -> StudyError:
    if doc is not None:
        return doc.error(loc, message)
    return StudyError(f"subject {subject.id!r}: {message}")


def references_of(subject: SubjectSpec) -> tuple[str, ...]:
    """The subject's reference images: as listed, or the single image that is never moved.

    Examples
    --------
    >>> from multiscale.pipeline.spec import SubjectSpec, ImageSpec, EdgeSpec
    >>> from pathlib import Path
    >>> im = {k: ImageSpec(k, Path(k), "MR") for k in ("mri", "pet")}
    >>> s = SubjectSpec("m1", im, {}, (EdgeSpec("pet", "mri"),), ())
    >>> references_of(s)
    ('mri',)
    """
    if subject.references:
        return tuple(subject.references)
    moved = {e.moving_image for e in subject.edges}
    roots = tuple(k for k in subject.images if k not in moved)
    return roots[:1] if len(roots) == 1 else ()


def check_graph(subject: SubjectSpec, doc: Any = None, ref_loc: tuple = ("reference",),
                edges_loc: tuple = ("registration",)) -> None:
    """Check that the registration graph connects every image to exactly one reference.

    Raises
    ------
    StudyError
        Unknown images in edges or references, an image moved twice, a moved reference, a
        cycle, or an image that reaches no reference.
    """
    images = subject.images
    refs = references_of(subject)
    if not refs:
        moved = {e.moving_image for e in subject.edges}
        roots = sorted(k for k in images if k not in moved)
        raise _err(doc, ref_loc, subject,
                   f"no reference frame for subject {subject.id!r}: images {roots} are never moved; "
                   "name the reference(s) with 'reference: <image>' or register the others to one")
    for r in refs:
        if r not in images:
            raise _err(doc, ref_loc, subject, f"reference {r!r} is not an image of subject {subject.id!r}; "
                       f"images are {sorted(images)}")
    outgoing: dict[str, EdgeSpec] = {}
    for i, e in enumerate(subject.edges):
        loc = edges_loc + (i,)
        for end, name in (("moving", e.moving_image), ("fixed", e.fixed_image)):
            if name not in images:
                raise _err(doc, loc + (end,), subject,
                           f"{end} image {name!r} is not an image of subject {subject.id!r}; images are {sorted(images)}")
        if e.moving_image == e.fixed_image:
            raise _err(doc, loc, subject, f"edge registers {e.moving_image!r} to itself; remove it")
        if e.moving_image in refs:
            raise _err(doc, loc + ("moving",), subject,
                       f"{e.moving_image!r} is a reference frame and cannot be moved; drop it from 'reference' "
                       "or remove this edge")
        if e.moving_image in outgoing:
            raise _err(doc, loc + ("moving",), subject,
                       f"{e.moving_image!r} is registered twice (also at line {outgoing[e.moving_image].line}); "
                       "each image moves once, chain through another image instead")
        outgoing[e.moving_image] = e
    for image in images:
        chain_to_reference(subject, image, _outgoing=outgoing, _refs=refs, _doc=doc, _edges_loc=edges_loc)


def chain_to_reference(subject: SubjectSpec, image: str, *, _outgoing: dict | None = None,
                       _refs: tuple | None = None, _doc: Any = None,
                       _edges_loc: tuple = ("registration",)) -> list[EdgeSpec]:
    """The edges from ``image`` to its reference, in the order they are followed.

    Empty for a reference image. The composed transform applies the last edge first.

    Examples
    --------
    >>> from multiscale.pipeline.spec import SubjectSpec, ImageSpec, EdgeSpec
    >>> from pathlib import Path
    >>> im = {k: ImageSpec(k, Path(k), "MR") for k in ("a", "b", "ref")}
    >>> s = SubjectSpec("m1", im, {}, (EdgeSpec("a", "b"), EdgeSpec("b", "ref")), ("ref",))
    >>> [e.name for e in chain_to_reference(s, "a")]
    ['a_to_b', 'b_to_ref']
    """
    outgoing = _outgoing if _outgoing is not None else {e.moving_image: e for e in subject.edges}
    refs = _refs if _refs is not None else references_of(subject)
    chain: list[EdgeSpec] = []
    seen = [image]
    current = image
    while current not in refs:
        if current not in outgoing:
            loc = ("subjects",)
            raise _err(_doc, loc, subject,
                       f"image {image!r} is not connected to a reference frame ({', '.join(refs)}): "
                       f"{current!r} has no registration edge; add '- {{moving: {current}, fixed: <image>}}' "
                       "under registration or list it in reference")
        edge = outgoing[current]
        chain.append(edge)
        current = edge.fixed_image
        if current in seen:
            idx = list(subject.edges).index(edge)
            raise _err(_doc, _edges_loc + (idx,), subject,
                       f"registration edges form a cycle {' -> '.join(seen + [current])}; break it")
        seen.append(current)
    return chain


def frames_of(subject: SubjectSpec) -> dict[str, str]:
    """Map each image key to the reference image whose frame it ends up in.

    Examples
    --------
    >>> from multiscale.pipeline.spec import SubjectSpec, ImageSpec, EdgeSpec
    >>> from pathlib import Path
    >>> im = {k: ImageSpec(k, Path(k), "MR") for k in ("mri", "pet", "fluo", "msi")}
    >>> s = SubjectSpec("m1", im, {}, (EdgeSpec("pet", "mri"), EdgeSpec("msi", "fluo")), ("mri", "fluo"))
    >>> frames_of(s)["msi"]
    'fluo'
    """
    out = {}
    for image in subject.images:
        chain = chain_to_reference(subject, image)
        out[image] = chain[-1].fixed_image if chain else image
    for name, (_, _, section_frame) in linked_names(subject).items():
        out[name] = section_frame
    return out


def linked_names(subject: SubjectSpec) -> dict[str, tuple[str, str, str]]:
    """Maps and masks a section link brings into a section's frame: ``name -> (kind, source, section frame)``.

    Every image and mask of a linked volume's frame appears as ``<name>@<section frame>`` (kind
    ``"map"`` or ``"mask"``).

    Examples
    --------
    >>> from multiscale.pipeline.spec import SubjectSpec, ImageSpec, MaskSpec, SectionSpec
    >>> from pathlib import Path
    >>> im = {k: ImageSpec(k, Path(k), "MR") for k in ("mri", "fluo")}
    >>> s = SubjectSpec("m1", im, {"tumour": MaskSpec("tumour", Path("t"), "mri")}, (), ("mri", "fluo"),
    ...                 sections=(SectionSpec("fluo", "tumour", z_mm=1.0),))
    >>> linked_names(s)
    {'mri@fluo': ('map', 'mri', 'fluo'), 'tumour@fluo': ('mask', 'tumour', 'fluo')}
    """
    if not subject.sections:
        return {}
    base = {}
    for image in subject.images:
        chain = chain_to_reference(subject, image)
        base[image] = chain[-1].fixed_image if chain else image
    out: dict[str, tuple[str, str, str]] = {}
    for link in subject.sections:
        volume = parse_map_name(link.volume)[0]
        if link.section_image not in base or (volume not in subject.masks and volume not in base):
            continue  # an unknown name: the study parser reports it with its line
        section_frame = base[link.section_image]
        volume_frame = base[subject.masks[volume].on] if volume in subject.masks else base[volume]
        for image, frame in base.items():
            if frame == volume_frame:
                out[f"{image}@{section_frame}"] = ("map", image, section_frame)
        for mask, spec in subject.masks.items():
            if base[spec.on] == volume_frame:
                out[f"{mask}@{section_frame}"] = ("mask", mask, section_frame)
    return out


def mask_frames(subject: SubjectSpec) -> dict[str, str]:
    """Map each mask (and each mask a section link brings) to the reference frame it ends up in."""
    frame = frames_of(subject)
    out = {k: frame[spec.on] for k, spec in subject.masks.items()}
    out.update({name: f for name, (kind, _, f) in linked_names(subject).items() if kind == "mask"})
    return out
