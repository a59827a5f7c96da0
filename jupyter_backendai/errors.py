"""The error hierarchy of the whole package, each error carrying its HTTP status.

The classes live in :mod:`jupyter_backendai.core.errors`, where the pure rules of ``core`` may
import them (``core`` imports nothing above it); this module is the same hierarchy under the
name a reader looks for first. See there for what each kind means.
"""

# The names are listed once, in core.errors.__all__; this module passes all of them on.
from .core.errors import *  # noqa: F403
from .core.errors import __all__ as __all__
