"""The pure rules of plain images (hub/runtime_args.py): what an image lacks and what its session gets."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from jupyter_backendai.hub.docker import sshd_and_server
from jupyter_backendai.hub.docker_args import docker_create_kwargs
from jupyter_backendai.hub.runtime import RuntimeBuildError, build_runtime
from jupyter_backendai.hub.runtime_args import (
    LABEL_RUNTIME,
    MOUNT,
    ElfFacts,
    ImageFacts,
    Runtime,
    account_archive,
    elf_facts,
    image_plan,
    patch_arguments,
    runtime_key,
    supplied_create_kwargs,
    terminal_script,
    with_work_user,
)
from jupyter_backendai.hub.spec import SpecError, build_spec
from testing import missing

DEBIAN_PASSWD = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
DEBIAN_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def facts(**kw) -> ImageFacts:
    values = dict(
        image_id="sha256:" + "ab" * 32,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        labels={},
        has_server=False,
        passwd=DEBIAN_PASSWD,
        group=DEBIAN_GROUP,
        home_uid=None,
    )
    values.update(kw)
    return ImageFacts(**values)


def test_the_session_image_needs_nothing():
    image = facts(
        has_server=True,
        passwd=DEBIAN_PASSWD + "work:x:1000:1000::/home/work:/bin/bash\n",
        group=DEBIAN_GROUP + "work:x:1000:\n",
        home_uid=1000,
    )
    plan = image_plan(image)
    assert not plan.plain and not plan.supply_runtime and not plan.needs_files
    assert image_plan(image, supply="always").supply_runtime
    assert image_plan(facts(labels={LABEL_RUNTIME: "supplied"}, has_server=True)).supply_runtime


def test_a_plain_image_gets_the_runtime_an_account_and_a_home():
    plan = image_plan(facts(shell="/bin/bash"))
    assert plan.supply_runtime and plan.make_home
    assert plan.passwd == DEBIAN_PASSWD + "work:x:1000:1000:work:/home/work:/bin/bash\n"
    assert plan.group == DEBIAN_GROUP + "work:x:1000:\n"
    # Said otherwise by the image's label or the spawner.
    assert not image_plan(facts(labels={LABEL_RUNTIME: "image"})).supply_runtime
    assert not image_plan(facts(labels={LABEL_RUNTIME: "supplied"}), supply="never").supply_runtime
    with pytest.raises(SpecError, match="supply_runtime 'sometimes'"):
        image_plan(facts(), supply="sometimes")


def test_an_image_without_files_gets_root_and_work():
    plan = image_plan(facts(passwd=None, group=None))
    assert plan.passwd == "root:x:0:0:root:/root:/bin/sh\nwork:x:1000:1000:work:/home/work:/bin/sh\n"
    assert plan.group == "root:x:0:\nwork:x:1000:\n"


def test_a_uid_1000_of_another_name_is_kept():
    passwd = DEBIAN_PASSWD + "jovyan:x:1000:100::/home/jovyan:/bin/bash"
    group = DEBIAN_GROUP + "users:x:100:\n"
    new_passwd, new_group = with_work_user(passwd, group)
    assert new_passwd is None  # uid 1000 has a name already
    assert new_group == group + "work:x:1000:\n"
    # A "work" name taken by another uid: the entry gets another name, never a second "work".
    taken, _ = with_work_user("work:x:1001:1001::/home/w:/bin/sh", None)
    assert taken.splitlines()[-1] == "work1000:x:1000:1000:work1000:/home/work:/bin/sh"
    # A home already the user's is left alone; one of root (a build's WORKDIR) is given to the user.
    assert not image_plan(facts(home_uid=1000)).make_home
    assert image_plan(facts(home_uid=0)).make_home


def test_the_account_archive():
    plan = image_plan(facts())
    with tarfile.open(fileobj=io.BytesIO(account_archive(plan, mtime=1700000000))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["etc/group", "etc/passwd", "home", "home/work"]
        assert (members["home/work"].uid, members["home/work"].gid, members["home/work"].mode) == (1000, 1000, 0o755)
        assert (members["home"].uid, members["home"].mode) == (0, 0o755)
        assert (members["etc/passwd"].uid, members["etc/passwd"].mode) == (0, 0o644)
        assert tar.extractfile("etc/passwd").read().decode() == plan.passwd
        assert members["etc/passwd"].mtime == 1700000000
    # Nothing to add: an empty archive.
    none = image_plan(facts(passwd="work:x:1000:1000::/home/work:/bin/sh\n", group="work:x:1000:\n", home_uid=1000))
    with tarfile.open(fileobj=io.BytesIO(account_archive(none))) as tar:
        assert tar.getmembers() == []


def spec():
    return build_spec(
        session_id="0b5c31d6-6e55-4b5d-9a51-2d29a9d1f1a2",
        session_name="s1",
        user="alice",
        email="alice@example.com",
        access_key="AKIATEST",
        resource_group="default",
        image="busybox:plain",
        slots={"cpu": 1, "mem": "512m"},
        hub_env={"JUPYTERHUB_API_TOKEN": "t"},
        cmd=("sh", "-c", sshd_and_server("0.0.0.0"), "session", "jupyterhub-singleuser"),
    )


RUNTIME = Runtime(host_dir="/srv/runtime/v1-abc", python=f"{MOUNT}/opt/venv/bin/python3", venv=f"{MOUNT}/opt/venv")


def test_supplied_create_kwargs():
    kwargs = docker_create_kwargs(spec(), port=8888, network="backendai-net-x", ip="0.0.0.0")
    image = facts(env={"PATH": "/bin", "PYTHONHOME": "/nonexistent"})
    out = supplied_create_kwargs(kwargs, RUNTIME, image)
    assert out["entrypoint"] == [f"{MOUNT}/opt/venv/bin/jupyterhub-singleuser"]
    assert out["command"] == ["--ip=0.0.0.0", "--port=8888"]  # the sh wrapper is gone: the image may have no sh
    env = out["environment"]
    assert env["PATH"] == f"/home/work/.local/bin:{MOUNT}/opt/venv/bin:/bin"
    assert (env["HOME"], env["USER"], env["LOGNAME"], env["LANG"], env["PYTHONHOME"]) == (
        "/home/work", "work", "work", "C.UTF-8", ""
    )  # fmt: skip
    assert env["JUPYTERHUB_API_TOKEN"] == "t"
    assert out["host_config"]["binds"][-1] == f"/srv/runtime/v1-abc:{MOUNT}:ro"
    # The limits and security settings are the session's, untouched.
    for key in ("nano_cpus", "mem_limit", "memswap_limit", "cap_drop", "security_opt", "pids_limit", "init"):
        assert out["host_config"][key] == kwargs["host_config"][key]
    assert out["user"] == "1000:1000"
    assert "entrypoint" not in kwargs and kwargs["command"][0] == "sh"  # the input is not changed
    # An image's own LANG is kept; no PYTHONHOME, none set.
    kept = supplied_create_kwargs(kwargs, RUNTIME, facts(env={"LANG": "de_DE.UTF-8"}))["environment"]
    assert "LANG" not in kept and "PYTHONHOME" not in kept
    assert kept["PATH"].endswith(":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    with pytest.raises(SpecError, match="does not run jupyterhub-singleuser"):
        supplied_create_kwargs({**kwargs, "command": ["python", "-m", "http.server"]}, RUNTIME, image)


def test_runtime_key():
    assert runtime_key("sha256:" + "0123456789abcdef" * 4) == "v1-0123456789abcdef"
    with pytest.raises(SpecError):
        runtime_key("sha256:../../etc")


def test_terminal_script_is_python_of_the_runtime():
    script = terminal_script(f"{MOUNT}/opt/venv/bin/python3")
    assert script.startswith(f"#!{MOUNT}/opt/venv/bin/python3\n")
    compile(script, "session-terminal", "exec")


def test_elf_facts_of_real_files():
    with open(sys.executable, "rb") as f:
        exe = elf_facts(f)
    assert exe is not None and exe.interpreter and exe.interpreter.startswith("/")
    with open(__file__, "rb") as f:
        assert elf_facts(f) is None


def test_patch_arguments():
    loader = "ld-linux-x86-64.so.2"
    lib = f"{MOUNT}/lib"
    exe = patch_arguments(ElfFacts("/lib64/ld-linux-x86-64.so.2", None, None), loader=loader)
    assert exe == ["--set-interpreter", f"{lib}/{loader}", "--force-rpath", "--set-rpath", lib]
    # Bundled libraries first; a directory of the image the runtime came from is dropped.
    moved = patch_arguments(ElfFacts("/lib/ld.so", None, "$ORIGIN/../lib:/usr/local/lib"), loader=loader)
    assert moved[-1] == f"$ORIGIN/../lib:{lib}"
    assert patch_arguments(ElfFacts(None, None, "$ORIGIN/.libs"), loader=loader) == [
        "--set-rpath",
        f"$ORIGIN/.libs:{lib}",
    ]
    assert patch_arguments(ElfFacts(None, None, f"$ORIGIN:{lib}"), loader=loader) is None  # done already
    # An RPATH library, or one without: the executable's RPATH serves it.
    assert patch_arguments(ElfFacts(None, "$ORIGIN", None), loader=loader) is None
    assert patch_arguments(ElfFacts(None, None, None), loader=loader) is None


def test_patching_a_copy_of_a_real_executable(tmp_path):
    """patchelf with these arguments, and elf_facts reading back what it wrote."""
    if not shutil.which("patchelf"):
        missing("patchelf is not installed (Debian package patchelf; .ci/run installs it)", "docker")
    copy = tmp_path / "python"
    shutil.copy2(Path(sys.executable).resolve(), copy)
    with open(copy, "rb") as f:
        args = patch_arguments(elf_facts(f), loader="ld-linux-x86-64.so.2")
    subprocess.run(["patchelf", *args, str(copy)], check=True)
    with open(copy, "rb") as f:
        after = elf_facts(f)
    assert after.interpreter == f"{MOUNT}/lib/ld-linux-x86-64.so.2"
    assert after.rpath is not None and after.rpath.endswith(f"{MOUNT}/lib") and after.runpath is None


def test_a_missing_patchelf_is_named(tmp_path, monkeypatch):
    class Engine:
        def inspect_image(self, image):
            return {"Id": "sha256:" + "cd" * 32, "Config": {}}

    with pytest.raises(RuntimeBuildError, match="patchelf .* is not installed on the hub's host"):
        build_runtime(Engine(), "session:local", str(tmp_path), patchelf="no-such-patchelf", log=None)
