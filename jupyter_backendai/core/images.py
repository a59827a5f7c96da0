"""Images on agents: references as engines spell them, pull progress, the pull policy.

Pure: no I/O. The hub's image code (:mod:`..hub.images`) feeds this module what the engines
answer and stores what it returns.

* An engine lists an image by its tags (``RepoTags``), in Docker's short form: an image of
  Docker Hub's library is ``python:3.12``, not ``docker.io/library/python:3.12``.
  :func:`normalize_reference` brings both spellings (and a missing ``:latest``) to one, so that
  an image row and an engine's tag compare equal.
* :class:`PullProgress` sums the per-layer events of a pull (``docker pull``'s JSON stream) into
  one figure: bytes downloaded of the bytes known so far, layers done of the layers seen.
* :func:`image_missing` tells, from an engine's error text, whether an image could not be
  found or pulled (as opposed to a container that was created and failed later).
* :data:`PULL_POLICIES`: when a spawn pulls the session's image onto its agent (dockerspawner's
  ``pull_policy`` values, with the meaning this product gives them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FAILED",
    "INSTALLED",
    "INSTALL_STATUSES",
    "LABEL_PULL",
    "PULLING",
    "PULL_POLICIES",
    "QUEUED",
    "engine_references",
    "PullError",
    "PullProgress",
    "format_bytes",
    "image_missing",
    "node_references",
    "normalize_reference",
    "pull_digest",
    "pull_object_name",
    "pulls_when_missing",
    "split_reference",
]

#: An agent's install of an image: ``queued`` (an administrator asked, the agent has not begun),
#: ``pulling`` (with progress), ``installed`` (the agent has it), ``failed`` (with the reason).
QUEUED, PULLING, INSTALLED, FAILED = "queued", "pulling", "installed", "failed"
INSTALL_STATUSES = (QUEUED, PULLING, INSTALLED, FAILED)

#: ``ifnotpresent``: a spawn pulls the image onto its agent when the agent lacks it (the session
#: shows PULLING meanwhile). ``always``: every spawn pulls (a moving tag is refreshed).
#: ``never``: nothing is pulled at spawn; the scheduler places a session only on agents that
#: have its image. ``skip``: the image is not checked at all (the engine finds out).
PULL_POLICIES = ("ifnotpresent", "always", "never", "skip")

_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")


def split_reference(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` → (repo, tag); a ``:`` in a registry's port is not a tag (``host:5000/x``)."""
    last = ref.rsplit("/", 1)[-1]
    if "@" in last:
        repo, _, digest = ref.partition("@")
        return repo, f"@{digest}"
    if ":" in last:
        repo, _, tag = ref.rpartition(":")
        return repo, tag
    return ref, "latest"


#: Label of the one-shot objects that pull an image onto a node (a swarm service, a pod).
LABEL_PULL = "ai.backend.image-pull"


def pull_digest(node: str, reference: str) -> str:
    """A short hash of a node and an image: valid in names and label values whatever they are."""
    return hashlib.sha256(f"{node} {reference}".encode()).hexdigest()[:12]


def pull_object_name(node: str, reference: str, suffix: str) -> str:
    """``backendai-pull-<hash of node and image>-<suffix>``: the name of a pull's service or pod."""
    return f"backendai-pull-{pull_digest(node, reference)}-{suffix}"


def normalize_reference(ref: str) -> str:
    """One spelling per image: Docker Hub's prefixes and ``library/`` dropped, ``:latest`` added."""
    ref = (ref or "").strip()
    for prefix in _HUB_PREFIXES:
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            if ref.startswith("library/") and ref.count("/") == 1:
                ref = ref[len("library/") :]
            break
    repo, tag = split_reference(ref)
    return f"{repo}{tag}" if tag.startswith("@") else f"{repo}:{tag}"


def engine_references(repo_tags: Iterable[str | None]) -> frozenset[str]:
    """The normalized references of an engine's images (``<none>:<none>`` left out)."""
    return frozenset(normalize_reference(t) for t in repo_tags if t and not t.startswith("<none>"))


