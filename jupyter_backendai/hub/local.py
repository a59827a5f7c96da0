"""``LocalSessionSpawner`` (``backend-local``): sessions as plain processes, for machines without Docker.

Each session runs ``jupyterhub-singleuser`` in a home directory of its own
(``<sessions_root>/<user>/<session id>``) with the chosen and automounted folders in it, named
after them, and ``id_container`` holding the user's SSH private key. How far it isolates
users depends on who runs the hub:

**The hub runs as root: one Unix account per user, never root.** Each hub user's sessions run
as ``<account_prefix><name>`` (``jupyter-alice``), made a valid Unix name (see
:func:`jupyter_backendai.core.accounts.account_name`) and created on the first spawn with
``useradd --system`` (system uids stay clear of uid 1000, which owns the folders of the Docker
backend), shell ``/bin/bash`` for the lab's terminals, no password. A session:

- starts in a mount namespace of its own where each of its folders is bind-mounted into its
  home, read-only for ``ro`` folders. The storage root is ``0700 root``: a folder is reachable
  only through such a mount, so a session sees exactly the folders it was allowed when it
  started, and nothing of other users' folders;
- has a home ``0700`` owned by its account under ``<sessions_root>/<user>`` (``0711 root``);
- runs with ``no_new_privs`` (no setuid programs) and without ``--allow-root``;
- cannot read the product's database, JupyterHub's database or the cookie secret: at the
  first spawn the backend makes SQLite files ``0600`` and closes the hub's working directory
  to other accounts (unless the sessions live under it);
- finds the hub's Python: when it lives under a directory closed to other accounts (pyenv in
  ``/root``), the session's namespace replaces that directory with an empty one holding only
  the Python installation.

A folder the user owns is given to their account on its first mount (the folder's files too,
so that what was uploaded through the manager is writable). Files in project folders and in
folders shared with the user keep their owner; the session reads them and writes only where
the permissions let every account (the manager, running as root, reads and serves everything).

**The hub runs as any other user (Binder, a laptop): a single-user demo.** Sessions run as the
hub's own user with links to the folders; a session can read whatever the hub's user can,
read-only folders are not enforced, and limits are best effort (memory is not capped). The
hub's log and the spawn form say so.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import psutil
from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode, default

from ..core import accounts
from ..core.slots import ResourceSlots
from .logs import FileSource, SessionLogsMixin
from .spawner import SessionRefused, SessionSpawnerMixin, usage_sample
from .spec import SessionSpec, container_files

WARNING = (
    "the local backend runs every session as the hub's own user: this is a single-user demo that does NOT "
    "isolate users (run the hub as root for one Unix account per user, or use the Docker backend)"
)

# Linux mount(2), unshare(2) and prctl(2) constants (linux/fs.h, linux/sched.h, linux/prctl.h).
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT = 1, 2, 4, 32
_MS_BIND, _MS_MOVE, _MS_REC, _MS_PRIVATE = 4096, 8192, 16384, 1 << 18
_CLONE_NEWNS = 0x00020000
_PR_SET_NO_NEW_PRIVS = 38


class LocalSessionSpawner(SessionLogsMixin, SessionSpawnerMixin, SimpleLocalProcessSpawner):
    backend_name = "local"

    account_prefix = Unicode(
        "jupyter-",
        config=True,
        help="""Prefix of the Unix accounts that run each user's sessions when the hub runs as root.

        User ``alice`` gets ``jupyter-alice``; a name that is not a valid Unix user name is made
        one (lower case, other characters as ``-``, a digest appended) and cut to 32 characters.
        The accounts are created with ``useradd --system`` on the first spawn and kept.
        """,
    )
    backend_reason = Unicode(
        "",
        config=True,
        help="Why the hub uses this backend, shown on the spawn form (jupyterhub_config.py sets it).",
    )
    sessions_root = Unicode(
        config=True,
        help="""Where session home directories are made.

        Default: ``/var/lib/jupyter-backendai/sessions`` when the hub runs as root (every
        directory above it must be open to other accounts, ``o+x``, or spawns are refused
        with the directory named), ``./backendai-sessions`` otherwise.
        """,
    )

    @default("sessions_root")
    def _default_sessions_root(self):
        if accounts.isolates_users(os.geteuid()):
            return "/var/lib/jupyter-backendai/sessions"
        return str(Path("backendai-sessions").resolve())

    @property
    def isolates_users(self) -> bool:  # the spawn form's warning reads it
        return accounts.isolates_users(os.geteuid())

    @default("ssh_enabled")
    def _default_ssh_enabled(self):
        return False  # not implemented for local sessions

    _warned = False
    _hardened = False
    _account_lock: asyncio.Lock | None = None
    _account: pwd.struct_passwd | None = None
    _binds: list[tuple[str, str, bool]] = []

    async def agent_info(self):
        if not LocalSessionSpawner._warned:
            if self.isolates_users:
                self.log.info(
                    "jupyter-backendai: the local backend runs each user's sessions as a Unix account of their own (%s<name>)",
                    self.account_prefix,
                )
            else:
                self.log.warning("jupyter-backendai: %s", WARNING)
            LocalSessionSpawner._warned = True
        memory = psutil.virtual_memory().total
        capacity = ResourceSlots(cpu=os.cpu_count() or 1, mem=memory)
        return capacity, [], socket.gethostname()

    async def start_session(self, spec: SessionSpec):
        home = Path(self.sessions_root) / self.user.name / str(spec.session_id)
        self._session_env = {k: v for k, v in spec.env.items() if k not in ("HOME", "USER")}
        self.home_dir = str(home)
        if not self.isolates_users:
            self._account = None
            await asyncio.to_thread(_link_home, spec, home)
            return await self._start_process()
        if LocalSessionSpawner._account_lock is None:
            LocalSessionSpawner._account_lock = asyncio.Lock()
        async with LocalSessionSpawner._account_lock:  # two first spawns of one user make one account
            if not LocalSessionSpawner._hardened:
                await asyncio.to_thread(self._harden)
                LocalSessionSpawner._hardened = True
            account = await asyncio.to_thread(self._ensure_account)
        owned = await self.run_db(self._owned_folder_paths)
        self._binds = await asyncio.to_thread(_make_home, spec, home, account, owned)
        self._account = account
        return await self._start_process()

    def _output_path(self) -> Path:
        # Beside the home, not in it: the session's account must not replace it (a link) or read
        # it by name (root's, 0600, in the user's directory that only root writes when isolated).
        return Path(self.sessions_root) / self.user.name / f"{self.session_id}.log"

    def _output_source(self) -> FileSource:
        keep = int(self.log_keep_bytes)
        return FileSource(str(self._output_path()), trim_at=keep, keep=keep)

    async def _start_process(self):
        """Start the server with its stdout and stderr going to a file that the hub copies and trims."""
        path = self._output_path()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        configured = dict(self.popen_kwargs)
        self.popen_kwargs = {**configured, "stdout": fd, "stderr": subprocess.STDOUT}
        try:
            ip_port = await SimpleLocalProcessSpawner.start(self)
        finally:
            self.popen_kwargs = configured
            os.close(fd)
        self.collect_output(self._output_source(), reset=False)
        proc = self.proc

        async def exited():
            return proc.poll()

        async def describe(status):
            return f"the session's server exited with status {status} before it listened"

        await self.wait_for_server(*ip_port, exited=exited, describe=describe)
        return ip_port

    # --- as root: accounts, the home, the hub's files ---------------------------------------------

    def _ensure_account(self) -> pwd.struct_passwd:
        try:
            name = accounts.account_name(self.account_prefix, self.user.name)
        except ValueError as e:
            raise SessionRefused(f"no Unix account for this user: {e}", 500) from None
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            home = str(Path(self.sessions_root) / self.user.name)
            command = [
                "useradd", "--system", "--user-group", "--no-create-home", "--home-dir", home,
                "--shell", "/bin/bash", "--comment", f"jupyter-backendai sessions of {self.user.name}"[:200], name,
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                raise SessionRefused(f"could not create the Unix account {name}: {done.stderr.strip()}", 500) from None
            self.log.info("Created the Unix account %s (uid %d) for %s", name, entry.pw_uid, self.user.name)
        if entry.pw_uid == 0 or entry.pw_gid == 0:
            raise SessionRefused(
                f"the Unix account {name} is privileged (uid or gid 0); sessions never run as root", 500
            )
        return entry

    def _owned_folder_paths(self, db) -> set[str]:
        from ..db import folders as folder_db

        user, _ = self._user_and_keypair(db)
        store = self.folder_store
        return {
            str(store.path(a.folder.host, a.folder.id))
            for a in folder_db.accessible_folders(db, user)
            if a.via == "owner"
        }

    def _harden(self) -> None:
        """Close what session accounts must not read, and check that they can reach their homes."""
        storage = Path(self.storage_root)
        storage.mkdir(parents=True, exist_ok=True)
        os.chmod(storage, 0o700)  # folders are reachable only through a session's own mounts
        for url in {self.db_url, self._hub_db_url()}:
            path = _sqlite_path(url)
            for f in (path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))) if path else ():
                if f.exists():
                    os.chmod(f, 0o600)
        sessions = Path(self.sessions_root).resolve()
        sessions.mkdir(parents=True, exist_ok=True)
        os.chmod(sessions, 0o711)
        cwd = Path.cwd()
        if cwd != Path("/") and cwd not in sessions.parents and cwd.stat().st_uid == os.geteuid():
            os.chmod(cwd, cwd.stat().st_mode & ~0o007 & 0o7777)  # the hub's files: config, pid files
        closed = accounts.closed_ancestor(str(sessions), _modes(sessions))
        if closed:
            raise SessionRefused(
                f"session accounts cannot reach {sessions}: {closed} is closed to other accounts; "
                f"open it (chmod o+x {closed}) or set c.LocalSessionSpawner.sessions_root elsewhere",
                500,
            )

    def _hub_db_url(self) -> str:
        hub = self.config.get("JupyterHub", {}) if self.config else {}
        return str(hub.get("db_url", "sqlite:///jupyterhub.sqlite"))

    # --- the process ------------------------------------------------------------------------------

    def make_preexec_fn(self, name):
        account = self._account
        if account is None:
            return super().make_preexec_fn(name)
        return _isolated_preexec(account, self.home_dir, self._binds, _python_exposure())

    def user_env(self, env):
        env = super().user_env(env)
        if self._account is not None:
            env["USER"] = self._account.pw_name
        return env

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_session_env", {}))
        return env

    async def stop_session(self, now: bool) -> None:
        session_id, home = self.session_id, self.home_dir  # stop() polls, which may clear the state
        await SimpleLocalProcessSpawner.stop(self, now=now)
        await self.finish_output()
        if session_id and home and Path(home).name == str(session_id):
            # Folders are links or mounts of the ended session's namespace: removing the home
            # never touches their data.
            await asyncio.to_thread(shutil.rmtree, home, True)

    async def poll_session(self):
        session_id = self.session_id  # a poll that sees the end clears the state
        status = await SimpleLocalProcessSpawner.poll(self)
        if status is not None:
            await self.finish_output()
        elif self._log_collector is None and session_id and not self._stopping:
            # Running, and nothing copies its output (the hub restarted): from the file's start.
            self.collect_output(self._output_source(), reset=True)
        return status

    async def sample_usage(self):
        if not self.pid:
            return {}
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {}
        cpu = mem = read = write = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                mem += proc.memory_info().rss
                io = proc.io_counters()
                read += io.read_bytes
                write += io.write_bytes
            except (psutil.Error, AttributeError):
                continue
        return usage_sample(self, cpu, int(mem), int(read), int(write))

    def backend_object_id(self) -> str | None:
        return str(self.pid) if self.pid else None


# --- helpers (worker threads, and the child between fork and exec) -------------------------------


def _link_home(spec: SessionSpec, home: Path) -> None:
    """The demo's home: folders as links, files written as the hub's user."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    for mount in spec.mounts:
        link = home / mount.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(mount.host_path, target_is_directory=True)
    for f in container_files(spec):
        if f.path.startswith(spec.home + "/"):
            target = home / f.path[len(spec.home) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f.mode)
            with os.fdopen(fd, "w") as out:
                out.write(f.content)


