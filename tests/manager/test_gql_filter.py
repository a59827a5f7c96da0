"""The GraphQL list fields' filter/order mini-language (manager/gql/filter.py), without a database.

The endpoint's own tests (test_manager_gql.py) run it through the manager and Backend.AI's client;
these pin the language itself: what parses, what each operator means, and the reason given for
input that does not.
"""

from __future__ import annotations

import time

import pytest

from jupyter_backendai.manager.gql.filter import MAX_FILTER_LENGTH, MAX_PAGE_SIZE, FilterError, page, parse_filter

ROWS = [
    {"email": "alice@lab.org", "role": "ADMIN", "age": 31, "score": 2.5, "is_active": True, "note": None},
    {"email": "bob@lab.org", "role": "USER", "age": 25, "score": 7.0, "is_active": False, "note": "on leave"},
    {"email": "carol@other.net", "role": "user", "age": 40, "score": None, "is_active": True, "note": "x_y"},
]
FIELDS = ("email", "role", "age", "score", "is_active", "note")


def emails(text: str) -> list[str]:
    keep = parse_filter(text, FIELDS)
    return [r["email"] for r in ROWS if keep(r)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('email == "bob@lab.org"', ["bob@lab.org"]),
        # Strings compare case-insensitively, as Backend.AI's `status == "ACTIVE"` expects.
        ('role == "user"', ["bob@lab.org", "carol@other.net"]),
        ("role != 'admin'", ["bob@lab.org", "carol@other.net"]),
        ("age > 30", ["alice@lab.org", "carol@other.net"]),
        ("age >= 31", ["alice@lab.org", "carol@other.net"]),
        ("age < 31", ["bob@lab.org"]),
        ("age <= 25", ["bob@lab.org"]),
        ("score > 2.0", ["alice@lab.org", "bob@lab.org"]),  # None is never ordered
        ("score < 'x'", []),  # a number against a string: no row, not an error
        ("is_active == true", ["alice@lab.org", "carol@other.net"]),
        ("is_active == FALSE", ["bob@lab.org"]),
        ("note is null", ["alice@lab.org"]),
        ("note isnot None", ["bob@lab.org", "carol@other.net"]),
        ("note == null", ["alice@lab.org"]),
        ("note != null", ["bob@lab.org", "carol@other.net"]),
        ('role in ["admin", "nobody"]', ["alice@lab.org"]),
        ("age in [25, 40]", ["bob@lab.org", "carol@other.net"]),
        ('email contains "LAB"', ["alice@lab.org", "bob@lab.org"]),
        ("age contains 4", ["carol@other.net"]),  # a number searched in a number's digits, not a TypeError
        ('note contains "leave"', ["bob@lab.org"]),  # null holds nothing
        ('email like "%@lab.org"', ["alice@lab.org", "bob@lab.org"]),
        ('email like "%@LAB.org"', []),  # like is case-sensitive
        ('email ilike "%@LAB.org"', ["alice@lab.org", "bob@lab.org"]),
        ('email like "b_b@%"', ["bob@lab.org"]),
        ('note like "x_y"', ["carol@other.net"]),  # no escape character: _ is any one character
        ('note like "%"', ["bob@lab.org", "carol@other.net"]),  # null never matches a pattern
        ('email LIKE "%.net"', ["carol@other.net"]),  # word operators in any case
        (r'note == "on \"leave\""', []),
        (r"note == 'on leave'", ["bob@lab.org"]),
    ],
)
def test_each_operator(text, expected):
    assert emails(text) == expected


def test_and_binds_tighter_than_or():
    # a & b | c  ==  (a & b) | c
    assert emails('role == "user" & age > 30 | email == "alice@lab.org"') == ["alice@lab.org", "carol@other.net"]
    assert emails('role == "user" & age > 30 & is_active == false') == []
    assert emails("age == 25 | age == 40") == ["bob@lab.org", "carol@other.net"]


def test_escaped_quotes_and_negative_numbers():
    keep = parse_filter(r'name == "say \"hi\"" | n == -3', ["name", "n"])
    assert keep({"name": 'say "hi"', "n": 0})
    assert keep({"name": "", "n": -3})
    assert not keep({"name": "say hi", "n": 3})


