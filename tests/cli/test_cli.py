"""The operator CLI, in-process and as the installed command, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from jupyter_backendai.cli import main


@pytest.fixture
def cli(db_url, capsys):
    """Run a command against the test database; returns (exit status, stdout, stderr)."""

    def run(*args: str):
        status = main([*args, f"--db-url={db_url}"])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    assert run("db", "upgrade")[0] == 0
    return run


def ok_json(result):
    status, out, err = result
    assert status == 0, err
    return json.loads(out)


def test_create_and_list_everything_as_json(cli):
    assert cli("domain", "create", "lab", "--cpu", "64", "--mem", "256g", "--allowed-hosts", "local")[0] == 0
    assert cli("group", "create", "vision", "--domain", "lab", "--cpu", "16", "--description", "Vision group")[0] == 0
    status, out, _ = cli(
        "policy", "create", "student", "--cpu", "4", "--mem", "16g", "--cuda-shares", "0.5",
        "--max-sessions", "2", "--containers-per-session", "1", "--idle-timeout", "3600",
        "--max-folders", "10", "--folder-capacity", "10g", "--allowed-hosts", "local,nfs",
    )  # fmt: skip
    assert status == 0 and "created policy student: slots cpu 4, cuda.shares 0.5, mem 16 GiB;" in out
    assert cli("preset", "create", "small", "--cpu", "1", "--mem", "2g", "--shmem", "64m")[0] == 0
    status, out, _ = cli(
        "user", "create", "alice@example.com", "--password", "S3cret!pw", "--domain", "lab",
        "--group", "vision", "--policy", "student", "--role", "admin",
    )  # fmt: skip
    assert status == 0
    access_key = out.split("access key: ")[1].split()[0]
    secret_key = out.split("secret key: ")[1].split()[0]
    assert access_key.startswith("AKIA") and len(access_key) == 20 and len(secret_key) == 40

    domains = ok_json(cli("domain", "list", "--json"))
    lab = next(d for d in domains if d["name"] == "lab")
    assert lab["total_resource_slots"] == {"cpu": "64", "mem": str(256 * 1024**3)}
    groups = ok_json(cli("group", "list", "--domain", "lab", "--json"))
    assert [(g["name"], g["members"], g["total_resource_slots"]) for g in groups] == [
        ("vision", ["alice@example.com"], {"cpu": "16"})
    ]
    policies = {p["name"]: p for p in ok_json(cli("policy", "list", "--json"))}
    assert policies["student"]["total_resource_slots"] == {"cpu": "4", "cuda.shares": "0.5", "mem": str(16 * 1024**3)}
    assert policies["student"]["max_concurrent_sessions"] == 2
    assert policies["student"]["idle_timeout"] == 3600
    assert policies["student"]["max_vfolder_size"] == 10 * 1024**3
    assert policies["student"]["allowed_vfolder_hosts"] == ["local", "nfs"]
    presets = ok_json(cli("preset", "list", "--json"))
    assert presets == [
        {
            "name": "small",
            "resource_slots": {"cpu": "1", "mem": str(2 * 1024**3)},
            "shared_memory": str(64 * 1024**2),
            "scaling_group_name": None,
        }
    ]
    (user,) = ok_json(cli("user", "list", "--json"))
    assert (user["email"], user["role"], user["domain_name"], user["groups"]) == (
        "alice@example.com",
        "admin",
        "lab",
        ["vision"],
    )
    (kp,) = ok_json(cli("keypair", "list", "--json"))
    assert kp["access_key"] == access_key and kp["resource_policy"] == "student" and kp["is_admin"] is True
    assert "secret_key" not in kp
    shown = ok_json(cli("keypair", "show", access_key, "--show-secret", "--json"))
    assert shown["secret_key"] == secret_key

    # Tables for people.
    status, out, _ = cli("policy", "list")
    assert status == 0 and "cpu=4, cuda.shares=0.5, mem=16 GiB" in out


def test_user_lifecycle(cli):
    cli("user", "create", "bob@example.com", "--password", "S3cret!pw")
    status, out, _ = cli("user", "update", "bob@example.com", "--full-name", "Bob B", "--need-password-change")
    assert status == 0
    bob = ok_json(cli("user", "show", "bob", "--json"))
    assert bob["full_name"] == "Bob B" and bob["need_password_change"] is True and len(bob["keypairs"]) == 1
    assert cli("user", "deactivate", "bob@example.com")[0] == 0
    assert ok_json(cli("user", "list", "--json")) == []
    (inactive,) = ok_json(cli("user", "list", "--all", "--json"))
    assert inactive["status"] == "inactive"
    assert cli("group", "add-user", "default", "bob@example.com")[0] == 0
    assert ok_json(cli("group", "list", "--json"))[0]["members"] == ["bob@example.com"]
    assert cli("group", "remove-user", "default", "bob@example.com")[0] == 0
    status, _, err = cli("group", "remove-user", "default", "bob@example.com")
    assert status == 2 and err == "error: bob@example.com is not a member of group default\n"


def test_domain_and_group_caps_are_editable(cli):
    status, out, _ = cli("domain", "update", "default", "--cpu", "32", "--mem", "64g")
    assert status == 0 and out == "updated domain default: caps cpu 32, mem 64 GiB\n"
    status, out, _ = cli("domain", "update", "default", "--cpu", "unlimited", "--description", "Everyone")
    assert status == 0 and out == "updated domain default: caps mem 64 GiB; description 'Everyone'\n"
    assert cli("domain", "update", "default")[1] == "updated domain default: no option given, nothing changed\n"
    (domain,) = ok_json(cli("domain", "list", "--json"))
    assert domain["total_resource_slots"] == {"mem": str(64 * 1024**3)} and domain["description"] == "Everyone"

    assert cli("domain", "create", "lab")[0] == 0
    assert cli("group", "create", "vision", "--domain", "lab")[0] == 0
    status, out, _ = cli("group", "update", "vision", "--domain", "lab", "--cuda-shares", "2", "--json")
    assert status == 0 and json.loads(out)["total_resource_slots"] == {"cuda.shares": "2"}
    status, out, _ = cli("group", "update", "default", "--cpu", "4")
    assert status == 0 and out == "updated group default in domain default: caps cpu 4\n"

    for args, message in [
        (("domain", "update", "nowhere", "--cpu", "1"), "error: no domain named 'nowhere'"),
        (("group", "update", "vision", "--cpu", "1"), "error: no group named 'vision' in domain 'default'"),
        (("group", "update", "default", "--mem", "lots"), "error: mem: 'lots' is not a size"),
        (("domain", "update", "default", "--cpu", "-2"), "error: cpu: '-2' is negative"),
    ]:
        status, _, err = cli(*args)
        assert status == 2 and err.startswith(message), err


def test_keypair_commands(cli):
    cli("policy", "create", "p1", "--cpu", "2")
    cli("user", "create", "carol@example.com", "--password", "S3cret!pw")
    new = ok_json(cli("keypair", "create", "carol@example.com", "--policy", "p1", "--rate-limit", "50", "--json"))
    ak = new["access_key"]
    assert new["rate_limit"] == 50 and len(new["secret_key"]) == 40
    assert ok_json(cli("keypair", "update", ak, "--admin", "--rate-limit", "70", "--json"))["is_admin"] is True
    assert cli("keypair", "deactivate", ak)[0] == 0
    assert [k["access_key"] for k in ok_json(cli("keypair", "list", "--inactive", "--json"))] == [ak]
    assert cli("keypair", "activate", ak)[0] == 0
    assert ok_json(cli("keypair", "delete", ak, "--json")) == {"deleted": ak}
    assert cli("keypair", "show", ak)[0] == 2


def test_images_registries_scaling_groups(cli):
    status, out, _ = cli(
        "image", "add", "session:local", "--label", "ai.backend.resource.min.cpu=1",
        "--label", "ai.backend.service-ports=jupyter:http:8080", "--installed",
    )  # fmt: skip
    assert status == 0, out
    assert cli("image", "set-min", "session:local", "--mem", "512m")[0] == 0
    (image,) = ok_json(cli("image", "list", "--json"))
    assert image["resource_limits"] == {"cpu": "1", "mem": str(512 * 1024**2)} and image["installed"] is True
    assert (
        cli("registry", "add", "127.0.0.1:5000", "http://127.0.0.1:5000", "--username", "u", "--password", "secret")[0]
        == 0
    )
    (reg,) = ok_json(cli("registry", "list", "--json"))
    assert reg == {
        "hostname": "127.0.0.1:5000",
        "url": "http://127.0.0.1:5000",
        "type": "docker",
        "project": None,
        "username": "u",
        "has_password": True,
    }
    status, out, _ = cli("registry", "list")
    assert "secret" not in out
    assert cli("registry", "remove", "127.0.0.1:5000")[0] == 0
    assert (
        cli(
            "scaling-group",
            "create",
            "gpu",
            "--scheduler",
            "drf",
            "--pending-timeout",
            "600",
            "--agent-selection",
            "dispersed",
        )[0]
        == 0
    )
    assert cli("group", "create", "team")[0] == 0
    assert cli("scaling-group", "allow", "gpu", "--domain", "default", "--group", "default/team")[0] == 0
    sgs = {s["name"]: s for s in ok_json(cli("scaling-group", "list", "--json"))}
    assert sgs["gpu"]["scheduler"] == "drf" and sgs["gpu"]["pending_timeout"] == 600
    assert sgs["gpu"]["allowed_domains"] == ["default"] and sgs["gpu"]["allowed_groups"] == ["default/team"]
    assert cli("scaling-group", "update", "gpu", "--scheduler", "lifo", "--no-active")[0] == 0
    sgs = {s["name"]: s for s in ok_json(cli("scaling-group", "list", "--json"))}
    assert sgs["gpu"]["scheduler"] == "lifo" and sgs["gpu"]["is_active"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("user", "create", "x@example.com", "--password", "weak"),
            "error: the password needs at least 8 characters, at least one digit, at least one special character",
        ),
        (("user", "create", "x@example.com"), "error: a password is required: --password P"),
        (("user", "create", "not-an-email", "--password", "S3cret!pw"), "error: invalid e-mail address 'not-an-email'"),
        (
            ("user", "create", "x@example.com", "--password", "S3cret!pw", "--role", "root"),
            "error: invalid role 'root': choose one of superadmin, admin, user, monitor",
        ),
        (("user", "show", "nobody@example.com"), "error: no user with e-mail or name 'nobody@example.com'"),
        (("policy", "create", "p", "--cpu", "-1"), "error: cpu: '-1' is negative"),
        (("policy", "create", "p", "--mem", "lots"), "error: mem: 'lots' is not a size"),
        (("policy", "create", "p", "--max-sessions", "abc"), "error: --max-sessions: expected an int, not 'abc'"),
        (("policy", "create", "p", "--folder-capacity", "big"), "error: folder capacity: 'big' is not a size"),
        (("policy", "create", "bad name"), "error: invalid policy name 'bad name'"),
        (("policy", "create", "default"), "error: keypair resource policy 'default' already exists"),
        (("policy", "create", "p", "--bogus", "1"), "error: jupyter-backendai policy create: unknown option --bogus"),
        (("policy", "delete", "nope"), "error: no keypair resource policy named 'nope'"),
        (("preset", "create", "p"), "error: preset 'p' needs at least one resource"),
        (
            ("scaling-group", "create", "s", "--scheduler", "random"),
            "error: invalid scheduler 'random': choose one of fifo, lifo, drf",
        ),
        (("scaling-group", "allow", "default"), "error: name what to allow"),
        (("group", "create", "g", "--domain", "nowhere"), "error: no domain named 'nowhere'"),
        (("image", "set-min", "nope:1", "--cpu", "1"), "error: no image 'nope:1'"),
        (("nope",), "error: unknown command 'nope'"),
        (("user",), "error: jupyter-backendai user needs a command"),
        (("user", "show"), "error: usage: jupyter-backendai user show EMAIL [options]"),
        (("domain", "create", "a", "b"), "error: usage: jupyter-backendai domain create NAME [options]"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, message):
    status, out, err = cli(*args)
    assert status == 2
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unmigrated_database_and_bad_url(tmp_path, capsys):
    assert main(["user", "list", f"--db-url=sqlite:///{tmp_path / 'new.sqlite'}"]) == 2
    assert "run `jupyter-backendai db upgrade` first" in capsys.readouterr().err
    assert main(["user", "list", "--db-url=::nonsense::"]) == 2
    assert capsys.readouterr().err.startswith("error: not a database URL")


def test_installed_command_uses_environment_url(tmp_path):
    exe = shutil.which("jupyter-backendai")
    assert exe, "the package's console script is not installed (pip install -e .)"
    env = {"BACKENDAI_DB_URL": f"sqlite:///{tmp_path / 'env.sqlite'}", "PATH": "/usr/bin:/bin"}
    run = lambda *a: subprocess.run([exe, *a], capture_output=True, text=True, env=env, timeout=60)  # noqa: E731
    assert run("db", "upgrade").returncode == 0
    result = run("user", "create", "dan@example.com", "--password", "S3cret!pw")
    assert result.returncode == 0 and "access key: AKIA" in result.stdout
    result = run("user", "create", "dan@example.com", "--password", "S3cret!pw")
    assert result.returncode == 2 and result.stderr == "error: a user with e-mail 'dan@example.com' already exists\n"
    assert json.loads(run("user", "list", "--json").stdout)[0]["email"] == "dan@example.com"


def test_policy_messages_say_what_was_set(cli):
    """``policy update`` named the slots only ("updated policy default: nothing" after a change)."""
    status, out, _ = cli("policy", "update", "default", "--max-sessions", "5", "--idle-timeout", "600")
    assert status == 0 and out.strip() == "updated policy default: max_concurrent_sessions 5; idle_timeout 600", out
    status, out, _ = cli("policy", "update", "default", "--cpu", "4", "--allowed-hosts", "local,nfs")
    assert out.strip().startswith("updated policy default: slots cpu 4")
    assert out.strip().endswith("; allowed_vfolder_hosts local, nfs"), out
    assert cli("policy", "update", "default")[1].strip() == "updated policy default: no option given, nothing changed"
    assert cli("policy", "create", "open")[1].strip() == "created policy open: slots unlimited"
