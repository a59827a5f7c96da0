"""The apps of a session: the label, service definitions, the command an app starts with, the URLs.

Pure parts (core.apps), the server extension's registry of apps without a server, and the
manager's app list. The apps running in a real session are tested in test_apps_browser.py.
"""

from __future__ import annotations

import json
import types

import pytest

from jupyter_backendai.core import apps as core
from jupyter_backendai.hub.spec import FolderRef, build_spec
from jupyter_backendai.manager.api_sessions import apps_of

TENSORBOARD_DEF = {
    "prestart": [{"action": "mkdir", "args": {"path": "{folder}/logs"}}],
    "command": ["{runtime_path}", "-m", "tensorboard.main", "--host", "127.0.0.1", "--port", "{ports[0]}"],
    "allowed_arguments": ["--logdir"],
    "default_arguments": {"--logdir": "{folder}/logs"},
}


def test_label_parses_like_backendai_and_refuses_what_it_cannot_use():
    ports = core.parse_service_ports("jupyter:http:8888, terminal:http:8888,tensorboard:http:6006,sshd:tcp:2200")
    assert [(p.name, p.protocol, p.ports) for p in ports] == [
        ("jupyter", "http", (8888,)),
        ("terminal", "http", (8888,)),
        ("tensorboard", "http", (6006,)),
        ("sshd", "tcp", (2200,)),
    ]
    # Only the web apps the server does not serve itself are proxied.
    assert [p.name for p in core.proxied_apps(ports)] == ["tensorboard"]
    assert core.parse_service_ports("") == ()
    for bad, reason in [
        ("web:ftp:21", "expected name:protocol:port"),
        ("web:http", "expected name:protocol:port"),
        ("web:http:99999", "invalid port"),
        ("../x:http:80", "invalid app name"),
        ("a:http:80,a:http:81", "declared twice"),
    ]:
        with pytest.raises(core.AppError, match=reason):
            core.parse_service_ports(bad)
    stored = [p.as_json() for p in ports]
    assert (
        core.format_service_ports(stored) == "jupyter:http:8888,terminal:http:8888,tensorboard:http:6006,sshd:tcp:2200"
    )


def test_tensorboard_command_uses_the_chosen_log_dir_or_the_first_folder():
    defn = core.parse_service_def("tensorboard", TENSORBOARD_DEF)
    values = core.variables(port=41234, runtime_path="/opt/venv/bin/python3", home="/home/work",
                            folders=[".local", "data", "more"])  # fmt: skip
    argv, env = core.app_command(defn, values)
    assert argv == [
        "/opt/venv/bin/python3", "-m", "tensorboard.main", "--host", "127.0.0.1", "--port", "41234",
        "--logdir", "/home/work/data/logs",
    ]  # fmt: skip
    assert env == {}
    assert core.prestart_dirs(defn, values) == ["/home/work/data/logs"]
    # The user's value replaces the default; ~ is the home; it is never interpolated.
    argv, _ = core.app_command(defn, values, {"--logdir": "~/runs/{x}"})
    assert argv[-2:] == ["--logdir", "/home/work/runs/{x}"]
    # No chosen folder (dot-folders hold settings): the home.
    assert core.first_folder([".local"], "/home/work") == "/home/work"
    assert core.default_arguments(defn, core.variables(port=1, runtime_path="p", home="/h")) == {"--logdir": "/h/logs"}


def test_arguments_are_checked():
    defn = core.parse_service_def("tensorboard", TENSORBOARD_DEF)
    values = core.variables(port=1, runtime_path="p", home="/home/work")
    for arguments, reason in [
        ({"--host": "0.0.0.0"}, "takes no argument '--host'"),
        ({"--logdir": "--inspect"}, "must not start with '-'"),
        ({"--logdir": "a\nb"}, "control characters"),
        ({"--logdir": " "}, "empty"),
        ({"--logdir": 3}, "must be text"),
    ]:
        with pytest.raises(core.AppError, match=reason):
            core.app_command(defn, values, arguments)


def test_service_definitions_follow_backendai_and_say_what_is_wrong():
    # A shell line, env with placeholders, Backend.AI's ${{ }} spelling.
    defn = core.parse_service_def(
        "web", {"command": "exec serve --port ${{ ports[0] }}", "env": {"APP_HOME": "{home}/app"}, "shell": "sh"}
    )
    argv, env = core.app_command(defn, core.variables(port=5, runtime_path="p", home="/h"))
    assert argv == ["sh", "-c", "exec serve --port 5"] and env == {"APP_HOME": "/h/app"}
    for data, reason in [
        ([], "not a JSON object"),
        ({"command": []}, "command must be"),
        ({"command": ["x"], "colour": "red"}, "unknown fields: colour"),
        ({"command": ["x"], "prestart": [{"action": "run_command", "args": {}}]}, "not supported"),
        ({"command": ["x"], "prestart": [{"action": "mkdir", "args": {}}]}, "needs args.path"),
        ({"command": ["x", 1]}, "list of strings"),
    ]:
        with pytest.raises(core.AppError, match=reason):
            core.parse_service_def("web", data)
    bad = core.parse_service_def("web", {"command": ["{nope}"]})
    with pytest.raises(core.AppError, match="unknown placeholder"):
        core.app_command(bad, core.variables(port=5, runtime_path="p", home="/h"))
    # Python's format would reach attributes; Backend.AI's placeholders never need to.
    sneaky = core.parse_service_def("web", {"command": ["{home.__class__}"]})
    with pytest.raises(core.AppError, match="unknown placeholder"):
        core.app_command(sneaky, core.variables(port=5, runtime_path="p", home="/h"))


