"""Sessions on a real Docker engine with the real session image, end to end through a real hub.

Needs a running engine and the image ``jupyter-backendai-session:local``
(``images/session/build-offline.sh``); ``.ci/run`` provides both and sets
``BACKENDAI_TEST_REQUIRE_DOCKER=1`` so that a missing one fails instead of skipping.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.db import folders as folder_db
from jupyter_backendai.db import models as m
from jupyter_backendai.storage import FolderStore
from testing.docker import docker_hub
from testing.hub import CLIENT_HOST
from testing.sessions import (
    PASSWORD,
    SSH_OPTIONS,
    contents,
    downloaded_key,
    spawn,
    spawn_running,
    stop,
    wait_gone,
    wait_ready,
    wait_status,
)

pytestmark = pytest.mark.docker

S = m.SessionStatus


def in_container(container_id: str, script: str) -> str:
    done = subprocess.run(
        ["docker", "exec", container_id, "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_limits_mounts_and_data_that_outlives_the_session(make_hub, pdb):
    pdb.user("alice@example.com", policy="student")
    pdb.folder("alice", "data")
    pdb.folder("alice", ".local")
    # bob shares a folder with alice, read-only.
    pdb.user("bob@example.com", policy="student")

    def share(db):
        bob, alice = admin.get_user(db, "bob"), admin.get_user(db, "alice")
        folder = folder_db.create_folder(db, bob, "papers")
        (inv,) = folder_db.invite(db, bob, folder, ["alice@example.com"], "ro")
        folder_db.accept_invitation(db, alice, inv.id)

    pdb.setup(share)
    hub = docker_hub(make_hub, pdb)

    session = spawn_running(hub, pdb, "alice", "one", timeout=120, preset="small", folders=["data", "papers"])
    cid = session.container_id
    out = in_container(
        cid,
        "id -u; id -g; "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; "
        "cat /sys/fs/cgroup/pids/pids.max; "
        "df -B1 /dev/shm | tail -1 | awk '{print $2}'; "
        "grep -E '^(NoNewPrivs|CapEff):' /proc/self/status | awk '{print $2}'; "
        "echo written > /home/work/data/from-session.txt && echo wrote; "
        "touch /home/work/papers/x 2>/dev/null && echo ro-broken || echo ro-ok; "
        "test -d /home/work/.local && echo automount-ok; "
        "stat -c '%a %u %Y' /home/work/id_container; date +%s",
    )
    lines = out.split()
    assert lines[0:2] == ["1000", "1000"], out
    assert lines[2] == str(512 * 1024**2), out  # memory limit
    assert int(lines[3]) / int(lines[4]) == 1.0, out  # 1 CPU of quota
    assert int(lines[5]) > 0, out  # a pids limit
    assert lines[6] == str(64 * 1024**2), out  # shared memory
    assert lines[7:9] == ["0000000000000000", "1"], out  # no capabilities (CapEff), no new privileges
    assert lines[9:12] == ["wrote", "ro-ok", "automount-ok"], out
    assert lines[12:14] == ["600", "1000"], out
    # Dated when the session started (the archive once said 1970).
    assert abs(int(lines[15]) - int(lines[14])) < 600, out
    labels = subprocess.run(
        ["docker", "inspect", "-f", "{{json .Config.Labels}}", cid], capture_output=True, text=True, timeout=30
    ).stdout
    assert f'"ai.backend.session-id":"{session.id}"' in labels and '"ai.backend.user":"alice"' in labels
    assert "secret" not in labels.lower()

    # The server answers through the proxy.
    assert contents(hub, "alice", "one", "data").status_code == 200

    stop(hub, "alice", "one")
    wait_gone(hub, "alice", "one")
    assert wait_status(pdb, "alice", "one", S.TERMINATED)
    gone = subprocess.run(["docker", "inspect", cid], capture_output=True, timeout=30)
    assert gone.returncode != 0  # the container is removed; the folder's data stays
    (stored,) = list(pdb.storage_root.rglob("from-session.txt"))
    assert stored.read_text() == "written\n"


def test_ssh_and_sftp_with_openssh_clients(make_hub, pdb, tmp_path, client_netns):
    pdb.user("sam@example.com", policy="student")
    pdb.folder("sam", "data")
    dot_ssh_id = uuid.UUID(pdb.folder("sam", ".ssh"))  # automounted: sshd's host key must not land in it
    hub = docker_hub(make_hub, pdb, extra=f"c.DockerSessionSpawner.ssh_host = {CLIENT_HOST!r}")
    assert spawn(hub, "sam", "s", preset="small", folders=["data"]).status_code in (201, 202)
    wait_ready(hub, "sam", "s", timeout=120)
    session = wait_status(pdb, "sam", "s", S.RUNNING)
    assert session.ssh_port and 10000 <= session.ssh_port <= 65000
    # The home page shows host and port, and the key downloads from the session (F33).
    from testing.hub import login

    browser = requests.Session()
    assert login(hub, "sam", PASSWORD, browser).status_code == 200
    home = browser.get(f"{hub.url}/hub/home", timeout=30).text
    assert f"ssh -i id_container -p {session.ssh_port} work@{CLIENT_HOST}" in home
    opts = ["-i", str(downloaded_key(browser, hub, pdb, "sam", "s", tmp_path)), *SSH_OPTIONS]
    # From another machine (a network namespace of its own), at the address that is shown.
    netns = ["ip", "netns", "exec", client_netns]
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            [*netns, "ssh", *opts, "-p", str(session.ssh_port), f"work@{CLIENT_HOST}", "id -un; pwd"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["work", "/home/work"]

    upload = tmp_path / "notes.txt"
    upload.write_text("over sftp\n")
    batch = tmp_path / "batch"
    batch.write_text(f"put {upload} /home/work/data/notes.txt\n")
    done = subprocess.run(
        [*netns, "sftp", *opts, "-P", str(session.ssh_port), "-b", str(batch), f"work@{CLIENT_HOST}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (stored,) = list(pdb.storage_root.rglob("notes.txt"))
    assert stored.read_text() == "over sftp\n"
    # The session's host key stayed in the container: the user's .ssh folder holds none.
    (dot_ssh,) = [p for p in pdb.storage_root.rglob(dot_ssh_id.hex) if p.is_dir()]
    assert not [p.name for p in dot_ssh.rglob("*host*")]
    stop(hub, "sam", "s")


def test_killed_container_frees_the_slots_and_restart_keeps_running_sessions(make_hub, pdb):
    pdb.user("kim@example.com", policy="student")
    hub = docker_hub(make_hub, pdb, extra="c.JupyterHub.cleanup_servers = False\nc.Spawner.poll_interval = 2")
    assert spawn(hub, "kim", "a", preset="small").status_code in (201, 202)
    assert spawn(hub, "kim", "b", preset="small").status_code in (201, 202)
    wait_ready(hub, "kim", "a", timeout=120)
    wait_ready(hub, "kim", "b", timeout=120)
    a = wait_status(pdb, "kim", "a", S.RUNNING)

    subprocess.run(["docker", "kill", a.container_id], capture_output=True, timeout=30)
    ended = wait_status(pdb, "kim", "a", S.TERMINATED, timeout=60)
    assert "backend ended it" in ended.history[-1].reason
    # The slots are free again: a session of the same size starts.
    assert spawn(hub, "kim", "c", preset="small").status_code in (201, 202)
    wait_ready(hub, "kim", "c", timeout=120)

    # The hub restarts; the running sessions are still known and reachable.
    hub.restart()
    for name in ("b", "c"):
        assert wait_status(pdb, "kim", name, S.RUNNING)
        assert contents(hub, "kim", name, "").status_code == 200
    for name in ("b", "c"):
        stop(hub, "kim", name)
        wait_status(pdb, "kim", name, S.TERMINATED)


def test_idle_sessions_are_ended(make_hub, pdb):
    pdb.setup(lambda db: admin.create_policy(db, "sleepy", total_resource_slots={"cpu": 2}, idle_timeout=4))
    pdb.user("ida@example.com", policy="sleepy")
    hub = docker_hub(make_hub, pdb, extra="c.DockerSessionSpawner.usage_interval = 2")
    assert spawn(hub, "ida", "i", preset="small").status_code in (201, 202)
    ended = wait_status(pdb, "ida", "i", S.TERMINATED, timeout=120)
    assert ended.history[-1].reason == "idle-timeout"
    assert S.RUNNING in [h.status for h in ended.history]
    with pdb() as db:
        samples = db.query(m.SessionUsage).filter_by(session_id=ended.id).all()
    assert samples and samples[0].mem_bytes > 0


PROBE = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print(target, "open")
    except OSError as e:
        print(target, "closed", type(e).__name__)
"""


