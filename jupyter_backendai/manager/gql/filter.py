"""Backend.AI's ``filter`` and ``order`` arguments of list queries, over the rows a resolver built.

``filter: "email ilike '%@lab.org' & role in ['ADMIN']"``, ``order: "-created_at,email"``;
``limit`` and ``offset`` page the result as Backend.AI's ``{items, total_count}``. Pure: the
rows are plain dicts (values that are callables, lists or dicts are not filterable), ``like``
patterns match through :mod:`...core.like`, and input that cannot be read or does not fit the
rows raises :class:`FilterError` with the reason, which the endpoint answers as a 400 error of
the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ...core import errors
from ...core.like import like_matcher

MAX_PAGE_SIZE = 100  # as Backend.AI's client (ai.backend.client.pagination)


class FilterError(errors.BadRequest, ValueError):
    """A filter, order, limit or offset that cannot be applied; the message says why."""


_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)"""
    r"""|(?P<op>==|!=|<=|>=|<|>|&|\||\(|\)|\[|\]|,)|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"""
)
_WORD_OPS = ("like", "ilike", "in", "contains", "is", "isnot")
# Filters are typed by people or built by consoles from a few search fields: a few hundred
# characters at most. The bound keeps the work of one filter (its length times every listed
# value's length) small whatever the caller sends.
MAX_FILTER_LENGTH = 2048


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _condition(op: str, value: Any) -> Callable[[Any], bool]:
    """``row value <op> value``; strings compare case-insensitively (``status == "ACTIVE"`` is Backend.AI's way)."""
    if op in ("like", "ilike"):
        if not isinstance(value, str):
            raise FilterError(f"{op} needs a quoted pattern")
        matches = like_matcher(value, ignore_case=op == "ilike")
        return lambda x: x is not None and matches(str(x))
    if op == "in":
        if not isinstance(value, list):
            raise FilterError('in needs a list, like ["a", "b"]')
        folded = [_fold(v) for v in value]
        return lambda x: _fold(x) in folded
    if op == "contains":
        if value is None or isinstance(value, list):
            raise FilterError('contains needs one value, like "lab" or 4')

        def has(x: Any) -> bool:
            if isinstance(x, list):
                return _fold(value) in [_fold(item) for item in x]
            # Text is searched as text: a number given as the value matches its digits.
            return x is not None and _fold(str(value)) in _fold(str(x))

        return has
    if isinstance(value, list):
        raise FilterError(f"{op} compares with one value, not a list")
    if op in ("is", "isnot"):
        if value is not None:
            raise FilterError(f"{op} compares with null")
        return (lambda x: x is None) if op == "is" else (lambda x: x is not None)
    if op in ("==", "!="):
        equal = (lambda x: _fold(x) == _fold(value)) if value is not None else (lambda x: x is None)
        return equal if op == "==" else (lambda x: not equal(x))
    order = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    compare = order[op]

    def check(x: Any) -> bool:
        try:
            return x is not None and compare(x, value)
        except TypeError:
            return False

    return check


def _filter_tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"cannot read the filter at {text[pos : pos + 20]!r}")
        pos = match.end()
        if match.group("str") is not None:
            tokens.append(("value", re.sub(r"\\(.)", r"\1", match.group("str")[1:-1])))
        elif match.group("num") is not None:
            num = match.group("num")
            tokens.append(("value", float(num) if "." in num else int(num)))
        elif match.group("op") is not None:
            if match.group("op") in "()":
                raise FilterError("parentheses are not supported in filters")
            tokens.append(("op", match.group("op")))
        else:
            word = match.group("word")
            lowered = word.lower()
            if lowered in _WORD_OPS:
                tokens.append(("op", lowered))
            elif lowered in ("true", "false"):
                tokens.append(("value", lowered == "true"))
            elif lowered in ("null", "none"):
                tokens.append(("value", None))
            else:
                tokens.append(("field", word))
    return tokens


def parse_filter(text: str, fields: Iterable[str]) -> Callable[[Mapping[str, Any]], bool]:
    """Backend.AI's filter minilang over listed rows: ``email ilike "%@lab.org" & role in ["ADMIN"] | ...``.

    Conditions are ``field operator value`` with ``== != < <= > >= like ilike in contains is
    isnot``, joined by ``&`` (binding tighter) and ``|``; no parentheses. A field that is not a
    scalar of the listed rows, or a malformed expression, is refused with the reason.
    """
    known = set(fields)
    tokens = _filter_tokens(text)
    alternatives: list[list[Callable[[Mapping[str, Any]], bool]]] = [[]]
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3 or tokens[i][0] != "field" or tokens[i + 1][0] != "op":
            raise FilterError("a filter condition is 'field operator value'")
        name, op = tokens[i][1], tokens[i + 1][1]
        if name not in known:
            raise FilterError(f"cannot filter on {name!r}; use one of {', '.join(sorted(known))}")
        if op in ("&", "|", "[", "]", ","):
            raise FilterError(f"{op!r} is not a comparison")
        i += 2
        if tokens[i] == ("op", "["):  # a list of values
            values, i = [], i + 1
            while i < len(tokens) and tokens[i] != ("op", "]"):
                if tokens[i][0] != "value":
                    raise FilterError('a list holds values, like ["a", "b"]')
                values.append(tokens[i][1])
                i += 1
                if i < len(tokens) and tokens[i] == ("op", ","):
                    i += 1
            if i >= len(tokens):
                raise FilterError("a list in the filter is not closed with ']'")
            value: Any = values
        elif tokens[i][0] == "value":
            value = tokens[i][1]
        else:
            raise FilterError("a filter condition is 'field operator value'")
        i += 1
        test = _condition(op, value)
        alternatives[-1].append(lambda row, n=name, test=test: test(row.get(n)))
        if i < len(tokens):
            if tokens[i] not in (("op", "&"), ("op", "|")) or i + 1 >= len(tokens):
                raise FilterError("join filter conditions with '&' or '|'")
            if tokens[i][1] == "|":
                alternatives.append([])
            i += 1
    return lambda row: any(all(c(row) for c in conds) for conds in alternatives)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (value is None, value if isinstance(value, (int, float, bool)) else str(value or ""))


def page(
    rows: list[dict[str, Any]], *, limit: int, offset: int, filter: str | None, order: str | None
) -> dict[str, Any]:
    """Backend.AI's ``{items, total_count}`` of rows, after the optional filter and order."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise FilterError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    if offset < 0:
        raise FilterError("offset must be 0 or more")
    scalars = [k for k, v in (rows[0].items() if rows else ()) if not callable(v) and not isinstance(v, (list, dict))]
    if filter and len(filter) > MAX_FILTER_LENGTH:
        raise FilterError(f"a filter is at most {MAX_FILTER_LENGTH} characters long, this one has {len(filter)}")
    if filter:
        keep = parse_filter(filter, scalars) if rows else None
        rows = [r for r in rows if keep(r)] if keep else []
    if order:
        for part in reversed([p.strip() for p in order.split(",") if p.strip()]):
            desc = part.startswith("-")
            name = part.lstrip("+-")
            if rows and name not in scalars:
                raise FilterError(f"cannot order by {name!r}; use one of {', '.join(sorted(scalars))}")
            rows = sorted(rows, key=lambda r, n=name: _sort_key(r.get(n)), reverse=desc)
    return {"items": rows[offset : offset + limit], "total_count": len(rows)}
