"""Downloads with HTTP ``Range`` (RFC 9110 §14): parse the header, stream the bytes.

Only single ranges are served; a multi-range request gets the whole file, which RFC 9110
allows (a server may ignore ``Range``) and spares us ``multipart/byteranges``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import RangeNotSatisfiable, show_path
from .files import open_read
from .safepath import split_relpath

__all__ = ["content_range", "parse_range", "read_range"]

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a ``Range`` header on a file of ``size`` bytes.

    ``None`` means "send the whole file" (no header, or several ranges). ``bytes=0-99``,
    ``bytes=100-`` (to the end) and ``bytes=-50`` (the last 50) are understood; an end past
    the file is clamped. Anything malformed or outside the file raises
    :class:`RangeNotSatisfiable` (416, with ``size`` for ``Content-Range: bytes */size``).
    """
    if header is None or not header.strip():
        return None
    if "," in header and header.strip().lower().startswith("bytes"):
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        raise RangeNotSatisfiable(f"the Range header {header!r} is not understood", size=size)
    first, last = match.groups()
    if not first and not last:
        raise RangeNotSatisfiable(f"the Range header {header!r} names no bytes", size=size)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"the range {header!r} is empty for a file of {size} bytes", size=size)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        raise RangeNotSatisfiable(f"the range {header!r} ends before it starts", size=size)
    if start >= size:
        raise RangeNotSatisfiable(f"the range {header!r} starts past the end of a file of {size} bytes", size=size)
    return start, min(end, size - 1)


def content_range(start: int, end: int, size: int) -> str:
    """The ``Content-Range`` header value of a 206 answer."""
    return f"bytes {start}-{end}/{size}"


def read_range(
    folder: Path | str,
    relpath: str | PurePosixPath,
    start: int = 0,
    end: int | None = None,
    *,
    chunk_size: int = 1 << 16,
) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` (inclusive, as in HTTP; ``None``: to the end) of a file, in chunks.

    The file is opened (and checked: no link, regular) now, not at the first ``next()``, so
    errors surface before the response starts. If the file shrinks meanwhile, fewer bytes come.
    ``read_range(folder, path)`` of an empty file yields nothing rather than refusing.
    """
    f = open_read(folder, relpath)
    try:
        size = f.seek(0, 2)
        if end is None:
            end = max(size - 1, start)
        if size == 0 and start == 0:
            end = -1  # the whole of an empty file: nothing to send, nothing wrong
        elif start < 0 or end < start or start >= size:
            raise RangeNotSatisfiable(
                f"bytes {start}-{end} are outside {show_path(split_relpath(relpath))} ({size} bytes)", size=size
            )
        f.seek(start)
    except BaseException:
        f.close()
        raise
    return _chunks(f, min(end, size - 1) - start + 1, chunk_size)


def _chunks(f: BinaryIO, remaining: int, chunk_size: int) -> Iterator[bytes]:
    with f:
        while remaining > 0:
            chunk = f.read(min(chunk_size, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
