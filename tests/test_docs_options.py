"""One source per fact: every option documents itself, and docs/options.md is rendered from that.

The options reference is generated from the traits' ``help=`` (``jupyter_backendai/_docs.py``);
these tests fail when an option has no real help, when a configurable class is missing from the
reference, when the committed reference differs from what the traits say, and when the internal
feature numbers (F1…F48 of the design) leak into text users read.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
from traitlets.config import Application, Configurable

import jupyter_backendai
from jupyter_backendai import _docs

ROOT = Path(__file__).resolve().parent.parent
MIN_HELP = 20
# A feature number of the design's list: F1 … F48, alone or in a range (F24–F32).
FEATURE_NUMBER = re.compile(r"\bF[0-9]{1,2}\b")


def _modules():
    for info in pkgutil.walk_packages(jupyter_backendai.__path__, "jupyter_backendai."):
        if info.name.endswith("__main__"):
            continue  # running it is what importing it does
        yield importlib.import_module(info.name)


def configurable_classes() -> list[type[Configurable]]:
    found = {}
    for module in _modules():
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Configurable) and obj.__module__ == module.__name__:
                found[f"{obj.__module__}:{obj.__name__}"] = obj
    return [found[k] for k in sorted(found)]


CLASSES = configurable_classes()


def test_the_walk_finds_the_configurables():
    names = {c.__name__ for c in CLASSES}
    # The walk itself must not come up empty (that would pass every check below).
    assert {"DockerSessionSpawner", "KubeSessionSpawner", "ManagerApp", "BackendAIExtension", "UserCreate"} <= names


@pytest.mark.parametrize("cls", [c for c in CLASSES if _docs.own_traits(c)], ids=lambda c: c.__name__)
def test_every_option_has_a_real_help(cls):
    thin = {name: t.help for name, t in _docs.own_traits(cls).items() if len((t.help or "").strip()) < MIN_HELP}
    assert not thin, f"{cls.__module__}.{cls.__name__}: options without a real help= (what, default, units): {thin}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_no_feature_numbers_in_help(cls):
    # --help prints the options' help, a command's description and its flags' help.
    texts = {name: t.help for name, t in _docs.own_traits(cls).items()}
    if issubclass(cls, Application):
        description = cls.description
        if not isinstance(description, str):
            description = cls.class_traits()["description"].default_value
        texts["description"] = description
        texts.update({f"--{flag}": value[1] for flag, value in cls.flags.items()})
    leaks = {name: text for name, text in texts.items() if FEATURE_NUMBER.search(text or "")}
    assert not leaks, f"{cls.__name__}: feature numbers in text users read: {leaks}"


def test_every_configurable_outside_the_cli_is_in_the_reference():
    listed = {s.path for s in _docs.SECTIONS}
    # The CLI's options are its commands' flags, documented by `jupyter-backendai <command> --help`.
    missing = [
        f"{c.__module__}:{c.__name__}"
        for c in CLASSES
        if _docs.own_traits(c) and not c.__module__.startswith("jupyter_backendai.cli")
    ]
    missing = [path for path in missing if path not in listed]
    assert not missing, f"configurable classes missing from jupyter_backendai/_docs.py SECTIONS: {missing}"


def test_options_md_is_rendered_from_the_traits():
    committed = (ROOT / "docs" / "options.md").read_text()
    assert committed == _docs.render(), (
        f"docs/options.md differs from the traits' help: run `{_docs.REGENERATE}` and commit docs/options.md"
    )


def test_the_rendered_defaults_do_not_depend_on_the_machine(monkeypatch, tmp_path):
    # Defaults computed from the environment are shown as such, so CI and laptops render alike.
    before = _docs.render()
    for name in ("BACKENDAI_DB_URL", "BACKENDAI_STORAGE", "BACKENDAI_ENDPOINT", "BACKENDAI_LIFETIME_WARNING"):
        monkeypatch.setenv(name, "/elsewhere" if name != "BACKENDAI_LIFETIME_WARNING" else "5")
    monkeypatch.chdir(tmp_path)
    assert _docs.render() == before


def test_the_table_cell_keeps_pipes_and_paragraphs():
    cell = _docs.help_markdown("""First ``a|b`` line
        continued.

        Second paragraph.""")
    assert cell == "First `a\\|b` line continued.<br><br>Second paragraph."


def _user_facing_texts():
    for path in [
        "README.md",
        "SECURITY.md",
        "CONTRIBUTING.md",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
    ]:
        yield path, (ROOT / path).read_text()
    for template in sorted((ROOT / "jupyter_backendai" / "hub" / "templates").glob("*.html")):
        # Jinja comments are not rendered; the page is what users see.
        text = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)
        yield str(template.relative_to(ROOT)), text


DOCUMENTS = list(_user_facing_texts())


@pytest.mark.parametrize("path,text", DOCUMENTS, ids=[path for path, _ in DOCUMENTS])
def test_no_feature_numbers_in_documents(path, text):
    hits = [line.strip() for line in text.splitlines() if FEATURE_NUMBER.search(line)]
    assert not hits, f"{path} refers to the design's feature numbers, which users do not have: {hits}"


def test_no_feature_numbers_in_the_api_document():
    # The OpenAPI document's summaries and descriptions are the handlers' docstrings.
    from jupyter_backendai.manager.base import APIHandler

    found = {}
    for module in _modules():
        if not module.__name__.startswith("jupyter_backendai.manager"):
            continue
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, APIHandler) and obj.__module__ == module.__name__:
                docs = [obj.__doc__ or ""] + [
                    getattr(obj, m).__doc__ or "" for m in ("get", "post", "put", "patch", "delete")
                ]
                if any(FEATURE_NUMBER.search(d) for d in docs):
                    found[obj.__name__] = [FEATURE_NUMBER.findall(d) for d in docs if FEATURE_NUMBER.search(d)]
    assert not found, f"feature numbers in the API document (handler docstrings): {found}"


def _strings_outside_docstrings(tree: ast.AST):
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_no_feature_numbers_in_messages():
    # Error messages, log lines, option help, form labels: every string the code holds, but not
    # docstrings and comments (read by developers; the API's docstrings are checked above).
    leaks = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:80]!r}"
        for path in sorted((ROOT / "jupyter_backendai").rglob("*.py"))
        for node in _strings_outside_docstrings(ast.parse(path.read_text()))
        if FEATURE_NUMBER.search(node.value)
    ]
    assert not leaks, f"feature numbers in strings users may read: {leaks}"
