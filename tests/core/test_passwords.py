"""Password rules (F15): each rule on its own, all at once, and what counts as what."""

from __future__ import annotations

import pytest

from jupyter_backendai.core.passwords import WeakPasswordError, check_password, password_problems


def test_a_good_password_has_no_problems() -> None:
    assert password_problems("s3cret!pw") == []
    check_password("s3cret!pw")


def test_too_short() -> None:
    assert password_problems("a1!b2@c") == ["at least 8 characters"]
    assert password_problems("a1!b2@cd") == []


def test_no_letter() -> None:
    assert password_problems("12345678!") == ["at least one letter"]


def test_no_digit() -> None:
    assert password_problems("password!") == ["at least one digit"]


def test_no_special_character() -> None:
    assert password_problems("password1") == ["at least one special character"]


def test_every_rule_at_once() -> None:
    assert password_problems("") == [
        "at least 8 characters",
        "at least one letter",
        "at least one digit",
        "at least one special character",
    ]


def test_check_password_lists_every_broken_rule_in_one_line() -> None:
    with pytest.raises(WeakPasswordError) as info:
        check_password("abc")
    assert (
        str(info.value)
        == "the password needs at least 8 characters, at least one digit, at least one special character"
    )
    assert info.value.problems == ["at least 8 characters", "at least one digit", "at least one special character"]
    assert isinstance(info.value, ValueError)


def test_unicode_letters_count_as_letters() -> None:
    assert password_problems("пароль12!") == []
    assert password_problems("éèàç1234#") == []
    assert password_problems("비밀번호1234!") == []


def test_whitespace_and_control_characters_are_not_special() -> None:
    assert password_problems("pass word1") == ["at least one special character"]
    assert password_problems("password1\x00") == ["at least one special character"]
    assert password_problems("password1\u200b") == ["at least one special character"]  # zero-width space


def test_symbols_beyond_ascii_are_special() -> None:
    assert password_problems("password1€") == []
    assert password_problems("password1😀") == []


def test_a_custom_minimum_length() -> None:
    assert password_problems("a1!", min_length=12) == ["at least 12 characters"]


def test_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        password_problems(None)  # type: ignore[arg-type]
