"""core.environ: the one rule for the environment variables users give their sessions."""

from __future__ import annotations

import pytest

from jupyter_backendai.core.environ import (
    MAX_VARIABLES,
    EnvironError,
    check_environ,
    is_owned,
    parse_environ_lines,
)
from jupyter_backendai.hub.spec import SpecError, build_spec


def test_owned_names():
    for name in ("JUPYTERHUB_API_TOKEN", "jupyterhub_user", "BACKENDAI_SESSION_ID", "BACKEND_SECRET_KEY",
                 "BACKENDAI_SECRET_KEY", "NVIDIA_VISIBLE_DEVICES", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "HOME",
                 "USER", "JPY_API_TOKEN"):  # fmt: skip
        assert is_owned(name), name
        with pytest.raises(EnvironError, match=f"variable {name} is set by the product"):
            check_environ({name: "x"})
    for name in ("PATH", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "JUPYTER_CONFIG_DIR", "TZ"):
        assert not is_owned(name) and check_environ({name: "x"}) == {name: "x"}


def test_values_and_bounds():
    assert check_environ(None) == {} and check_environ({"N": 3}) == {"N": "3"}
    bad = [
        ({"A B": "1"}, "'A B' is not valid"),
        ({"": "1"}, "'' is not valid"),
        ({"X": None}, "X must be text"),
        ({"X": True}, "X must be text"),
        ({"X": "a\x00b"}, "X contains a NUL"),
        ({"K": "-----BEGIN OPENSSH PRIVATE KEY-----\n"}, "K holds a private key"),
        ({f"V{i}": "" for i in range(MAX_VARIABLES + 1)}, "at most 100"),
        ({f"V{i}": "x" * 30000 for i in range(3)}, "larger than 65536 bytes in all"),
        ("A=1", "must be an object"),
    ]
    for environ, words in bad:
        with pytest.raises(EnvironError, match=words):
            check_environ(environ)


def test_lines():
    text = "# comment\n\n  A = spaced value \nB=x=y\r\nEMPTY=\n"
    assert parse_environ_lines(text) == {"A": " spaced value ", "B": "x=y", "EMPTY": ""}
    with pytest.raises(EnvironError, match="line 2 'oops' is not KEY=value"):
        parse_environ_lines("A=1\noops\n")
    with pytest.raises(EnvironError, match="A is given twice"):
        parse_environ_lines("A=1\nA=2\n")
    with pytest.raises(EnvironError, match="JUPYTERHUB_API_URL is set by the product"):
        parse_environ_lines("JUPYTERHUB_API_URL=http://evil.example\n")


def test_spec_puts_user_env_under_the_hubs_and_the_sessions():
    kw = dict(session_id="s1", session_name="n", user="u", email="", access_key="AK", resource_group="default",
              image="img", slots={"cpu": 1, "mem": "1g"})  # fmt: skip
    spec = build_spec(**kw, hub_env={"TZ": "UTC", "JUPYTERHUB_API_TOKEN": "t"}, user_env={"TZ": "Asia/Seoul", "A": "1"})
    assert spec.env["A"] == "1" and spec.env["TZ"] == "UTC" and spec.env["JUPYTERHUB_API_TOKEN"] == "t"
    with pytest.raises(SpecError, match="BACKENDAI_SESSION_ID is set by the product"):
        build_spec(**kw, user_env={"BACKENDAI_SESSION_ID": "other"})