@pytest.mark.parametrize(
    "text, reason",
    [
        ('password == "x"', "cannot filter on 'password'; use one of age, email, is_active, note, role, score"),
        ("email ==", "a filter condition is 'field operator value'"),
        ("email", "a filter condition is 'field operator value'"),
        ('"x" == email', "a filter condition is 'field operator value'"),
        ("email == role", "a filter condition is 'field operator value'"),
        ('email & "x"', "'&' is not a comparison"),
        ('(email == "x")', "parentheses are not supported in filters"),
        ('email == "x" age == 3', "join filter conditions with '&' or '|'"),
        ('email == "x" &', "join filter conditions with '&' or '|'"),
        ('email in ["a", "b"', "a list in the filter is not closed with ']'"),
        ('email in ["a", role]', 'a list holds values, like ["a", "b"]'),
        ('email in "a"', 'in needs a list, like ["a", "b"]'),
        ("email like 3", "like needs a quoted pattern"),
        ("email ilike null", "ilike needs a quoted pattern"),
        ('email == ["a"]', "== compares with one value, not a list"),
        ('note is "x"', "is compares with null"),
        ("email == $x", "cannot read the filter at ' $x'"),
        ("email == 'open", 'cannot read the filter at " \'open"'),
    ],
)
def test_malformed_filters_say_why(text, reason):
    with pytest.raises(FilterError) as e:
        parse_filter(text, FIELDS)
    assert str(e.value) == reason
    assert e.value.status == 400


def test_page_filters_orders_and_pages():
    rows = [dict(r) for r in ROWS]
    out = page(rows, limit=2, offset=0, filter="age > 20", order="-age")
    assert out["total_count"] == 3
    assert [r["email"] for r in out["items"]] == ["carol@other.net", "alice@lab.org"]
    out = page(rows, limit=2, offset=2, filter="age > 20", order="-age")
    assert [r["email"] for r in out["items"]] == ["bob@lab.org"]
    # Several keys, the first the most significant; None sorts last.
    out = page(rows, limit=10, offset=0, filter=None, order="is_active, +score")
    assert [r["email"] for r in out["items"]] == ["bob@lab.org", "alice@lab.org", "carol@other.net"]
    assert page([], limit=5, offset=0, filter='anything == "x"', order="whatever") == {"items": [], "total_count": 0}


def test_only_scalars_are_filterable_and_orderable():
    rows = [{"name": "a", "groups": [{"id": 1}], "usage": lambda: 3, "meta": {}}]
    for text in ("groups == 1", "usage > 1", 'meta == "x"'):
        with pytest.raises(FilterError, match="cannot filter on .*; use one of name$"):
            page(rows, limit=1, offset=0, filter=text, order=None)
    with pytest.raises(FilterError, match="cannot order by 'usage'; use one of name$"):
        page(rows, limit=1, offset=0, filter=None, order="-usage")


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"limit": 0, "offset": 0}, f"limit must be between 1 and {MAX_PAGE_SIZE}"),
        ({"limit": MAX_PAGE_SIZE + 1, "offset": 0}, f"limit must be between 1 and {MAX_PAGE_SIZE}"),
        ({"limit": 1, "offset": -1}, "offset must be 0 or more"),
        (
            {"limit": 1, "offset": 0, "filter": "x" * (MAX_FILTER_LENGTH + 1)},
            f"a filter is at most {MAX_FILTER_LENGTH} characters long, this one has {MAX_FILTER_LENGTH + 1}",
        ),
    ],
)
def test_page_bounds(kwargs, reason):
    with pytest.raises(FilterError) as e:
        page([dict(r) for r in ROWS], **{"filter": None, "order": None, **kwargs})
    assert str(e.value) == reason


def test_like_does_not_backtrack():
    """Many wildcards against long values: matched by core.like in one scan per piece."""
    pattern = "%a" * 40 + "%b"
    rows = [{"v": "a" * 5000} for _ in range(20)]
    started = time.monotonic()
    assert page(rows, limit=5, offset=0, filter=f'v like "{pattern}"', order=None)["total_count"] == 0
    assert time.monotonic() - started < 5


def test_contains_needs_one_value():
    for text in ("email contains null", 'email contains ["a"]'):
        with pytest.raises(FilterError, match="contains needs one value"):
            parse_filter(text, FIELDS)
