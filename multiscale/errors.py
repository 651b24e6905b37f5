"""Every error and warning multiscale raises, beneath one base class.

Catch :class:`MultiscaleError` to handle anything the library refuses, or a family beneath it
(:class:`LoadError`, :class:`RegistrationError`, :class:`AnalysisError`, ...) to be specific.
Every error is also a :class:`ValueError`, as it was before this module existed, so existing
``except ValueError`` code keeps working. Messages name the file (or object), the field and
the fix; context added on the way up (which study, subject, step) is attached with
:meth:`BaseException.add_note`, never by rebuilding the exception, so its type and attributes
survive.

::

    MultiscaleError
    ├── ImageError               the image object: geometry, dims, coords
    ├── LoadError                a file cannot become an image
    │   ├── ImzMLError           imzML / .ibd
    │   └── SUVError             PET SUV from DICOM headers
    ├── RegistrationError        a registration cannot be set up or run
    │   └── TransformError       transform files, composition, inversion
    ├── AnalysisError            an analysis cannot give a meaningful number
    │   ├── RoiError             texture: the mask cannot be used with the image
    │   └── TextureSettingsError texture: unknown or inconsistent settings
    └── StudyError               a study file is malformed (``file:line: field: problem; fix``)

    MultiscaleWarning
    ├── CalibrationWarning       no physical calibration in a file
    ├── ImzMLWarning             a recoverable imzML problem
    ├── RegistrationWarning      a registration no better than its start, or an ambiguous pose
    └── AnalysisWarning          a result is NaN or was computed on part of the input
        └── TextureWarning

Examples
--------
>>> import multiscale
>>> issubclass(multiscale.errors.ImzMLError, multiscale.errors.LoadError)
True
>>> try:
...     raise multiscale.errors.SUVError("pet/1.dcm: PatientWeight: missing; pass weight=")
... except multiscale.MultiscaleError as exc:
...     print(type(exc).__name__)
SUVError
"""

from __future__ import annotations

__all__ = [
    "MultiscaleError",
    "MultiscaleWarning",
    "ImageError",
    "LoadError",
    "ImzMLError",
    "SUVError",
    "RegistrationError",
    "TransformError",
    "AnalysisError",
    "RoiError",
    "TextureSettingsError",
    "StudyError",
    "StatsError",
    "CalibrationWarning",
    "ImzMLWarning",
    "RegistrationWarning",
    "AnalysisWarning",
    "TextureWarning",
    "UnitsWarning",
    "KineticsWarning",
]


class MultiscaleError(ValueError):
    """Base of every error multiscale raises on purpose (bad input, impossible request)."""


class MultiscaleWarning(UserWarning):
    """Base of every warning multiscale issues (partly unusable data, assumptions made)."""


class ImageError(MultiscaleError):
    """Raised when an image's geometry or layout is invalid."""


class LoadError(MultiscaleError):
    """A file cannot be read into the image object; the message names the file, the field and the fix."""


class ImzMLError(LoadError):
    """An imzML/.ibd pair cannot be read; the message names the file, the field and the fix."""


class SUVError(LoadError):
    """SUV cannot be computed from the headers (missing or impossible tags)."""


class RegistrationError(MultiscaleError):
    """Raised when a registration cannot be set up from the inputs given."""


class TransformError(RegistrationError):
    """A transform cannot be read, written, composed or inverted."""


class AnalysisError(MultiscaleError):
    """Raised when an analysis input cannot give a meaningful answer (empty mask, wrong grid...)."""


class RoiError(AnalysisError):
    """Raised for a mask that cannot be used with the image (texture)."""


class TextureSettingsError(AnalysisError):
    """Raised for unknown or inconsistent texture settings."""


class StudyError(MultiscaleError):
    """A study file is malformed or refers to something that does not exist.

    The message starts with ``file:line:`` and names the field and the fix.
    """


class StatsError(MultiscaleError):
    """A statistics request cannot be answered from the table given (missing column, subject or design)."""


class CalibrationWarning(MultiscaleWarning):
    """A file carries no physical calibration; spacing 1 was used and ``attrs['spacing_known']`` is False."""


class ImzMLWarning(MultiscaleWarning):
    """A recoverable problem in an imzML/.ibd pair (UUID mismatch, missing pixel size, ...)."""


class RegistrationWarning(MultiscaleWarning):
    """A registration ended no better than its start, or its retained rotation/flip is ambiguous.

    The same text is in the result's ``info["warnings"]``; ``info["quality_check"]`` holds the
    before/after values it was decided on.
    """


class AnalysisWarning(MultiscaleWarning):
    """Warned when a result is NaN or was computed after dropping some input (NaN voxels...)."""


class UnitsWarning(AnalysisWarning):
    """An analysis got an image in units it does not expect (e.g. uptake metrics on an image that is not SUV)."""


class TextureWarning(AnalysisWarning):
    """Emitted when texture features are NaN or voxels were dropped."""


class KineticsWarning(AnalysisWarning):
    """Time-series analysis: negative concentrations, fits that did not converge (NaN + flag), missing frames."""