def _make_home(spec: SessionSpec, home: Path, account: pwd.struct_passwd, owned: set[str]) -> list:
    """Make the session's home for ``account`` and return the bind mounts (source, target, read-only).

    ``<sessions_root>/<user>`` stays root's (0711), so that no session can put a link where
    the next home is made; the home is filled while it is still root's and given to the
    account last.
    """
    uid, gid = account.pw_uid, account.pw_gid
    user_dir = home.parent
    user_dir.mkdir(mode=0o711, exist_ok=True)
    os.chown(user_dir, 0, 0, follow_symlinks=False)
    os.chmod(user_dir, 0o711)
    if os.path.lexists(home):
        shutil.rmtree(home, ignore_errors=True)  # a stale home of a crashed start: only root writes here
    os.mkdir(home, 0o700)
    binds = []
    for mount in spec.mounts:
        target = home / mount.name
        target.mkdir(mode=0o700)
        os.chown(target, uid, gid)
        if mount.host_path in owned:
            _adopt_folder(Path(mount.host_path), uid, gid)
        binds.append((mount.host_path, str(target), mount.read_only))
    for f in container_files(spec):
        if f.path.startswith(spec.home + "/"):
            target = home / f.path[len(spec.home) + 1 :]
            for parent in reversed(target.relative_to(home).parents[:-1]):
                if not (home / parent).exists():
                    (home / parent).mkdir(mode=0o700)
                    os.chown(home / parent, uid, gid)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, f.mode)
            with os.fdopen(fd, "w") as out:
                os.fchown(out.fileno(), uid, gid)
                out.write(f.content)
    os.chown(home, uid, gid)
    return binds


