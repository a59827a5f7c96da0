"""The package's metadata has one home (pyproject.toml) and the installed package exposes its commands."""

from __future__ import annotations

import configparser
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_setup_cfg_holds_tool_configuration_only():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    packaging = [s for s in cfg.sections() if s in ("metadata", "options") or s.startswith("options.")]
    assert packaging == [], f"setup.cfg repeats pyproject.toml's metadata in {packaging}"
    assert cfg["tool:pytest"]["testpaths"].strip() == "tests"


def test_spawners_and_authenticator_entry_points_load():
    spawners = {ep.name: ep for ep in entry_points(group="jupyterhub.spawners") if ep.name.startswith("backendai-")}
    assert {"backendai-docker", "backendai-local", "backendai-swarm"} <= set(spawners)
    for ep in spawners.values():
        assert ep.load().__module__.startswith("jupyter_backendai.hub.")
    (auth,) = [ep for ep in entry_points(group="jupyterhub.authenticators") if ep.name == "backendai"]
    assert auth.load().__name__ == "BackendAIAuthenticator"


def test_console_script_entry_point():
    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "jupyter-backendai"]
    assert ep.value == "jupyter_backendai.cli:main"
    assert ep.load().__name__ == "main"


def test_migrations_ship_with_the_package():
    import jupyter_backendai.db.engine as engine

    assert (engine.MIGRATIONS / "env.py").is_file()
    assert any((engine.MIGRATIONS / "versions").glob("0001_*.py"))


def test_graphql_schema_ships_with_the_package():
    from importlib import resources

    from jupyter_backendai.manager.gql import schema

    shipped = resources.files("jupyter_backendai.manager.gql").joinpath("schema.graphql")
    assert shipped.is_file()
    assert "type Query" in schema.SDL and "type Mutation" in schema.SDL
