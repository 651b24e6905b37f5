"""The warning :func:`~multiscale.registration.register` issues when it cannot vouch for its result.

:class:`RegistrationWarning` sits beneath :class:`multiscale.errors.MultiscaleWarning`, so
``warnings.simplefilter("error", MultiscaleWarning)`` turns it into an error with the others.

Examples
--------
>>> from multiscale.errors import MultiscaleWarning
>>> issubclass(RegistrationWarning, MultiscaleWarning)
True
"""

from __future__ import annotations

from multiscale.errors import MultiscaleWarning

__all__ = ["RegistrationWarning"]


class RegistrationWarning(MultiscaleWarning):
    """A registration ended no better than its start, or its retained rotation/flip is ambiguous.

    The same text is in the result's ``info["warnings"]``; ``info["quality_check"]`` holds the
    before/after values it was decided on.
    """
