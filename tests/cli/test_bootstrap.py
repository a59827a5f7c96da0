"""Loading a whole set-up from YAML, idempotently, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jupyter_backendai.cli import main

EXAMPLE = Path(__file__).parents[2] / "examples" / "bootstrap.yaml"


def run(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_example_loads_and_second_run_changes_nothing(db_url, capsys):
    status, out, err = run(capsys, "bootstrap", str(EXAMPLE), f"--db-url={db_url}")
    assert status == 0, err
    for line in ("created policy student", "created resource group gpu", "created preset gpu-half",
                 "created image session:local", "created user admin@example.com", "created group default/vision"):  # fmt: skip
        assert line in out
    status, out, err = run(capsys, "bootstrap", str(EXAMPLE), f"--db-url={db_url}", "--json")
    assert status == 0, err
    assert json.loads(out) == {"changes": []}

    status, out, _ = run(capsys, "user", "list", "--json", f"--db-url={db_url}")
    users = {u["email"]: u for u in json.loads(out)}
    assert users["admin@example.com"]["role"] == "superadmin" and users["admin@example.com"]["need_password_change"]
    assert users["student@example.com"]["groups"] == ["default", "vision"]
    status, out, _ = run(capsys, "scaling-group", "list", "--json", f"--db-url={db_url}")
    gpu = next(s for s in json.loads(out) if s["name"] == "gpu")
    assert gpu["scheduler"] == "drf" and gpu["allowed_groups"] == ["default/vision"]
    assert gpu["scheduler_opts"]["agent_selection"] == "dispersed"


def test_changes_are_applied_and_reported(db_url, capsys, tmp_path):
    spec = yaml.safe_load(EXAMPLE.read_text())
    first = tmp_path / "a.yaml"
    first.write_text(yaml.safe_dump(spec))
    assert run(capsys, "bootstrap", str(first), f"--db-url={db_url}")[0] == 0
    spec["policies"][0]["total_resource_slots"] = {"cpu": 8}
    spec["presets"][0]["resource_slots"] = {"cpu": 1, "mem": "4g"}
    spec["users"][1]["password"] = "Another-pw-2"  # never resets an existing user's password
    second = tmp_path / "b.yaml"
    second.write_text(yaml.safe_dump(spec))
    status, out, err = run(capsys, "bootstrap", str(second), f"--db-url={db_url}")
    assert status == 0, err
    assert out.splitlines() == ["updated policy student: total_resource_slots", "updated preset small: settings"]
    status, out, _ = run(capsys, "policy", "list", "--json", f"--db-url={db_url}")
    student = next(p for p in json.loads(out) if p["name"] == "student")
    assert student["total_resource_slots"] == {"cpu": "8"}  # mem and GPU left out: unlimited again


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("users: [", "is not valid YAML at line"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("planets: []\n", "unknown section(s) planets"),
        ("policies: {name: x}\n", "section 'policies' must be a list"),
        ("policies:\n  - cpu: 1\n", "policies[0] needs 'name'"),
        ("policies:\n  - name: x\n    colour: red\n", "policies[0] (x): unknown field(s) colour"),
        ("policies:\n  - name: x\n    total_resource_slots: {cpu: -2}\n", "policies x: cpu: -2 is negative"),
        ("users:\n  - email: a@example.com\n    password: weak\n", "users a@example.com: the password needs"),
        ("users:\n  - email: a@example.com\n", "users a@example.com: a new user needs a password"),
        ("groups:\n  - name: g\n    domain: nowhere\n", "groups g: no domain named 'nowhere'"),
    ],
)
def test_bad_files_are_refused_with_one_line(db_url, capsys, tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    status, out, err = run(capsys, "bootstrap", str(path), f"--db-url={db_url}")
    assert status == 2
    assert message in err and err.count("\n") == 1, err


def test_missing_file(capsys, tmp_path):
    status, _, err = run(
        capsys, "bootstrap", str(tmp_path / "none.yaml"), f"--db-url=sqlite:///{tmp_path / 'x.sqlite'}"
    )
    assert status == 2 and "cannot read" in err


def test_nothing_is_kept_when_a_later_entry_fails(db_url, capsys, tmp_path):
    path = tmp_path / "half.yaml"
    path.write_text("policies:\n  - name: good\n  - name: bad\n    max_vfolder_count: -1\n")
    assert run(capsys, "bootstrap", str(path), f"--db-url={db_url}")[0] == 2
    status, out, _ = run(capsys, "policy", "list", "--json", f"--db-url={db_url}")
    assert [p["name"] for p in json.loads(out)] == ["default"]
