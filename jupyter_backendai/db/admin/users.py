"""Users and their keypairs: creation, changes, deactivation (users are never deleted)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from ...core.passwords import WeakPasswordError, check_password
from .. import models as m
from ..credentials import hash_password, is_access_key, is_secret_key, new_access_key, new_secret_key
from .lookups import get_domain, get_group, get_policy
from .orgs import add_user_to_group
from .validation import (
    DEFAULT,
    AdminError,
    Conflict,
    check_email,
    check_non_negative,
    check_username,
    parse_enum,
    username_from_email,
)


def create_user(
    db: DB,
    email: str,
    password: str | None,
    *,
    username: str | None = None,
    role: str = "user",
    domain: str = DEFAULT,
    groups: Iterable[str] = (),
    policy: str = DEFAULT,
    full_name: str = "",
    description: str = "",
    need_password_change: bool = False,
    status: str = "active",
    username_is_email: bool = False,
) -> tuple[m.User, m.KeyPair]:
    """Create a user and its first keypair (F35); the keypair's secret is on the returned object.

    ``username_is_email``: the user name is the e-mail address itself (hub users of other
    authenticators that name them so); harmless, as a login with '@' finds that same account.
    """
    email = check_email(email)
    if username_is_email:
        if (username or "").strip().lower() != email:
            raise AdminError(f"the user name {username!r} must be the e-mail address {email!r} itself")
        username = email
    else:
        username = check_username(username or username_from_email(email))
    role_ = parse_enum(m.UserRole, "role", role)
    status_ = parse_enum(m.UserStatus, "status", status)
    if password is not None:
        try:
            check_password(password)
        except WeakPasswordError as e:
            raise AdminError(str(e)) from None
    get_domain(db, domain)
    get_policy(db, policy)
    if db.scalar(select(m.User).where(m.User.email == email)) is not None:
        raise Conflict(f"a user with e-mail {email!r} already exists")
    if db.scalar(select(m.User).where(m.User.username == username)) is not None:
        raise Conflict(f"the user name {username!r} is taken")
    group_rows = [get_group(db, g, domain) for g in groups]
    user = m.User(
        email=email,
        username=username,
        password=hash_password(password) if password is not None else None,
        role=role_,
        status=status_,
        domain_name=domain,
        full_name=full_name,
        description=description,
        need_password_change=need_password_change,
    )
    db.add(user)
    db.flush()
    for group in group_rows:
        add_user_to_group(db, group, user)
    keypair = create_keypair(db, user, policy=policy, is_admin=role_ in (m.UserRole.SUPERADMIN, m.UserRole.ADMIN))
    return user, keypair


def update_user(
    db: DB,
    user: m.User,
    *,
    password: str | None = None,
    username: str | None = None,
    role: str | None = None,
    full_name: str | None = None,
    description: str | None = None,
    need_password_change: bool | None = None,
    status: str | None = None,
) -> m.User:
    if password is not None:
        try:
            check_password(password)
        except WeakPasswordError as e:
            raise AdminError(str(e)) from None
        user.password = hash_password(password)
    if username is not None:
        username = check_username(username)
        other = db.scalar(select(m.User).where(m.User.username == username))
        if other is not None and other.id != user.id:
            raise Conflict(f"the user name {username!r} is taken")
        user.username = username
    if role is not None:
        user.role = parse_enum(m.UserRole, "role", role)
        for keypair in user.keypairs:  # as create_user does: admins' keypairs are admin keypairs
            keypair.is_admin = user.role in (m.UserRole.SUPERADMIN, m.UserRole.ADMIN)
    if status is not None:
        user.status = parse_enum(m.UserStatus, "status", status)
    if full_name is not None:
        user.full_name = full_name
    if description is not None:
        user.description = description
    if need_password_change is not None:
        user.need_password_change = need_password_change
    db.flush()
    return user


def deactivate_user(db: DB, user: m.User) -> m.User:
    """Users are never deleted (F37): they become inactive and cannot log in."""
    user.status = m.UserStatus.INACTIVE
    db.flush()
    return user


def create_keypair(
    db: DB,
    user: m.User,
    *,
    policy: str = DEFAULT,
    is_admin: bool = False,
    rate_limit: int = 1000,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> m.KeyPair:
    get_policy(db, policy)
    check_non_negative("rate limit", rate_limit)
    if access_key is not None and not is_access_key(access_key):
        raise AdminError("an access key is 20 characters: 'AK' and upper-case letters or digits (like AKIA...)")
    if secret_key is not None and not is_secret_key(secret_key):
        raise AdminError("a secret key is 40 characters: letters, digits, '-' or '_'")
    access_key = access_key or new_access_key()
    if db.get(m.KeyPair, access_key) is not None:
        raise Conflict(f"access key {access_key!r} already exists")
    keypair = m.KeyPair(
        access_key=access_key,
        secret_key=secret_key or new_secret_key(),
        user_id=user.id,
        is_active=True,
        is_admin=is_admin,
        resource_policy=policy,
        rate_limit=rate_limit,
        num_queries=0,
    )
    db.add(keypair)
    db.flush()
    return keypair


def update_keypair(
    db: DB,
    keypair: m.KeyPair,
    *,
    policy: str | None = None,
    rate_limit: int | None = None,
    is_admin: bool | None = None,
    is_active: bool | None = None,
) -> m.KeyPair:
    if policy is not None:
        get_policy(db, policy)
        keypair.resource_policy = policy
    if rate_limit is not None:
        keypair.rate_limit = check_non_negative("rate limit", rate_limit)
    if is_admin is not None:
        keypair.is_admin = is_admin
    if is_active is not None:
        keypair.is_active = is_active
    db.flush()
    return keypair


def delete_keypair(db: DB, keypair: m.KeyPair) -> None:
    """Only a keypair that never ran a session can be deleted (F38); the others are deactivated."""
    used = db.scalar(select(func.count()).select_from(m.Session).where(m.Session.access_key == keypair.access_key))
    if used:
        raise Conflict(
            f"keypair {keypair.access_key} ran {used} session(s) and cannot be deleted; deactivate it instead"
        )
    db.delete(keypair)
    db.flush()