def probe(container_id: str, *targets: str) -> dict[str, str]:
    """Try a TCP connection to each ``host:port`` from inside the container, as its user."""
    done = subprocess.run(
        ["docker", "exec", "-u", "1000", container_id, "python3", "-c", PROBE, *targets],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()}


def container_net(container_id: str) -> tuple[str, str]:
    """The container's address and its network's gateway (the hub host's side)."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}",
         container_id],
        capture_output=True, text=True, timeout=30,
    ).stdout.split()  # fmt: skip
    return out[0], out[1]


def test_sessions_are_isolated_from_each_other_and_from_the_hub_host(make_hub, pdb):
    import socket

    pdb.user("ann@example.com", policy="student")
    pdb.user("ben@example.com", policy="student")
    hub = docker_hub(make_hub, pdb)
    # A loopback-only service of the hub host (as the manager, a database, a kernel would be).
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen()
    loopback_port = service.getsockname()[1]
    try:
        for user, name in (("ann", "a"), ("ben", "b")):
            assert spawn(hub, user, name, preset="small").status_code in (201, 202)
        for user, name in (("ann", "a"), ("ben", "b")):
            wait_ready(hub, user, name, timeout=120)
        a = wait_status(pdb, "ann", "a", S.RUNNING)
        b = wait_status(pdb, "ben", "b", S.RUNNING)
        a_ip, a_gw = container_net(a.container_id)
        b_ip, b_gw = container_net(b.container_id)
        assert a_ip != b_ip and a_ip.startswith("10.231.") and b_ip.startswith("10.231.")
        # Something of ben's that listens on his session's loopback only, as kernels do.
        subprocess.run(
            ["docker", "exec", "-d", "-u", "1000", b.container_id,
             "python3", "-m", "http.server", "--bind", "127.0.0.1", "7777"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 60  # the server takes a moment to listen on a busy machine
        while probe(b.container_id, "127.0.0.1:7777")["127.0.0.1:7777"] != "open":
            assert time.monotonic() < deadline, "ben's loopback service did not start"
            time.sleep(1)

        hub_ports = [hub.hub_port, hub.proxy_api_port, loopback_port]
        targets = [f"{b_ip}:8888", f"{b_ip}:2200", f"{b_ip}:7777", "127.0.0.1:7777"]
        targets += [f"{host}:{port}" for port in hub_ports for host in ("127.0.0.1", a_gw, b_gw)]
        seen = probe(a.container_id, *targets)
        assert seen == {t: "closed" for t in targets}, seen

        # What ann's session may reach: the hub's API and the manager through the proxy, on its gateway.
        env = in_container(a.container_id, "printenv JUPYTERHUB_API_URL")
        assert env.strip() == f"http://{a_gw}:{hub.port}/hub/api"
        answer = in_container(
            a.container_id,
            "python3 -c \"import urllib.request,os; print(urllib.request.urlopen(os.environ['JUPYTERHUB_API_URL'])"
            '.status)"',
        )
        assert answer.strip() == "200"
        # The hub reaches both servers.
        assert contents(hub, "ann", "a", "").status_code == 200
        assert contents(hub, "ben", "b", "").status_code == 200
    finally:
        service.close()
    for user, name in (("ann", "a"), ("ben", "b")):
        stop(hub, user, name)
    for user, name in (("ann", "a"), ("ben", "b")):
        wait_status(pdb, user, name, S.TERMINATED)
    # The sessions' networks went with them.
    left = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", "label=ai.backend.network"], capture_output=True, text=True
    ).stdout.split()
    for sid in (a.id, b.id):
        assert not subprocess.run(
            ["docker", "network", "ls", "-q", "--filter", f"name=backendai-net-{sid}"],
            capture_output=True, text=True,
        ).stdout.strip(), left  # fmt: skip


def make_wheel(directory, name: str, version: str = "1.0") -> str:
    """A pure-Python wheel of module ``name`` (with a console script ``name``), written by hand.

    No build backend or index is needed: a wheel is a zip with METADATA, WHEEL and a RECORD of
    sha256 digests. ``name.VALUE`` is ``"from <name> <version>"``; the script prints it.
    """
    import base64
    import hashlib
    import zipfile

    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f'VALUE = "from {name} {version}"\n\ndef main():\n    print(VALUE)\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": f"[console_scripts]\n{name} = {name}:main\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel.name


def as_user(container_id: str, script: str) -> subprocess.CompletedProcess:
    """``sh -c script`` in the session as its user (uid 1000), with the container's environment."""
    return subprocess.run(
        ["docker", "exec", "-u", "1000", container_id, "sh", "-c", script], capture_output=True, text=True, timeout=120
    )


