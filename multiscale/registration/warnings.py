"""The warning :func:`~multiscale.registration.register` issues when it cannot vouch for its result.

:class:`RegistrationWarning` sits beneath :class:`multiscale.errors.MultiscaleWarning`, so
``warnings.simplefilter("error", MultiscaleWarning)`` turns it into an error with the others.

Examples
--------
>>> from multiscale.errors import MultiscaleWarning, RegistrationWarning
>>> issubclass(RegistrationWarning, MultiscaleWarning)
True
"""

from __future__ import annotations

from multiscale.errors import MultiscaleWarning, RegistrationWarning

__all__ = ["RegistrationWarning", "MultiscaleWarning"]
