"""Sessions of plain images, the pure part: what an image lacks, and what the session gets instead.

A session image of this project carries ``jupyterhub-singleuser`` (with JupyterLab, ipykernel
and the server extension) and a ``work`` user with uid 1000. Any other image can still run as a
session, the way Backend.AI runs any image by mounting its kernel runner into it:

* **No jupyterhub-singleuser** → the product's *runtime* is mounted read-only at :data:`MOUNT`
  (a Python, its standard library, the session image's virtual environment, the shared libraries
  they load and the dynamic loader, all pointed at :data:`MOUNT`, see :mod:`.runtime`), and the
  session's entry point is its ``jupyterhub-singleuser``. It needs nothing of the image: no
  Python, no C library, no shell (a terminal needs a shell of the image, or tmux).
* **No user with uid 1000** → ``/etc/passwd`` and ``/etc/group`` of the container get a ``work``
  entry (uid and gid 1000, home ``/home/work``), written into the container's own layer before it
  starts (so ``getpwuid``, ``id``, the shell prompt and sshd know the user); the image is not
  changed. An image whose uid 1000 has another name (``jovyan``) keeps it.
* **No /home/work of uid 1000** → the home directory is made (or given to uid 1000) before the
  start: else the engine makes it for the folder mounts, owned by root (as a build makes a
  ``WORKDIR``), and the server cannot write its runtime files there.

:func:`image_plan` decides from :class:`ImageFacts` (what a look into the image found);
:func:`supplied_create_kwargs` turns the container's create arguments into a runtime session's;
:func:`account_archive` is the tar put into the container. ELF helpers (:func:`elf_facts`,
:func:`patch_arguments`) say how the runtime's executables are pointed at :data:`MOUNT`.
"""

from __future__ import annotations

import io
import re
import struct
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from .spec import HOME, USERNAME, SpecError

__all__ = [
    "DEFAULT_PATH",
    "LABEL_RUNTIME",
    "MOUNT",
    "RUNTIME_FORMAT",
    "ElfFacts",
    "ImageFacts",
    "ImagePlan",
    "Runtime",
    "account_archive",
    "elf_facts",
    "image_plan",
    "patch_arguments",
    "runtime_key",
    "supplied_create_kwargs",
    "terminal_script",
    "with_work_user",
]

#: Where a session of a plain image finds the product's runtime. Its executables name their
#: loader and libraries by this path, so it is the same in every container.
MOUNT = "/opt/backendai-runtime"
#: Bumped when the runtime's layout changes, so that a runtime built by older code is not used.
RUNTIME_FORMAT = 1
#: An image's own word on it: ``supplied`` (always mount the runtime) or ``image`` (never).
LABEL_RUNTIME = "org.jupyter-backendai.runtime"
RUNTIME_CHOICES = ("auto", "always", "never")
#: The engine's PATH for an image that sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SERVER = "jupyterhub-singleuser"
UID = GID = 1000


# --- what the image has -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    """What a look into an image found (without running it)."""

    image_id: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    #: ``jupyterhub-singleuser`` is in a directory of the image's PATH.
    has_server: bool
    #: ``/etc/passwd`` and ``/etc/group`` (None: the image has none).
    passwd: str | None
    group: str | None
    #: The owner of ``/home/work`` (None: the image has none).
    home_uid: int | None
    #: The login shell a ``work`` entry gets (``/bin/bash`` when the image has it).
    shell: str = "/bin/sh"

    @property
    def path(self) -> str:
        return self.env.get("PATH") or DEFAULT_PATH


@dataclass(frozen=True)
class ImagePlan:
    """What a session of an image needs besides the image."""

    supply_runtime: bool = False
    #: New ``/etc/passwd`` and ``/etc/group`` contents (None: keep the image's).
    passwd: str | None = None
    group: str | None = None
    make_home: bool = False

    @property
    def needs_files(self) -> bool:
        return bool(self.passwd is not None or self.group is not None or self.make_home)

    @property
    def plain(self) -> bool:
        return self.supply_runtime or self.needs_files


