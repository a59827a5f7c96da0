"""One session's spec as the backends' argument tests start from: alice's ``train-1`` in default."""

from __future__ import annotations

from typing import Any

from jupyter_backendai.hub.spec import SessionSpec, build_spec

SID = "6f1c1a9e-3f0b-4c1e-9d43-0d3b5c7a2e11"
ACCESS = "AKIATESTTESTTEST0000"
PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG alice@backendai"
GIB = 1024**3
#: The labels of :func:`spec`'s session, as tests/hub/test_spec.py checks them, for the backends that carry them.
LABELS = {
    "ai.backend.session-id": SID,
    "ai.backend.session-name": "train-1",
    "ai.backend.user": "alice",
    "ai.backend.access-key": ACCESS,
    "ai.backend.resource-group": "default",
    "org.jupyter-backendai.managed": "true",
}


def spec(**kw: Any) -> SessionSpec:
    """The spec of session ``SID`` (1.5 CPU, 4 GiB of the session image), with ``kw`` in place of those."""
    args: dict[str, Any] = dict(
        session_id=SID,
        session_name="train-1",
        user="alice",
        email="alice@example.org",
        access_key=ACCESS,
        resource_group="default",
        image="session:local",
        slots={"cpu": "1.5", "mem": "4g"},
    )
    args.update(kw)
    return build_spec(**args)
