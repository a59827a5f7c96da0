"""Copy a session runtime out of the image this runs in: run by the hub in a throwaway container.

Not imported by the product: :mod:`.runtime` reads this file and runs it with the runtime
image's own Python (``python3 -c <this file> OUT MOUNT``), as the hub's user, with ``OUT`` a
directory of the hub's host bind-mounted into the container. Standard library only, and no
newer Python than the runtime image's.

``OUT`` becomes what a session sees at ``MOUNT``, the image's paths kept below it:

* the Python that runs the virtual environment (the real executable, its standard library and
  the base site directories), at ``MOUNT`` + their own paths;
* the virtual environment (``sys.prefix``: jupyterhub-singleuser, JupyterLab, ipykernel, the
  server extension), at ``MOUNT`` + its path, its ``pyvenv.cfg``, script lines and absolute
  symbolic links pointed into ``MOUNT``;
* the image's ``/etc/jupyter`` (the session-wide server settings), merged into the
  environment's own ``etc/jupyter``, which Jupyter reads as the environment's settings;
* every shared library that those executables and extension modules load from outside the
  copied trees, as the image's own dynamic loader resolves them (``ld.so --list``), and that
  loader, flat in ``MOUNT/lib``.

The hub then points the executables at ``MOUNT/lib`` (interpreter and library path), so that
the runtime needs nothing of the image it is mounted into. The last line printed is a JSON
summary.
"""

import json
import os
import re
import shutil
import site
import struct
import subprocess
import sys
import sysconfig

#: Loaded by glibc with dlopen (thread cancellation, unwinding), so never in a ``--list``.
DLOPENED = ("libgcc_s.so.1",)


def elf_interpreter(path):
    """The PT_INTERP of an ELF file (its dynamic loader), or None."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return None
        order = "<" if head[5] == 1 else ">"
        (phoff,) = struct.unpack(order + "Q", head[32:40])
        phentsize, phnum = struct.unpack(order + "HH", head[54:58])
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack(order + "IIQQQQ", f.read(40))
            if p_type == 3:
                f.seek(p_offset)
                return f.read(p_filesz).rstrip(b"\0").decode()
    return None


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def inside(path, trees):
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in trees)


def main(out, mount):
    venv = os.path.realpath(sys.prefix)
    executable = os.path.realpath(sys.executable)
    if venv == os.path.realpath(sys.base_prefix):
        raise SystemExit("the runtime image's Python is not a virtual environment (" + sys.executable + ")")
    stdlib = os.path.realpath(sysconfig.get_path("stdlib"))
    trees = [venv, stdlib]
    for d in site.getsitepackages([sys.base_prefix]):
        d = os.path.realpath(d)
        if os.path.isdir(d) and not inside(d, trees):
            trees.append(d)

    def target(path):
        return out + path

    def relink(link, dest):
        """An absolute link into the copied trees points into MOUNT instead."""
        value = os.readlink(link)
        if not value.startswith("/"):
            return
        real = os.path.realpath(value)
        if inside(real, trees) or real == executable:
            os.unlink(link)
            os.symlink(mount + real, link)

    for tree in trees:
        shutil.copytree(tree, target(tree), symlinks=True, ignore_dangling_symlinks=True)
    os.makedirs(os.path.dirname(target(executable)), exist_ok=True)
    shutil.copy2(executable, target(executable))
    for root, dirs, files in os.walk(out):
        for name in dirs + files:
            p = os.path.join(root, name)
            if os.path.islink(p):
                relink(p, out)

    # pyvenv.cfg: the base Python is the copied one.
    cfg = target(venv) + "/pyvenv.cfg"
    lines = []
    with open(cfg) as f:
        for line in f:
            key = line.split("=", 1)[0].strip()
            if key == "home":
                line = "home = " + mount + os.path.dirname(executable) + "\n"
            elif key == "executable":
                line = "executable = " + mount + executable + "\n"
            elif key == "command":
                continue
            lines.append(line)
    with open(cfg, "w") as f:
        f.writelines(lines)

    # Scripts name the environment by its absolute path (#!/opt/venv/bin/python3, VIRTUAL_ENV=).
    bare = re.compile(r"(?<![\w./-])" + re.escape(venv) + r"(?=[/'\"\s]|$)", re.M)
    bindir = target(venv) + "/bin"
    for name in os.listdir(bindir):
        p = os.path.join(bindir, name)
        if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > 1 << 20 or is_elf(p):
            continue
        with open(p, "rb") as f:
            data = f.read()
        try:
            text = data.decode()
        except UnicodeDecodeError:
            continue
        new = bare.sub(mount + venv, text)
        if new != text:
            st = os.stat(p)
            with open(p, "w") as f:
                f.write(new)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))

    # The image's session-wide Jupyter settings become the environment's.
    if os.path.isdir("/etc/jupyter"):
        dest = target(venv) + "/etc/jupyter"
        for root, _dirs, files in os.walk("/etc/jupyter"):
            rel = os.path.relpath(root, "/etc/jupyter")
            os.makedirs(os.path.join(dest, rel), exist_ok=True)
            for name in files:
                d = os.path.join(dest, rel, name)
                if not os.path.exists(d):
                    shutil.copy2(os.path.join(root, name), d)

    # Shared libraries from outside the copied trees, as the image's loader finds them.
    loader = elf_interpreter(executable)
    if not loader:
        raise SystemExit(executable + " has no dynamic loader (a static Python is not supported)")
    libs = {}
    missing = set()
    elves = [executable]
    for tree in trees:
        for root, _dirs, files in os.walk(tree):
            for name in files:
                p = os.path.join(root, name)
                if not os.path.islink(p) and is_elf(p):
                    elves.append(p)
    listed = 0
    for p in elves:
        done = subprocess.run([loader, "--list", p], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if done.returncode != 0:
            continue  # not loadable here (another architecture, an object file): left as it is
        listed += 1
        for line in done.stdout.decode(errors="replace").splitlines():
            if "=>" not in line:
                continue
            name, _, rest = line.strip().partition(" => ")
            rest = rest.strip()
            if rest.startswith("not found"):
                missing.add(name)
                continue
            path = rest.rsplit(" (", 1)[0]
            if path and path.startswith("/") and not inside(os.path.realpath(path), trees):
                libs.setdefault(name, os.path.realpath(path))
    found_dirs = sorted({os.path.dirname(p) for p in libs.values()})
    for name in DLOPENED:
        for d in found_dirs:
            if name not in libs and os.path.exists(os.path.join(d, name)):
                libs[name] = os.path.realpath(os.path.join(d, name))
    os.makedirs(out + "/lib", exist_ok=True)
    for name, path in sorted(libs.items()):
        shutil.copy2(path, out + "/lib/" + name)
    shutil.copy2(os.path.realpath(loader), out + "/lib/" + os.path.basename(loader))

    venv_python = venv + "/bin/python3"
    if not os.path.lexists(target(venv_python)):
        venv_python = venv + "/bin/python"
    print(
        json.dumps(
            {
                "python": mount + venv_python,
                "executable": mount + executable,
                "venv": mount + venv,
                "loader": os.path.basename(loader),
                "version": ".".join(str(n) for n in sys.version_info[:3]),
                "libraries": sorted(libs),
                "missing": sorted(missing - set(libs)),
                "elf_files": len(elves),
                "listed": listed,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/"))
