"""The two packaging files agree, and the installed package exposes its command."""

from __future__ import annotations

import configparser
from importlib.metadata import entry_points
from pathlib import Path

import tomllib

ROOT = Path(__file__).parent.parent


def test_setup_cfg_and_pyproject_agree():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cfg_requires = sorted(line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip())
    assert cfg_requires == sorted(project["dependencies"])
    assert cfg["options"]["python_requires"] == project["requires-python"]
    scripts = [line.strip() for line in cfg["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
    assert scripts == [f"{k} = {v}" for k, v in project["scripts"].items()]


def test_console_script_entry_point():
    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "jupyter-backendai"]
    assert ep.value == "jupyter_backendai.cli:main"
    assert ep.load().__name__ == "main"


def test_migrations_ship_with_the_package():
    import jupyter_backendai.db.engine as engine

    assert (engine.MIGRATIONS / "env.py").is_file()
    assert any((engine.MIGRATIONS / "versions").glob("0001_*.py"))
