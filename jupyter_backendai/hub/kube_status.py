"""What a session's pod says of itself: pure readings of Pod objects (as dicts) and API errors.

Used by :mod:`.kube` while a session's pod starts (:func:`pod_problem`: a start that will not
get better by waiting; :func:`exit_reason`: a server that ended before it listened) and runs
(:func:`pod_ended`: its exit status, once it ended; :func:`container_ran`: it has a log to read).
"""

from __future__ import annotations

import json

__all__ = ["FATAL_WAITING", "api_reason", "container_ended", "container_ran", "exit_reason", "pod_ended", "pod_problem"]

#: Container states on the way to a failed start that will not get better by waiting.
FATAL_WAITING = {
    "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError",
    "ImagePullBackOff", "ErrImagePull", "RunContainerError",
}  # fmt: skip


def api_reason(e) -> str:
    """The API server's own message in an ``ApiException`` (its JSON body), else its reason."""
    try:
        return json.loads(e.body).get("message") or e.reason
    except (TypeError, ValueError, AttributeError):
        return str(e.reason)


def pod_problem(pod: dict) -> str | None:
    """Why a starting pod will not run (rejected, failed, a container that cannot start), or None."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Failed", "Succeeded"):
        reason = status.get("reason") or "Failed"
        message = status.get("message") or ""
        for c in status.get("containerStatuses") or []:
            term = (c.get("state") or {}).get("terminated")
            if term:
                message = message or f"exit code {term.get('exitCode')} ({term.get('reason') or ''})"
        return f"failed: {reason}: {message}".rstrip(": ")
    for c in status.get("containerStatuses") or []:
        state = c.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            return f"cannot start its container: {waiting['reason']}: {waiting.get('message') or ''}".rstrip(": ")
        term = state.get("terminated")
        if term:
            return f"ended at once: exit code {term.get('exitCode')} ({term.get('reason') or ''})"
    return None


def pod_ended(pod: dict):
    """None while the session's pod runs (or starts); else its exit status."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Failed", "Succeeded"):
        for c in status.get("containerStatuses") or []:
            term = (c.get("state") or {}).get("terminated")
            if term:
                return term.get("exitCode", 1)
        return status.get("reason") or 1
    for c in status.get("containerStatuses") or []:
        term = (c.get("state") or {}).get("terminated")
        if term and c.get("name") == "notebook":
            return term.get("exitCode", 1)
    return None


def container_ran(pod: dict | None, container: str = "notebook") -> bool:
    """Whether the pod's container started (it runs or ran), so that it has a log to read."""
    for c in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        state = c.get("state") or {}
        if c.get("name") == container and (state.get("running") or (state.get("terminated") or {}).get("containerID")):
            return True
    return False


def container_ended(pod: dict | None, container: str = "notebook") -> bool:
    """Whether the kubelet reported the pod's container stopped (not only the pod's phase turned)."""
    for c in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if c.get("name") == container and (c.get("state") or {}).get("terminated"):
            return True
    return False


def exit_reason(pod: dict, node: str | None, container: str = "notebook") -> str:
    """Why the session's server is gone before it listened, as the spawn page says it."""
    status = pod.get("status") or {}
    term: dict = {}
    for c in status.get("containerStatuses") or []:
        if c.get("name") == container:
            term = (c.get("state") or {}).get("terminated") or {}
    reason = f"the session's container exited with status {term.get('exitCode', '?')} before its server listened"
    if term.get("reason") == "OOMKilled":
        reason += " (out of memory: its memory limit was reached)"
    elif status.get("reason"):  # the pod's own end (DeadlineExceeded, Evicted, ...)
        reason += f" (its pod on node {node} {status['reason']}: {status.get('message') or ''}".rstrip(": ") + ")"
    message = (term.get("message") or "").strip()
    return f"{reason}: {message}" if message else reason
