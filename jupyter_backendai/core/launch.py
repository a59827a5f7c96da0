"""The pure part of the launch rules (``db/launch.py`` applies them to the database's rows).

* A user's **main keypair** is their oldest active keypair (ties broken by access key). Its
  resource policy sets their session limits and folder limits, and a login answers its key.
  Backend.AI records it as ``users.main_access_key``, set to the keypair made with the user;
  here it is derived, so that deactivating that keypair hands the role to the next one.
* The resource groups open to a launch are listed with the default one first, then by name.
* An image may be launched when it is installed and comes from the ``local`` registry or one
  the domain or the project allows.
* A launch that names no project goes to the ``default`` project when the user is a member,
  else to the first by name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol, TypeVar

DEFAULT = "default"
LOCAL_REGISTRY = "local"


class KeypairLike(Protocol):
    access_key: str
    is_active: bool
    created_at: dt.datetime


class GroupLike(Protocol):
    name: str


K = TypeVar("K", bound=KeypairLike)
G = TypeVar("G", bound=GroupLike)


def keypair_rank(keypair: KeypairLike) -> tuple[dt.datetime, str]:
    """The order in which keypairs are considered for the main one: oldest first."""
    return (keypair.created_at, keypair.access_key)


def main_keypair(keypairs: Iterable[K]) -> K | None:
    """The main keypair among a user's ``keypairs`` (None when none is active)."""
    return min((k for k in keypairs if k.is_active), key=keypair_rank, default=None)


def order_scaling_groups(names: Iterable[str], default: str = DEFAULT) -> list[str]:
    """Resource group names, ``default`` first, then by name, each once."""
    return sorted(set(names), key=lambda n: (n != default, n))


def image_allowed(registry_host: str, registries: Iterable[str]) -> bool:
    return registry_host == LOCAL_REGISTRY or registry_host in set(registries)


def default_project(groups: Iterable[G]) -> G | None:
    """The project of a launch that names none: ``default`` if among ``groups``, else the first by name."""
    return min(groups, key=lambda g: (g.name != DEFAULT, g.name), default=None)