def _adopt_folder(folder: Path, uid: int, gid: int) -> None:
    """Give a folder the user owns, and its files, to the user's account (once: when its root isn't).

    The manager creates entries with the folder root's owner, so from then on uploads are the
    account's too. The walk opens every directory relative to its parent without following
    links (``os.fwalk``) and changes owners without following them: a session racing it
    cannot point it elsewhere.
    """
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or (st.st_uid, st.st_gid) == (uid, gid):
        return
    for _, dirs, files, dirfd in os.fwalk(folder, follow_symlinks=False):
        os.fchown(dirfd, uid, gid)
        for name in files + dirs:  # directories again when visited; links to them only here
            try:
                os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                pass  # removed meanwhile


def _sqlite_path(url: str) -> Path | None:
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix):
            rest = url[len(prefix) :].split("?", 1)[0]
            if rest and rest != ":memory:":
                return Path(rest).resolve()
    return None


def _modes(path: Path) -> dict[str, int]:
    out = {}
    for p in (path, *path.parents):
        try:
            out[str(p)] = p.stat().st_mode
        except OSError:
            out[str(p)] = 0
    return out


def _python_exposure() -> tuple[str, str] | None:
    """(closed directory, its child holding the hub's Python) when accounts could not reach it.

    E.g. ``("/root", "/root/.pyenv")`` for a pyenv in root's home (0700).
    """
    prefix = Path(sys.prefix).resolve()
    closed = accounts.closed_ancestor(str(prefix), _modes(prefix))
    if closed is None or closed == str(prefix) or closed == "/":
        return None
    child = Path(closed) / prefix.relative_to(closed).parts[0]
    return closed, str(child)