def _uids(text: str | None, field: int) -> set[int]:
    out = set()
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) > field and parts[field].isdigit():
            out.add(int(parts[field]))
    return out


def with_work_user(passwd: str | None, group: str | None, *, shell: str = "/bin/sh") -> tuple[str | None, str | None]:
    """``(passwd, group)`` with a ``work`` entry for uid/gid 1000 added where missing (None: unchanged).

    An image without the files gets ``root`` and ``work`` (a passwd without root confuses tools
    that look up uid 0); entries already there, for any name, are kept as they are.
    """
    new_passwd = new_group = None
    if UID not in _uids(passwd, 2):
        base, name = _entry_base(passwd, "root:x:0:0:root:/root:/bin/sh\n", UID)
        new_passwd = f"{base}{name}:x:{UID}:{GID}:{name}:{HOME}:{shell}\n"
    if GID not in _uids(group, 2):
        base, name = _entry_base(group, "root:x:0:\n", GID)
        new_group = f"{base}{name}:x:{GID}:\n"
    return new_passwd, new_group


def _entry_base(text: str | None, missing: str, number: int) -> tuple[str, str]:
    """The file to append an entry to (``missing`` when there is none; ends with a newline) and the
    entry's name: ``work``, or ``work<number>`` where the image has a ``work`` entry of another id."""
    base = text if text is not None else missing
    if base and not base.endswith("\n"):
        base += "\n"
    name = USERNAME if not re.search(rf"^{USERNAME}:", base, re.M) else f"{USERNAME}{number}"
    return base, name


def image_plan(facts: ImageFacts, *, supply: str = "auto") -> ImagePlan:
    """What a session of the image needs: the runtime, a ``work`` entry, a home directory.

    ``supply`` is the spawner's ``supply_runtime``: ``auto`` mounts the runtime when the image has
    no ``jupyterhub-singleuser`` (or says ``supplied`` in :data:`LABEL_RUNTIME`; ``image`` there
    says never), ``always`` for every image, ``never`` for none.
    """
    if supply not in RUNTIME_CHOICES:
        raise SpecError(f"supply_runtime {supply!r} is not one of {', '.join(RUNTIME_CHOICES)}")
    label = (facts.labels.get(LABEL_RUNTIME) or "").strip().lower()
    if supply == "always":
        runtime = True
    elif supply == "never":
        runtime = False
    elif label in ("supplied", "image"):
        runtime = label == "supplied"
    else:
        runtime = not facts.has_server
    passwd, group = with_work_user(facts.passwd, facts.group, shell=facts.shell)
    return ImagePlan(supply_runtime=runtime, passwd=passwd, group=group, make_home=facts.home_uid != UID)


def account_archive(plan: ImagePlan, *, mtime: int = 0) -> bytes:
    """The tar (for ``put_archive(container, "/", ...)``) of the plan's home directory and account files.

    The home is owned by uid/gid 1000 (mode 0755); ``/etc/passwd`` and ``/etc/group`` by root,
    mode 0644, as everywhere.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if plan.make_home:
            parts = HOME.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                info = tarfile.TarInfo("/".join(parts[:i]))
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                mine = i == len(parts)
                info.uid, info.gid = (UID, GID) if mine else (0, 0)
                info.mtime = mtime
                tar.addfile(info)
        for path, text in (("etc/passwd", plan.passwd), ("etc/group", plan.group)):
            if text is None:
                continue
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- the runtime ---------------------------------------------------------------------------------


def runtime_key(image_id: str) -> str:
    """The runtime's directory name for a runtime image: the layout's version and the image's id."""
    digest = image_id.split(":", 1)[-1]
    if not re.fullmatch(r"[0-9a-f]{12,64}", digest):
        raise SpecError(f"image id {image_id!r} is not a sha256 digest")
    return f"v{RUNTIME_FORMAT}-{digest[:16]}"


