"""Progress bars through tqdm when it is installed, and silently nothing when it is not.

tqdm is a dependency of the package, but the client does not need it: transfers must work
where it was left out, and a missing progress bar is no reason to fail. ``tqdm.auto`` draws a
widget in a notebook and text in a terminal. A caller may also pass a factory of its own bars
(the notebook widgets draw theirs on an ipywidgets progress bar).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Progress(Protocol):
    n: int | float

    def update(self, n: int | float = 1) -> Any: ...

    def refresh(self) -> Any: ...

    def close(self) -> Any: ...


#: Makes a bar: ``factory(total=..., initial=..., desc=...)``.
ProgressFactory = Callable[..., Progress]


class NoProgress:
    """The do-nothing bar: same interface, no output."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int | float = 1) -> None:
        self.n += n

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool | ProgressFactory, total: int, initial: int, desc: str) -> Progress:
    """A byte-counting bar starting at ``initial`` of ``total``, or :class:`NoProgress`.

    ``enabled`` may also be a factory ``f(total=, initial=, desc=)`` of a bar of one's own (the
    notebook widgets pass one that drives an ipywidgets progress bar).
    """
    if callable(enabled):
        return enabled(total=total, initial=initial, desc=desc)
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)
    bar = NoProgress()
    bar.n = initial
    return bar


def move_to(bar: Progress, n: int) -> None:
    """Set the bar to ``n`` bytes (after a resume, where the server's offset is what counts)."""
    bar.n = n
    bar.refresh()