def _isolated_preexec(account: pwd.struct_passwd, home: str, binds, exposure):
    """What the child does before exec: its own mount namespace and mounts, then the account."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork
    uid, gid, name = account.pw_uid, account.pw_gid, account.pw_name
    groups = os.getgrouplist(name, gid)

    def check(result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            print(f"jupyter-backendai: {what}: {os.strerror(err)}", file=sys.stderr, flush=True)
            raise OSError(err, what)

    def mount(src, dst, fstype, flags, data=None):
        enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
        check(libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), f"mount {dst}")

    def preexec() -> None:
        check(libc.unshare(_CLONE_NEWNS), "unshare the mount namespace")
        mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing of ours leaks to the host
        for source, target, read_only in binds:
            mount(source, target, None, _MS_BIND)
            flags = _MS_BIND | _MS_REMOUNT | _MS_NOSUID | _MS_NODEV | (_MS_RDONLY if read_only else 0)
            mount(None, target, None, flags)
        if exposure:
            closed, child = exposure
            # The home stands in while the closed directory is covered: bind the Python there,
            # cover the directory with an empty one, then move the Python into it.
            mount(child, home, None, _MS_BIND | _MS_REC)
            mount("tmpfs", closed, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=64k")
            os.mkdir(os.path.join(closed, os.path.basename(child)), 0o755)
            mount(home, os.path.join(closed, os.path.basename(child)), None, _MS_MOVE)
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
        check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
        os.chdir(home)

    return preexec
