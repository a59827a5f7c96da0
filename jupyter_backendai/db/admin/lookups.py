"""Look-ups by name: each returns the row or raises :class:`~.validation.NotFound` naming what was asked for."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from .. import models as m
from .validation import DEFAULT, AdminError, NotFound, parse_image_ref


def _by_key(db: DB, model: type, key: str, missing: str):
    """The row of ``model`` with primary key ``key``, else :class:`NotFound` saying ``missing``."""
    row = db.get(model, key)
    if row is None:
        raise NotFound(missing)
    return row


def find_login_user(db: DB, login: str) -> m.User | None:
    """The account a login names: input with '@' is an e-mail address, any other a user name.

    Never one for the other, so that no user name can stand in for someone's address.
    """
    key = (login or "").strip().lower()
    if not key:
        return None
    column = m.User.email if "@" in key else m.User.username
    return db.scalar(select(m.User).where(column == key))


def login_throttle_key(db: DB, login: str) -> str:
    """The login throttle's key: one per account however it is named, else one per name given."""
    user = find_login_user(db, login)
    return f"account:{user.id}" if user is not None else f"account-name:{(login or '').strip().lower()[:254]}"


def get_domain(db: DB, name: str) -> m.Domain:
    return _by_key(db, m.Domain, name, f"no domain named {name!r}")


def get_group(db: DB, name: str, domain: str = DEFAULT) -> m.Group:
    group = db.scalar(select(m.Group).where(m.Group.name == name, m.Group.domain_name == domain))
    if group is None:
        raise NotFound(f"no group named {name!r} in domain {domain!r}")
    return group


def get_user(db: DB, email_or_name: str) -> m.User:
    key = (email_or_name or "").strip().lower()
    # An e-mail address wins over a user name that happens to look like one.
    user = db.scalar(select(m.User).where(m.User.email == key)) or db.scalar(
        select(m.User).where(m.User.username == key)
    )
    if user is None:
        raise NotFound(f"no user with e-mail or name {email_or_name!r}")
    return user


def get_policy(db: DB, name: str) -> m.KeyPairResourcePolicy:
    return _by_key(db, m.KeyPairResourcePolicy, name, f"no keypair resource policy named {name!r}")


def get_keypair(db: DB, access_key: str) -> m.KeyPair:
    return _by_key(db, m.KeyPair, access_key, f"no keypair with access key {access_key!r}")


def get_preset(db: DB, name: str) -> m.ResourcePreset:
    return _by_key(db, m.ResourcePreset, name, f"no resource preset named {name!r}")


def get_scaling_group(db: DB, name: str) -> m.ScalingGroup:
    return _by_key(db, m.ScalingGroup, name, f"no resource group named {name!r}")


def get_registry(db: DB, hostname: str) -> m.ContainerRegistry:
    registry = db.scalar(select(m.ContainerRegistry).where(m.ContainerRegistry.hostname == hostname))
    if registry is None:
        raise NotFound(f"no registry named {hostname!r}")
    return registry


def get_image(db: DB, ref: str, architecture: str | None = None) -> m.Image:
    registry, name, tag = parse_image_ref(ref)
    query = select(m.Image).where(m.Image.registry_host == registry, m.Image.name == name, m.Image.tag == tag)
    if architecture:
        query = query.where(m.Image.architecture == architecture)
    images = db.scalars(query).all()
    if not images:
        raise NotFound(f"no image {ref!r}")
    if len(images) > 1:
        raise AdminError(f"image {ref!r} exists for several architectures; name one")
    return images[0]
