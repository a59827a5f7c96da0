"""SQL ``LIKE`` patterns matched without backtracking.

A pattern such as ``%a%a%a…%b`` translated into a regular expression (``.*a.*a.*…b``) makes
Python's backtracking engine try every way of splitting the value between the ``.*``: the time
grows like the value's length to the power of the number of ``%``, so one filter argument could
keep the manager busy for hours. Here the pattern is split on ``%`` and each piece is placed at
its leftmost possible position, left to right. That greedy choice is always right for ``%``
(a piece placed further left leaves more room for the ones after it), so the work is one scan of
the value per piece: at most ``len(value) × len(pattern)`` character comparisons, never more.
"""

from __future__ import annotations

from collections.abc import Callable


def _piece_at(value: str, pos: int, piece: str) -> bool:
    """``piece`` (``_`` stands for any one character) matches ``value`` at ``pos``."""
    if pos < 0 or pos + len(piece) > len(value):
        return False
    return all(p == "_" or p == value[pos + k] for k, p in enumerate(piece))


def _find(value: str, piece: str, start: int, end: int) -> int:
    """The leftmost position in ``[start, end - len(piece)]`` where ``piece`` matches, or -1."""
    if "_" not in piece:
        return value.find(piece, start, end)
    for pos in range(start, end - len(piece) + 1):
        if _piece_at(value, pos, piece):
            return pos
    return -1


def like_matcher(pattern: str, *, ignore_case: bool = False) -> Callable[[str], bool]:
    """A test of whole strings against an SQL ``LIKE`` pattern: ``%`` any run, ``_`` any one character.

    With ``ignore_case`` (``ILIKE``) both sides are compared case-folded. There is no escape
    character, as in Backend.AI's filter language.
    """
    fold = str.casefold if ignore_case else (lambda s: s)
    pieces = fold(pattern).split("%")
    head, tail, middle = pieces[0], pieces[-1], pieces[1:-1]

    def match(value: str) -> bool:
        value = fold(value)
        if len(pieces) == 1:
            return len(value) == len(head) and _piece_at(value, 0, head)
        end = len(value) - len(tail)
        if end < len(head) or not _piece_at(value, 0, head) or not _piece_at(value, end, tail):
            return False
        pos = len(head)
        for piece in middle:
            found = _find(value, piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    return match


__all__ = ["like_matcher"]
