"""The session home's layout and the folder-name rules, said once in ``core/home.py``."""

import pytest

from jupyter_backendai import errors
from jupyter_backendai.core import home
from jupyter_backendai.db import folders
from jupyter_backendai.hub import spec


def test_everyone_reads_the_same_layout():
    assert (home.HOME, home.USERNAME, home.UID, home.GID) == ("/home/work", "work", 1000, 1000)
    assert (spec.HOME, spec.USERNAME, spec.ID_CONTAINER) == (home.HOME, home.USERNAME, home.ID_CONTAINER)
    assert folders.MOUNT_ROOT == home.HOME and folders.RESERVED_NAMES == home.RESERVED_NAMES
    assert home.mount_path("data") == "/home/work/data"
    s = spec.SessionSpec  # the container user defaults to the home's owner
    assert (s.__dataclass_fields__["uid"].default, s.__dataclass_fields__["gid"].default) == (1000, 1000)


def test_a_new_folder_name_breaking_a_rule_is_a_bad_request():
    with pytest.raises(home.FolderNameError, match="contains a space") as caught:
        home.check_folder_name("my data")
    assert isinstance(caught.value, errors.BadRequest) and caught.value.status == 400
    assert home.check_folder_name("cafe\u0301") == "caf\u00e9"


@pytest.mark.parametrize("name", ["id_container", ".jupyter", ".bashrc", ".zsh_profile"])
def test_names_the_session_uses_itself_are_reserved(name):
    assert home.is_reserved(name)
    with pytest.raises(home.FolderNameError, match=f"is reserved: sessions use /home/work/{name} themselves"):
        home.check_folder_name(name)


def test_only_the_sessions_own_files_are_refused_at_mount():
    # An old dot-folder named like a reserved name still mounts (refusing it would stop every
    # session of its owner, since dot-folders are automounted); the SSH key file never is hidden.
    assert home.SESSION_FILES == {home.ID_CONTAINER} and home.SESSION_FILES < home.RESERVED_NAMES
    assert home.check_mount_name(".bashrc") == ".bashrc"
    assert not home.is_reserved(".ssh")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\x00b", "a:b", "x" * 256, None])
def test_mount_names_are_one_safe_path_component(name):
    with pytest.raises(home.FolderNameError):
        home.check_mount_name(name)
    with pytest.raises(spec.SpecError):
        spec.check_folder_name(name)
