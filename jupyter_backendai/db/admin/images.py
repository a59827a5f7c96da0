"""Images (read from their labels: minimum resources, service ports) and the registries they come from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...core.slots import ResourceSlots
from .. import models as m
from .lookups import get_registry
from .validation import AdminError, Conflict, parse_image_ref, parse_slots

MIN_LABEL = "ai.backend.resource.min."
SERVICE_PORTS_LABEL = "ai.backend.service-ports"


def parse_service_ports(label: str) -> list[dict[str, Any]]:
    """``jupyter:http:8080,tensorboard:http:6006`` → Backend.AI's servicePorts entries."""
    ports = []
    for item in filter(None, (p.strip() for p in (label or "").split(","))):
        parts = item.split(":")
        if len(parts) != 3 or parts[1] not in ("tcp", "http", "pty", "preopen") or not parts[2].isdigit():
            raise AdminError(f"invalid service port {item!r}: expected name:protocol:port, like jupyter:http:8080")
        ports.append({"name": parts[0], "protocol": parts[1], "ports": [int(parts[2])]})
    return ports


def upsert_image(
    db: DB,
    ref: str,
    *,
    labels: Mapping[str, str] | None = None,
    architecture: str = "x86_64",
    digest: str | None = None,
    installed: bool | None = None,
) -> tuple[m.Image, bool]:
    """Add or refresh an image from its labels; returns (image, created)."""
    registry, name, tag = parse_image_ref(ref)
    labels = dict(labels or {})
    min_slots = parse_slots({k[len(MIN_LABEL) :]: v for k, v in labels.items() if k.startswith(MIN_LABEL)})
    ports = parse_service_ports(labels.get(SERVICE_PORTS_LABEL, ""))
    image = db.scalar(
        select(m.Image).where(
            m.Image.registry_host == registry,
            m.Image.name == name,
            m.Image.tag == tag,
            m.Image.architecture == architecture,
        )
    )
    created = image is None
    if created:
        image = m.Image(registry_host=registry, name=name, tag=tag, architecture=architecture)
        db.add(image)
    image.labels = labels
    image.min_slots = min_slots
    image.service_ports = ports
    if digest is not None:
        image.digest = digest
    if installed is not None:
        image.installed = installed
    db.flush()
    return image, created


def set_image_min(db: DB, image: m.Image, min_slots: Mapping[str, Any]) -> m.Image:
    slots = parse_slots(min_slots)
    if any(v.is_infinite() for v in slots.values()):
        raise AdminError("an image's minimum cannot be unlimited")
    image.min_slots = ResourceSlots({**image.min_slots, **slots})
    db.flush()
    return image


def add_registry(
    db: DB,
    hostname: str,
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    project: str | None = None,
) -> m.ContainerRegistry:
    if not hostname or not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]+)?$", hostname):
        raise AdminError(f"invalid registry host name {hostname!r}")
    if not re.match(r"^https?://[^\s/]+", url or ""):
        raise AdminError(f"invalid registry URL {url!r}: give the scheme too, like https://{hostname}")
    if db.scalar(select(m.ContainerRegistry).where(m.ContainerRegistry.hostname == hostname)) is not None:
        raise Conflict(f"registry {hostname!r} already exists")
    registry = m.ContainerRegistry(
        hostname=hostname, url=url.rstrip("/"), username=username, password=password, project=project
    )
    db.add(registry)
    db.flush()
    return registry


def remove_registry(db: DB, hostname: str) -> None:
    db.delete(get_registry(db, hostname))
    db.flush()
