"""The environment variables a user may set for a session (``config.environ``, the forms' field).

One rule, used by the manager (``POST /session``), the hub's spawn form and the spawner
(``user_options``), so that all three refuse the same names with the same message:

* A name is a shell identifier (letters, digits, ``_``, not starting with a digit): anything
  else cannot be used from a shell and is most likely a typo.
* Names the product sets are refused, not silently overridden or dropped:
  :data:`OWNED_PREFIXES` (``JUPYTERHUB_*`` carry the hub's API token and the server's URLs,
  ``BACKENDAI_*`` the session's identity, ``NVIDIA_*`` are read by the GPU container runtime:
  ``NVIDIA_VISIBLE_DEVICES=all`` would hand out every GPU of the node, ``CUDA_MPS_*`` the GPU
  share's limits) and :data:`OWNED_NAMES` (the home and user, the hub's older token name, the
  variables of a Backend.AI secret key).
* Values are text without NUL and hold no private key (keys reach a session as files, never
  as environment, which anyone who may inspect the container reads).
* Bounds: :data:`MAX_VARIABLES` names, :data:`MAX_VALUE_BYTES` per value, :data:`MAX_TOTAL_BYTES`
  in all (the kernel's limit on a process's environment is not far above).

Pure: no I/O. :class:`EnvironError` is a ``ValueError`` whose message names the variable; the
callers answer it as a 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from . import errors

__all__ = [
    "FORBIDDEN_ENV",
    "MAX_TOTAL_BYTES",
    "MAX_VALUE_BYTES",
    "MAX_VARIABLES",
    "OWNED_NAMES",
    "OWNED_PREFIXES",
    "RESERVED_TEXT",
    "EnvironError",
    "check_environ",
    "is_owned",
    "parse_environ_lines",
]

#: Env names that would carry a Backend.AI secret key (the client reads ``BACKEND_SECRET_KEY``).
FORBIDDEN_ENV = frozenset({"BACKEND_SECRET_KEY", "BACKENDAI_SECRET_KEY"})
#: Prefixes of the names the product (hub, session, GPU runtime) sets.
OWNED_PREFIXES: tuple[str, ...] = ("JUPYTERHUB_", "BACKENDAI_", "NVIDIA_", "CUDA_MPS_")
#: Single names the product sets.
OWNED_NAMES = frozenset({"HOME", "USER", "JPY_API_TOKEN", "CUDA_DEVICE_ORDER"}) | FORBIDDEN_ENV

#: The reserved names as the forms and the refusals list them.
RESERVED_TEXT = ", ".join([*(p + "*" for p in OWNED_PREFIXES), *sorted(OWNED_NAMES)])

MAX_VARIABLES = 100
MAX_VALUE_BYTES = 32 * 1024
MAX_TOTAL_BYTES = 64 * 1024

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRIVATE_KEY_MARK = "PRIVATE KEY-----"


class EnvironError(errors.BadRequest, ValueError):
    """A user's environment variable that a session cannot get; the message names it and why."""


def is_owned(name: str) -> bool:
    """Whether the product sets ``name`` (so a user may not)."""
    upper = name.upper()
    return upper in OWNED_NAMES or upper.startswith(OWNED_PREFIXES)


def check_environ(environ: object) -> dict[str, str]:
    """Return ``environ`` as a plain ``{name: value}`` dict if a user may set it, else raise.

    Names are compared case-insensitively against the owned ones (``jupyterhub_api_token`` is
    refused too: Windows-minded tools and some shells fold case).
    """
    if environ is None:
        return {}
    if not isinstance(environ, Mapping):
        raise EnvironError(f"the environment must be an object of name to value, not {type(environ).__name__}")
    if len(environ) > MAX_VARIABLES:
        raise EnvironError(f"at most {MAX_VARIABLES} environment variables, not {len(environ)}")
    out: dict[str, str] = {}
    total = 0
    for name, value in environ.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise EnvironError(
                f"environment variable name {name!r} is not valid: letters, digits and '_', not starting with a digit"
            )
        if is_owned(name):
            raise EnvironError(
                f"environment variable {name} is set by the product and cannot be changed (reserved: {RESERVED_TEXT})"
            )
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise EnvironError(f"environment variable {name} must be text, not {type(value).__name__}")
        value = str(value)
        if "\x00" in value:
            raise EnvironError(f"environment variable {name} contains a NUL character")
        if _PRIVATE_KEY_MARK in value:
            raise EnvironError(f"environment variable {name} holds a private key: put keys into a folder instead")
        size = len(value.encode())
        if size > MAX_VALUE_BYTES:
            raise EnvironError(f"environment variable {name} is {size} bytes long, at most {MAX_VALUE_BYTES}")
        total += size + len(name) + 2
        if total > MAX_TOTAL_BYTES:
            raise EnvironError(f"the environment variables are larger than {MAX_TOTAL_BYTES} bytes in all")
        out[name] = value
    return out


def parse_environ_lines(text: str) -> dict[str, str]:
    """``KEY=value`` lines (a form's text field) → a checked dict (:func:`check_environ`).

    Blank lines and lines starting with ``#`` are skipped; white space around the name is
    dropped, the value is kept as written (after the first ``=``, without the line end). A
    line without ``=`` or a name given twice is refused, naming the line.
    """
    if not isinstance(text, str):
        raise EnvironError("the environment must be text of KEY=value lines")
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name:
            raise EnvironError(f"environment line {number} {line.strip()[:40]!r} is not KEY=value")
        if name in found:
            raise EnvironError(f"environment variable {name} is given twice (line {number})")
        found[name] = value
    return check_environ(found)