def test_packages_installed_in_one_session_are_there_in_the_next(make_hub, pdb):
    """pip installs as the user land in the automounted ``.local`` folder; the venv stays read-only."""
    pdb.user("pia@example.com", policy="student")
    data_id = pdb.folder("pia", "data")
    pdb.folder("pia", ".local")
    data = FolderStore(pdb.storage_root).create("local", data_id)
    wheels = [make_wheel(data, "jbtuserpkg"), make_wheel(data, "jbtplainpkg")]
    hub = docker_hub(make_hub, pdb)

    assert spawn(hub, "pia", "one", preset="small", folders=["data"]).status_code in (201, 202)
    wait_ready(hub, "pia", "one", timeout=120)
    first = wait_status(pdb, "pia", "one", S.RUNNING)
    done = as_user(first.container_id, f"pip install --no-index --user ~/data/{wheels[0]}")
    assert done.returncode == 0, done.stdout + done.stderr
    # A plain `pip install` does the same (pip defaults to the user site: the venv is read-only).
    done = as_user(first.container_id, f"pip install --no-index ~/data/{wheels[1]}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Defaulting to user installation" in done.stdout + done.stderr
    # The venv stays root's: nothing the user does changes it.
    done = as_user(first.container_id, "touch /opt/venv/lib/python3*/site-packages/x || echo read-only")
    assert "read-only" in done.stdout
    assert not list(pdb.storage_root.glob("**/opt/venv"))
    stop(hub, "pia", "one")
    wait_gone(hub, "pia", "one")
    wait_status(pdb, "pia", "one", S.TERMINATED)

    # Both are in the folder, not in the (removed) container.
    stored = {p.name for p in pdb.storage_root.rglob("*.py") if p.parent.name == "site-packages"}
    assert {"jbtuserpkg.py", "jbtplainpkg.py"} <= stored, stored

    # (The user's environment reaches the container too.)
    assert spawn(hub, "pia", "two", preset="small", environ={"MY_VAR": "docker value"}).status_code in (201, 202)
    wait_ready(hub, "pia", "two", timeout=120)
    second = wait_status(pdb, "pia", "two", S.RUNNING)
    assert second.container_id != first.container_id
    done = as_user(
        second.container_id,
        "python -c 'import jbtuserpkg, jbtplainpkg; print(jbtuserpkg.__file__); print(jbtplainpkg.VALUE)'"
        ' && jbtuserpkg && echo "$MY_VAR"',
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [
        "/home/work/.local/lib/python3.11/site-packages/jbtuserpkg.py",
        "from",
        "jbtplainpkg",
        "1.0",
        "from",
        "jbtuserpkg",
        "1.0",
        "docker",
        "value",
    ], done.stdout
    stop(hub, "pia", "two")
    wait_status(pdb, "pia", "two", S.TERMINATED)