def node_references(images: Iterable[Mapping[str, Any]] | None) -> frozenset[str]:
    """The normalized tags of a Kubernetes Node's ``status.images`` (each image's ``names``).

    The kubelet lists an image's tags and its repository digests (``repo@sha256:...``): the
    digests are left out (images are rows by tag), and so are untagged ones (``<none>``).
    Dockershim spells tags as the engine does (``python:3.12``), containerd in full
    (``docker.io/library/python:3.12``); both normalize to one.
    """
    names = (name for image in images or () for name in (image.get("names") or ()))
    return engine_references(n for n in names if "@" not in n)


def pulls_when_missing(policy: str) -> bool:
    """Whether a spawn with this pull policy pulls an image its agent lacks."""
    return policy in ("ifnotpresent", "always")


#: Phrases engines use when an image is neither present nor pullable (Docker 20.10 – 27).
_MISSING = (
    "no such image",
    "pull access denied",
    "manifest unknown",
    "not found: manifest",
    "repository does not exist",
    "manifest for ",
    "failed to resolve reference",
)


def image_missing(error: str) -> bool:
    """Whether an engine's error says the image is not there and could not be pulled."""
    text = (error or "").lower()
    return any(phrase in text for phrase in _MISSING)


class PullError(Exception):
    """A pull that failed: the registry's or the engine's reason."""


def format_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop returns


@dataclass
class _Layer:
    total: int = 0
    current: int = 0
    downloaded: bool = False
    done: bool = False


@dataclass
class PullProgress:
    """The sum of a pull's events (``APIClient.pull(..., stream=True, decode=True)``).

    ``feed`` takes one event and says whether the figures changed; an event with ``error``
    raises :class:`PullError`. Layers already on the agent count as done with no bytes.
    ``current``/``total`` are the bytes downloaded of the layers whose size is known so far
    (sizes arrive as downloads begin, so the total can grow); ``percent`` stays below 100 until
    every layer is extracted.
    """

    reference: str = ""
    layers: dict[str, _Layer] = field(default_factory=dict)
    finished: bool = False
    status: str = ""

    def feed(self, event: Mapping[str, Any]) -> bool:
        if not isinstance(event, Mapping):
            return False
        if event.get("error") or event.get("errorDetail"):
            detail = event.get("errorDetail") or {}
            raise PullError(str(event.get("error") or detail.get("message") or "the pull failed"))
        status = str(event.get("status") or "")
        layer_id = event.get("id")
        detail = event.get("progressDetail") or {}
        if status.startswith(("Digest:", "Status:")):
            self.finished = True
            self.status = status
            return True
        if not layer_id or status.startswith("Pulling from"):
            return False
        layer = self.layers.setdefault(str(layer_id), _Layer())
        before = (layer.total, layer.current, layer.downloaded, layer.done)
        if status == "Downloading":
            total, current = int(detail.get("total") or 0), int(detail.get("current") or 0)
            layer.total = max(layer.total, total)
            layer.current = min(max(layer.current, current), layer.total or current)
        elif status in ("Download complete", "Verifying Checksum"):
            layer.downloaded = True
            layer.current = layer.total
        elif status == "Extracting":
            layer.downloaded = True
            layer.current = layer.total
        elif status in ("Pull complete", "Already exists"):
            layer.downloaded = layer.done = True
            layer.current = layer.total
        return before != (layer.total, layer.current, layer.downloaded, layer.done)

    @property
    def current(self) -> int:
        return sum(layer.current for layer in self.layers.values())

    @property
    def total(self) -> int:
        return sum(layer.total for layer in self.layers.values())

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        layers = self.layers.values()
        if not layers:
            return 0
        total = self.total
        # Downloading is most of a pull; extracting the rest. Layers of unknown size count by number.
        downloaded = self.current / total if total else sum(la.downloaded for la in layers) / len(layers)
        extracted = sum(la.done for la in layers) / len(layers)
        return min(99, int(90 * downloaded + 10 * extracted))

    def text(self) -> str:
        """``pulling <ref>: 3 of 5 layers, 12.0 MiB of 45.5 MiB`` (what the pending page shows)."""
        if self.finished:
            return f"pulled {self.reference}".strip()
        layers = list(self.layers.values())
        done = sum(la.done for la in layers)
        head = f"pulling {self.reference}".strip()
        if not layers:
            return f"{head}: contacting the registry"
        size = f", {format_bytes(self.current)} of {format_bytes(self.total)}" if self.total else ""
        return f"{head}: {done} of {len(layers)} layers{size}"