@dataclass(frozen=True)
class Runtime:
    """A built runtime: its directory on the engine's host and the paths inside :data:`MOUNT`."""

    host_dir: str
    #: The environment's Python (``MOUNT/opt/venv/bin/python3``) and its directory.
    python: str
    venv: str
    version: str = ""

    @property
    def bin(self) -> str:
        return f"{self.venv}/bin"


def supplied_create_kwargs(kwargs: dict[str, Any], runtime: Runtime, facts: ImageFacts) -> dict[str, Any]:
    """``create_container`` arguments (``host_config`` still as keyword arguments) for the runtime.

    The entry point becomes the runtime's ``jupyterhub-singleuser`` with the server's own
    arguments (what follows ``jupyterhub-singleuser`` in the command: ``--ip``, ``--port``; a
    wrapper before it, such as the ``sh -c`` that starts sshd, is dropped, since the image may
    have no shell). The runtime is bind-mounted read-only. ``PATH``: ``~/.local/bin``, the
    runtime's scripts (``python``, ``pip``, ``jupyter`` are the kernel's), then the image's own
    PATH. ``LOGNAME`` is the user's; ``LANG`` defaults to ``C.UTF-8`` (built into the runtime's C
    library, whatever locales the image has); the image's ``PYTHONHOME``, which would point the
    runtime's Python at the image's standard library, is cleared.
    """
    out = dict(kwargs)
    command = list(out.get("command") or [])
    at = next((i for i, word in enumerate(command) if word.rsplit("/", 1)[-1] == SERVER), None)
    if at is None:
        raise SpecError(f"the session's command {command!r} does not run {SERVER}")
    out["entrypoint"] = [f"{runtime.bin}/{SERVER}"]
    out["command"] = command[at + 1 :]
    env = dict(out.get("environment") or {})
    env["PATH"] = f"{HOME}/.local/bin:{runtime.bin}:{facts.path}"
    env.setdefault("LOGNAME", env.get("USER", USERNAME))
    if "LANG" not in env and "LANG" not in facts.env:
        env["LANG"] = "C.UTF-8"
    if facts.env.get("PYTHONHOME"):
        env["PYTHONHOME"] = ""  # an empty PYTHON* variable counts as unset
    out["environment"] = env
    host = dict(out.get("host_config") or {})
    host["binds"] = [*(host.get("binds") or []), f"{runtime.host_dir}:{MOUNT}:ro"]
    out["host_config"] = host
    return out


def terminal_script(python: str) -> str:
    """The runtime's ``session-terminal`` (a web terminal's command): tmux if the image has it, else its shell.

    As the session image's script of that name: one tmux session per terminal, named after it
    (``$JUPYTER_TERMINAL_NAME``), reattached after a reload; without tmux, a login shell: the
    user's from ``/etc/passwd``, else ``bash``, else ``sh``. Python, since the image may have no
    shell to run a shell script with.
    """
    return f"""#!{python}
# A web terminal of a session that runs on the product's runtime (jupyter-backendai).
import os, pwd, re, shutil, sys

name = re.sub(r"[^A-Za-z0-9_-]", "_", os.environ.pop("JUPYTER_TERMINAL_NAME", ""))
tmux = shutil.which("tmux")
if tmux:
    os.execv(tmux, [tmux, "new-session"] + (["-A", "-s", "terminal-" + name] if name else []))
try:
    shells = [pwd.getpwuid(os.getuid()).pw_shell]
except KeyError:
    shells = []
shells += [shutil.which("bash") or "", shutil.which("sh") or ""]
for shell in shells:
    if shell and os.access(shell, os.X_OK):
        os.execv(shell, ["-" + os.path.basename(shell)])
sys.exit("this image has no shell (no tmux, bash or sh): terminals cannot open; notebooks still work")
"""


# --- ELF files of the runtime ---------------------------------------------------------------------

PT_INTERP = 3
PT_DYNAMIC = 2
DT_NULL, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 5, 15, 29


@dataclass(frozen=True)
class ElfFacts:
    """What pointing an ELF file at the runtime needs to know: its loader and library paths."""

    interpreter: str | None
    rpath: str | None
    runpath: str | None


