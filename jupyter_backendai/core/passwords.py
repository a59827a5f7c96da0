"""Password rules of the console (F15, also used for sign-up and user creation, F8, F35).

A new password needs at least 8 characters, a letter, a digit and a special character.
The rules are reported all at once, so that a user fixes a password in one go instead of
discovering the rules one refusal at a time.

What counts: letters and digits of any script (``str.isalpha`` / ``str.isdecimal``), so
``é`` or ``ж`` is a letter and ``٣`` a digit. A special character is anything else that is
visible: whitespace does not count (it is easy to type by accident and invisible), nor do
control and format characters (category ``C*``: they cannot be typed reliably and are a
sign of a pasting mishap). Length counts code points, whitespace included.
"""

from __future__ import annotations

import unicodedata

from . import errors

__all__ = ["MIN_LENGTH", "WeakPasswordError", "check_password", "password_problems"]

MIN_LENGTH = 8


class WeakPasswordError(errors.BadRequest, ValueError):
    """A password that breaks rules; ``problems`` lists them, the message says them all."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("the password needs " + ", ".join(self.problems))


def _is_special(char: str) -> bool:
    return not (char.isalpha() or char.isdecimal() or char.isspace()) and not unicodedata.category(char).startswith("C")


def password_problems(password: str, *, min_length: int = MIN_LENGTH) -> list[str]:
    """One message per broken rule, in a fixed order; an empty list means the password is fine."""
    if not isinstance(password, str):
        raise TypeError(f"a password is a string, not {type(password).__name__}")
    problems = []
    if len(password) < min_length:
        problems.append(f"at least {min_length} characters")
    if not any(c.isalpha() for c in password):
        problems.append("at least one letter")
    if not any(c.isdecimal() for c in password):
        problems.append("at least one digit")
    if not any(_is_special(c) for c in password):
        problems.append("at least one special character")
    return problems


def check_password(password: str, *, min_length: int = MIN_LENGTH) -> None:
    """Raise :class:`WeakPasswordError` naming every broken rule; return None when all hold."""
    problems = password_problems(password, min_length=min_length)
    if problems:
        raise WeakPasswordError(problems)
