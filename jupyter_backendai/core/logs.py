"""A session's kept output: how much of it stays, and how it reads back. Pure, no I/O.

The hub keeps the last ``keep`` bytes of what a session's container (or process) wrote to its
stdout and stderr, in chunks that arrive in order (``db.session_logs``). When a new chunk makes
the total exceed ``keep``, the oldest chunks go first and the oldest remaining one loses its
head: :func:`plan_trim` says how many and how much. The bytes that left are counted, so that
a reader knows the text no longer starts at the session's start (:func:`render`).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_KEEP_BYTES",
    "cap",
    "last_lines",
    "plan_trim",
    "render",
]

#: What a session keeps of its output unless configured (the last 10 MiB).
DEFAULT_KEEP_BYTES = 10 * 1024 * 1024


def plan_trim(sizes: list[int], keep: int) -> tuple[int, int]:
    """What to drop so that chunks of ``sizes`` (oldest first) hold at most ``keep`` bytes.

    Returns ``(whole, cut)``: drop the ``whole`` oldest chunks, then the first ``cut`` bytes
    of the next one. ``(0, 0)`` when they fit already.
    """
    if keep < 0:
        raise ValueError("keep must be 0 or more bytes")
    excess = sum(sizes) - keep
    whole = 0
    while excess > 0 and whole < len(sizes) and sizes[whole] <= excess:
        excess -= sizes[whole]
        whole += 1
    return whole, max(excess, 0)


def cap(data: bytes, keep: int) -> tuple[bytes, int]:
    """The last ``keep`` bytes of ``data`` and how many went before them."""
    if len(data) <= keep:
        return data, 0
    dropped = len(data) - keep
    return data[dropped:], dropped


class OutputTail:
    """What a follower of a session's output holds until it is stored: at most the last ``keep``
    bytes (plus one more ``keep`` between trims, so that a trim is not paid on every chunk), and
    how many went before them."""

    def __init__(self, keep: int):
        self.keep = keep
        self._chunks: list[bytes] = []
        self._size = 0
        self._dropped = 0

    def add(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > 2 * self.keep:
            data, dropped = cap(b"".join(self._chunks), self.keep)
            self._chunks, self._size = [data], len(data)
            self._dropped += dropped

    def __len__(self) -> int:
        return self._size

    def take(self) -> tuple[bytes, int]:
        """What came since the last take, and how many bytes of it were dropped; then empty."""
        data, dropped = b"".join(self._chunks), self._dropped
        self._chunks, self._size, self._dropped = [], 0, 0
        return data, dropped


def render(data: bytes, dropped: int = 0) -> str:
    """The kept bytes as text (UTF-8, undecodable bytes replaced).

    When older output was dropped the kept bytes may begin inside a line (or inside a
    character): that partial first line is left out, unless it is all there is.
    """
    if dropped and b"\n" in data[:-1]:
        data = data[data.index(b"\n") + 1 :]
    return data.decode("utf-8", errors="replace")


def last_lines(text: str, lines: int = 20, max_chars: int = 4000) -> str:
    """The end of a log for a message: its last ``lines`` lines, at most ``max_chars`` characters."""
    tail = "\n".join(text.rstrip("\n").splitlines()[-lines:]) if lines > 0 else ""
    if len(tail) > max_chars:
        tail = "…" + tail[-(max_chars - 1) :]
    return tail