def elf_facts(f: BinaryIO) -> ElfFacts | None:
    """The loader (``PT_INTERP``) and ``DT_RPATH``/``DT_RUNPATH`` of a 64-bit ELF file, or None."""
    head = f.read(64)
    if len(head) < 64 or head[:4] != b"\x7fELF":
        return None
    if head[4] != 2:
        return None  # 32-bit: not something a 64-bit runtime loads
    order = "<" if head[5] == 1 else ">"
    (phoff,) = struct.unpack(order + "Q", head[32:40])
    phentsize, phnum = struct.unpack(order + "HH", head[54:58])
    segments = []
    for i in range(phnum):
        f.seek(phoff + i * phentsize)
        raw = f.read(56)
        if len(raw) < 56:
            return None
        p_type, _flags, offset, vaddr, _paddr, filesz, _memsz, _align = struct.unpack(order + "IIQQQQQQ", raw)
        segments.append((p_type, offset, vaddr, filesz))
    interpreter = None
    dynamic = None
    for p_type, offset, _vaddr, filesz in segments:
        if p_type == PT_INTERP:
            f.seek(offset)
            interpreter = f.read(filesz).split(b"\0", 1)[0].decode(errors="replace")
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
    rpath = runpath = None
    if dynamic is not None:
        f.seek(dynamic[0])
        raw = f.read(dynamic[1])
        entries = {}
        for i in range(0, len(raw) - 15, 16):
            tag, value = struct.unpack(order + "qQ", raw[i : i + 16])
            if tag == DT_NULL:
                break
            entries.setdefault(tag, value)
        strtab = entries.get(DT_STRTAB)
        if strtab is not None and (DT_RPATH in entries or DT_RUNPATH in entries):
            # DT_STRTAB is an address: the segment that holds it says where it is in the file.
            base = next((o - v for t, o, v, s in segments if t == 1 and v <= strtab < v + s), None)
            if base is not None:

                def string(at: int) -> str:
                    f.seek(base + strtab + at)
                    return f.read(4096).split(b"\0", 1)[0].decode(errors="replace")

                if DT_RPATH in entries:
                    rpath = string(entries[DT_RPATH])
                if DT_RUNPATH in entries:
                    runpath = string(entries[DT_RUNPATH])
    return ElfFacts(interpreter, rpath, runpath)


def _search_path(old: str | None, lib: str) -> str:
    """``old`` with the runtime's library directory last; directories of the image dropped.

    ``$ORIGIN`` entries (a wheel's bundled libraries) stay first; an absolute entry outside
    :data:`MOUNT` named the image the runtime came from, which the session's image is not.
    """
    keep = [p for p in (old or "").split(":") if p and (p.startswith("$ORIGIN") or p.startswith(MOUNT + "/"))]
    if lib not in keep:
        keep.append(lib)
    return ":".join(keep)


def patch_arguments(facts: ElfFacts, *, loader: str) -> list[str] | None:
    """``patchelf`` arguments (without the file) that point one ELF file at the runtime, or None.

    An executable (it has a loader) gets the runtime's loader and a ``DT_RPATH`` ending in
    ``MOUNT/lib``: an ``RPATH`` of the executable serves every library loaded in the process
    (extension modules included) that has no ``RUNPATH`` of its own, before the image's
    ``/etc/ld.so.cache``. A library with a ``DT_RUNPATH`` gets ``MOUNT/lib`` added to it, since
    for its own dependencies the executable's path is not searched. Other libraries need nothing.
    """
    lib = f"{MOUNT}/lib"
    if facts.interpreter:
        return [
            "--set-interpreter",
            f"{lib}/{loader}",
            "--force-rpath",
            "--set-rpath",
            _search_path(facts.runpath or facts.rpath, lib),
        ]
    if facts.runpath is not None:
        wanted = _search_path(facts.runpath, lib)
        return None if wanted == facts.runpath else ["--set-rpath", wanted]
    return None
