"""The error hierarchy of the whole package, each error carrying its HTTP status.

The classes live in :mod:`jupyter_backendai.core.errors`, where the pure rules of ``core`` may
import them (``core`` imports nothing above it); this module is the same hierarchy under the
name a reader looks for first. See there for what each kind means.
"""

from .core.errors import BadRequest, Conflict, Error, Forbidden, NotFound, TooLarge, Unauthorized, Unavailable

__all__ = [
    "BadRequest",
    "Conflict",
    "Error",
    "Forbidden",
    "NotFound",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]
