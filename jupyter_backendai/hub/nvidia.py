"""Running ``nvidia-smi`` on the agent's machine: its GPUs, and what a session uses of them.

The parsing and every decision are :mod:`jupyter_backendai.core.nvidia`'s; this module only
runs the program (found on ``PATH``; none there means no GPU) with a time limit. Both
functions block: call them on a worker thread.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time

from ..core.nvidia import (
    QUERY_APPS,
    QUERY_GPU,
    ComputeApp,
    GpuInfo,
    NvidiaSmiError,
    parse_compute_apps,
    parse_query_gpu,
)

log = logging.getLogger(__name__)

#: nvidia-smi can hang for seconds on a GPU in trouble; an agent's heartbeat must not.
TIMEOUT = 20.0


def _run(args: tuple[str, ...]) -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.SubprocessError) as e:
        raise NvidiaSmiError(f"nvidia-smi did not run: {e}") from None
    # Its failure messages go to stdout (with a non-zero status); stderr has the rest.
    return done.stdout if done.stdout.strip() or done.returncode == 0 else done.stderr or done.stdout


def query_gpus() -> list[GpuInfo] | None:
    """The machine's GPUs; ``None`` without nvidia-smi; raises :class:`NvidiaSmiError` when it fails."""
    out = _run(QUERY_GPU)
    if out is None:
        return None
    gpus, problems = parse_query_gpu(out)
    for line in problems:
        log.warning("nvidia-smi: %s", line)
    return gpus


def query_compute_apps() -> list[ComputeApp] | None:
    """The processes holding GPU memory; ``None`` without nvidia-smi."""
    out = _run(QUERY_APPS)
    return None if out is None else parse_compute_apps(out)


#: Readings younger than this serve every session's sample: one nvidia-smi run per interval,
#: not one per session.
SNAPSHOT_MAX_AGE = 5.0
_snapshot: tuple[float, list[GpuInfo] | None, list[ComputeApp] | None] | None = None
_snapshot_lock = threading.Lock()


def snapshot(with_apps: bool) -> tuple[list[GpuInfo] | None, list[ComputeApp]]:
    """The devices and (``with_apps``) the processes, from one reading shared for a few seconds."""
    global _snapshot
    with _snapshot_lock:
        now = time.monotonic()
        held = _snapshot
        if held is None or now - held[0] > SNAPSHOT_MAX_AGE or (with_apps and held[2] is None):
            gpus = query_gpus()
            apps = (query_compute_apps() or []) if with_apps and gpus else None
            held = _snapshot = (now, gpus, apps)
        return held[1], held[2] or []