def test_the_spec_passes_the_label_and_the_chosen_folders_to_the_session():
    spec = build_spec(
        session_id="0" * 32, session_name="s", user="u", email="", access_key="AK", resource_group="default",
        image="img", slots={"cpu": 1, "mem": "1g"},
        folders=[FolderRef("data", "/srv/data", "rw"), FolderRef("more", "/srv/more", "ro")],
        accessible=[FolderRef(".local", "/srv/local", "rw")],
        service_ports=[{"name": "tensorboard", "protocol": "http", "ports": [6006]}],
    )  # fmt: skip
    assert spec.env[core.SERVICE_PORTS_ENV] == "tensorboard:http:6006"
    assert spec.env[core.FOLDERS_ENV] == "data:more"


def test_server_extension_registry(tmp_path):
    from jupyter_backendai.serverext.apps import Apps

    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "tensorboard.json").write_text(json.dumps(TENSORBOARD_DEF))
    (defs / "broken.json").write_text("{not json")
    apps = Apps(
        label="jupyter:http:8888,terminal:http:8888,tensorboard:http:6006,broken:http:1,own:http:8090,"
        "lab:http:9,sshd:tcp:2200",
        folders="data",
        home=str(tmp_path / "home"),
        runtime_path="/venv/bin/python3",
        defs_dir=str(defs),
    )
    listing = {a["name"]: a for a in apps.listing("/user/u/s/")["apps"]}
    assert listing["terminal"]["open_url"] == "/user/u/s/backendai/_ext/apps/terminal/open"
    assert listing["jupyter"]["url"] == "/user/u/s/tree" and listing["sshd"]["url"] is None
    tb = listing["tensorboard"]
    assert tb["url"] == "/user/u/s/tensorboard/" and tb["open_url"] == "/user/u/s/backendai/_ext/apps/tensorboard/open"
    assert tb["arguments"] == [{"name": "--logdir", "title": "Log directory", "value": f"{tmp_path}/home/data/logs"}]
    assert tb["managed"] and not tb["running"]
    assert "cannot be read" in listing["broken"]["error"] and listing["broken"]["url"] is None
    assert "taken by the Jupyter server" in listing["lab"]["error"]
    # No service definition: started by the image itself, only proxied.
    assert listing["own"]["managed"] is False and listing["own"]["url"] == "/user/u/s/own/"

    # The command escapes braces (jupyter-server-proxy formats it) and makes the log directory.
    app = apps.apps["tensorboard"]
    apps.set_arguments(app, {"--logdir": "~/r{1}"})
    assert apps.command(app, 4000)[-2:] == ["--logdir", f"{tmp_path}/home/r{{{{1}}}}"]
    assert (tmp_path / "home" / "data" / "logs").is_dir()
    with pytest.raises(core.AppError, match="must not start"):
        apps.set_arguments(app, {"--logdir": "-x"})
    # An empty field means the default.
    assert apps.set_arguments(app, {"--logdir": ""}) == {}

    # A malformed label: no apps, and the reason.
    assert "cannot be used" in Apps(label="x:y", defs_dir=str(defs)).error


def test_manager_links_open_apps_through_the_session():
    session = types.SimpleNamespace(
        server_name="nb",
        name="nb",
        service_ports=[
            {"name": "jupyter", "protocol": "http", "ports": [8888]},
            {"name": "terminal", "protocol": "http", "ports": [8888]},
            {"name": "tensorboard", "protocol": "http", "ports": [6006]},
            {"name": "sshd", "protocol": "tcp", "ports": [2200]},
        ],
    )
    apps = {a["name"]: a for a in apps_of(session, "al ice")}
    assert apps["jupyterlab"]["url"] == "/user/al%20ice/nb/lab"
    assert apps["jupyter"]["url"] == "/user/al%20ice/nb/tree" and apps["jupyter"]["ports"] == [8888]
    # Not port 8888 through /proxy/: the server's own page that opens a new terminal.
    assert apps["terminal"]["url"] == "/user/al%20ice/nb/backendai/_ext/apps/terminal/open"
    assert apps["tensorboard"]["url"] == "/user/al%20ice/nb/backendai/_ext/apps/tensorboard/open"
    assert apps["tensorboard"]["title"] == "TensorBoard" and apps["sshd"]["url"] is None
