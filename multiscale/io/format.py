"""One file format: how to recognise it, read it, which options it takes, what else belongs with it.

Every format module of :mod:`multiscale.io` ends with ``FORMAT = Format(...)``; the ordered list
:data:`multiscale.io.formats.FORMATS` is what :func:`multiscale.io.load`, :func:`~multiscale.io.save`,
:func:`~multiscale.io.dispatch.sniff`, :func:`~multiscale.io.companions` and
:func:`multiscale.io.info.describe` loop over. Adding a format is one module plus one line there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Format", "no_companions", "HEAD_BYTES"]

#: how many bytes of a file :attr:`Format.sniff` sees
HEAD_BYTES = 4096


def no_companions(path: Path) -> list[Path]:
    """The default of :attr:`Format.companions`: nothing else belongs with ``path``.

    Examples
    --------
    >>> no_companions(Path("a.nii"))
    []
    """
    return []


@dataclass(frozen=True)
class Format:
    """A readable (and maybe writable) file format.

    Parameters
    ----------
    name : str
        Short name, returned by :func:`multiscale.io.dispatch.sniff` (``"nifti"``, ``"dicom-folder"``...).
    sniff : callable ``(head: bytes, path: Path) -> bool``
        True when the content is this format. ``head`` is the first :data:`HEAD_BYTES` bytes of a
        file, or ``b""`` for a folder. It must be cheap. It may raise
        :class:`~multiscale.errors.LoadError` when the content is clearly meant for this format but
        cannot be used (a corrupt gzip stream, an mzML without imaging terms), so that the message
        can be specific.
    read : callable ``(path, **options) -> image``
        Reads the file; receives only option names listed in ``options``.
    options : frozenset of str
        Option names ``read`` accepts; any other option given to ``load`` raises ``TypeError``.
    suffixes : tuple of str
        Usual suffixes, lower case (documentation; the content decides, not the suffix).
    description : str
        One line for the table of formats.
    companions : callable ``(path: Path) -> list[Path]``
        Other files that belong with ``path`` and exist (an imzML's ``.ibd``, a MetaImage header's
        data file). Default: none.
    write : callable ``(image, path, **options) -> Path``, optional
        Atomic writer, chosen by :func:`multiscale.io.save` from ``write_suffixes``.
    write_suffixes : tuple of str
        Suffixes (lower case) that select ``write``.
    channel_option : str, optional
        The native name of this format's channel selection (imzML: ``"mz"``): ``load(channels=...)``
        is passed to ``read`` under this name. Without it ``load`` reads the image and selects the
        channels by name from its ``c`` coord.
    masks : bool
        ``load(..., reference=img)`` may read this format as a label mask checked against (or,
        with ``resample=True``, resampled onto) the reference grid. Formats that take
        ``reference`` natively list it in ``options`` instead.
    summary : callable ``(path: Path) -> dict``, optional
        What :func:`multiscale.io.info.describe` reports when no ``reference=`` is given, for
        formats that have no grid of their own (RTSTRUCT contours).

    Examples
    --------
    >>> fmt = Format("text", sniff=lambda head, path: head.startswith(b"hello"), read=lambda path: None,
    ...              options=frozenset(), suffixes=(".txt",), description="greetings")
    >>> fmt.sniff(b"hello world", Path("a.txt")), fmt.companions(Path("a.txt"))
    (True, [])
    """

    name: str
    sniff: Callable[[bytes, Path], bool]
    read: Callable[..., Any]
    options: frozenset[str]
    suffixes: tuple[str, ...] = ()
    description: str = ""
    companions: Callable[[Path], list[Path]] = no_companions
    write: Callable[..., Path] | None = None
    write_suffixes: tuple[str, ...] = ()
    channel_option: str | None = None
    masks: bool = True
    summary: Callable[[Path], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"Format name must be a non-empty word, got {self.name!r}")
        if not isinstance(self.options, frozenset):
            object.__setattr__(self, "options", frozenset(self.options))
        for attr in ("suffixes", "write_suffixes"):
            vals = tuple(getattr(self, attr))
            if any(s != s.lower() or not s.startswith(".") for s in vals):
                raise ValueError(f"Format {self.name!r}: {attr} must be lower case and start with '.', got {vals}")
            object.__setattr__(self, attr, vals)
        if self.write_suffixes and self.write is None:
            raise ValueError(f"Format {self.name!r}: write_suffixes given without write")
        if self.channel_option is not None and self.channel_option not in self.options:
            raise ValueError(f"Format {self.name!r}: channel_option {self.channel_option!r} is not in options")

    def write_suffix_of(self, path: str | os.PathLike) -> str | None:
        """The longest of ``write_suffixes`` that the file name ends with, or None.

        Examples
        --------
        >>> fmt = Format("x", sniff=lambda h, p: False, read=lambda p: None, options=frozenset(),
        ...              write=lambda image, path: Path(path), write_suffixes=(".tif", ".ome.tif"))
        >>> fmt.write_suffix_of("a.OME.TIF"), fmt.write_suffix_of("a.png")
        ('.ome.tif', None)
        """
        name = Path(path).name.lower()
        hits = [s for s in self.write_suffixes if name.endswith(s)]
        return max(hits, key=len) if hits else None
