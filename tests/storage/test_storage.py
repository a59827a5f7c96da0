"""The folder store: layout, file operations, path safety, atomic writes, uploads, quota, ranges.

The safety tests plant symbolic links inside a folder that point at an ``outside`` directory
(what a session could do to its own folder) and check, for every operation, that the
operation is refused or touches only the link, and that everything outside is unchanged.
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import io
import json
import os
import threading
import time
import uuid
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from jupyter_backendai import storage
from jupyter_backendai.storage import (
    AlreadyExists,
    Conflict,
    FolderStore,
    NotFound,
    QuotaExceeded,
    RangeNotSatisfiable,
    StorageError,
    UnknownHost,
    UnsafePath,
    UploadTooLarge,
)

MiB = 1024**2
GiB = 1024**3
AS_ROOT = os.geteuid() == 0


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path / "store", hosts=("local", "nfs"))


@pytest.fixture
def folder(store: FolderStore) -> Path:
    return store.create("local", uuid.uuid4())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside every folder, with content that must survive every test."""
    out = tmp_path / "outside"
    (out / "deep").mkdir(parents=True)
    (out / "secret.txt").write_text("secret")
    (out / "deep" / "keep.txt").write_text("keep")
    return out


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every entry below ``directory`` with its content (``None`` for directories)."""
    return {
        str(p.relative_to(directory)): (None if p.is_dir() else p.read_bytes()) for p in sorted(directory.rglob("*"))
    }


@pytest.fixture
def trapped(folder: Path, outside: Path) -> Path:
    """The folder with links a session could plant: to an outside file, an outside directory, and mid-path."""
    (folder / "link_file").symlink_to(outside / "secret.txt")
    (folder / "link_dir").symlink_to(outside)
    (folder / "sub").mkdir()
    (folder / "sub" / "link_dir").symlink_to(outside)
    (folder / "relative_out").symlink_to("../../../../outside")
    (folder / "inner.txt").write_text("inner")
    return folder


def assert_no_leak(exc: pytest.ExceptionInfo[StorageError], tmp_path: Path) -> None:
    assert str(tmp_path) not in str(exc.value)


# -- layout and folder lifecycle -----------------------------------------------------------
def test_folder_layout_and_lifecycle(store: FolderStore, tmp_path: Path) -> None:
    fid = uuid.UUID("ab12cd34-0000-4000-8000-000000000001")
    assert not store.exists("local", fid)
    path = store.create("local", fid)
    assert path == tmp_path / "store" / "local" / "ab" / fid.hex
    assert path.is_dir() and store.exists("local", fid) and store.exists("local", str(fid))
    st = path.stat()
    assert st.st_mode & 0o777 == 0o755
    if AS_ROOT:
        assert (st.st_uid, st.st_gid) == (1000, 1000)
    else:
        assert st.st_uid == os.geteuid()
    with pytest.raises(AlreadyExists) as exc:
        store.create("local", fid)
    assert exc.value.status == 409
    assert store.path("nfs", fid) == tmp_path / "store" / "nfs" / "ab" / fid.hex
    store.delete("local", fid)
    assert not path.exists() and not store.exists("local", fid)
    store.delete("local", fid)  # already gone: fine
    store.delete("nfs", uuid.uuid4())  # never existed, bucket missing: fine


def test_create_with_owner_and_mode(store: FolderStore) -> None:
    path = store.create("local", uuid.uuid4(), owner_uid=1234, owner_gid=4321, mode=0o770)
    st = path.stat()
    assert st.st_mode & 0o777 == 0o770
    if AS_ROOT:
        assert (st.st_uid, st.st_gid) == (1234, 4321)


def test_unknown_host_and_bad_ids(store: FolderStore, tmp_path: Path) -> None:
    with pytest.raises(UnknownHost) as exc:
        store.path("elsewhere", uuid.uuid4())
    assert exc.value.status == 400 and "'elsewhere'" in str(exc.value)
    with pytest.raises(UnknownHost):
        store.create("elsewhere", uuid.uuid4())
    with pytest.raises(UnsafePath):
        store.path("local", "../../etc")
    for bad in ("../x", ".uploads", "a/b", ""):
        with pytest.raises(UnknownHost):
            FolderStore(tmp_path / "s2", hosts=[bad])


def test_delete_folder_does_not_follow_links(store: FolderStore, trapped: Path, outside: Path) -> None:
    before = snapshot(outside)
    (trapped / "sub" / "nested").mkdir()
    (trapped / "sub" / "nested" / "to_deep").symlink_to(outside / "deep")
    fid = uuid.UUID(trapped.name)
    store.delete("local", fid)
    assert not trapped.exists()
    assert snapshot(outside) == before


# -- path validation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [("", ""), (".", ""), ("./", ""), ("a//b/./c/", "a/b/c"), ("데이터 파일.csv", "데이터 파일.csv"), ("...", "...")],
)
def test_normalize_relpath(given: str, expected: str) -> None:
    assert storage.normalize_relpath(given) == expected


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("..", "'..'"),
        ("a/../b", "'..'"),
        ("a/..", "'..'"),
        ("/etc/passwd", "relative"),
        ("//etc", "relative"),
        ("a\x00b", "NUL"),
        ("a\\..\\b", "backslash"),
    ],
)
def test_unsafe_relpaths_are_refused_everywhere(folder: Path, tmp_path: Path, given: str, why: str) -> None:
    before = snapshot(tmp_path / "store")
    calls = [
        lambda: storage.list_dir(folder, given),
        lambda: storage.stat(folder, given),
        lambda: storage.open_read(folder, given),
        lambda: storage.write_atomic(folder, given, [b"x"]),
        lambda: storage.mkdir(folder, given, parents=True),
        lambda: storage.rename(folder, given, "x"),
        lambda: storage.move(folder, given, ""),
        lambda: storage.move(folder, "x", given),
        lambda: storage.delete(folder, [given], recursive=True),
        lambda: storage.resolve(folder, given),
    ]
    for call in calls:
        with pytest.raises(UnsafePath) as exc:
            call()
        assert exc.value.status == 400
        assert why in str(exc.value)
        assert_no_leak(exc, tmp_path)
    assert snapshot(tmp_path / "store") == before


@pytest.mark.parametrize("bad", ["a/b", "..", ".", "", "x\x00", "a\\b"])
def test_rename_refuses_names_that_are_not_one_component(folder: Path, bad: str) -> None:
    (folder / "f.txt").write_text("f")
    with pytest.raises(UnsafePath):
        storage.rename(folder, "f.txt", bad)
    assert (folder / "f.txt").read_text() == "f"


# -- symbolic links planted in the folder --------------------------------------------------
def test_links_are_listed_as_links(trapped: Path) -> None:
    entries = {e.name: e for e in storage.list_dir(trapped)}
    assert entries["link_file"].type == "symlink"
    assert entries["link_file"].target.endswith("outside/secret.txt")
    assert entries["link_dir"].type == "symlink"
    assert entries["link_file"].size != len("secret")  # the link's own size, not its target's
    assert entries["sub"].type == "dir"
    assert storage.stat(trapped, "link_dir").type == "symlink"


@pytest.mark.parametrize(
    "path",
    ["link_dir", "link_dir/deep", "sub/link_dir", "sub/link_dir/deep", "relative_out", "relative_out/deep"],
)
def test_listing_through_links_is_refused(trapped: Path, tmp_path: Path, path: str) -> None:
    with pytest.raises(UnsafePath) as exc:
        storage.list_dir(trapped, path)
    assert "symbolic link" in str(exc.value)
    assert_no_leak(exc, tmp_path)


@pytest.mark.parametrize(
    "path", ["link_file", "link_dir/secret.txt", "sub/link_dir/secret.txt", "relative_out/secret.txt"]
)
def test_reading_through_links_is_refused(trapped: Path, path: str) -> None:
    with pytest.raises(UnsafePath):
        storage.open_read(trapped, path)
    with pytest.raises(UnsafePath):
        storage.read_range(trapped, path, 0, 5)


@pytest.mark.parametrize(
    "path",
    ["link_file", "link_dir/secret.txt", "link_dir/new.txt", "sub/link_dir/new.txt", "sub/link_dir/deep/keep.txt"],
)
def test_writing_through_links_is_refused(trapped: Path, outside: Path, path: str) -> None:
    before = snapshot(outside)
    for parents in (False, True):
        with pytest.raises(UnsafePath):
            storage.write_atomic(trapped, path, [b"pwned"], parents=parents)
    assert snapshot(outside) == before
    assert (trapped / "link_file").is_symlink()


@pytest.mark.parametrize("path", ["link_dir/sub", "sub/link_dir/deep/more", "link_file/x"])
def test_mkdir_through_links_is_refused(trapped: Path, outside: Path, path: str) -> None:
    before = snapshot(outside)
    for parents in (False, True):
        with pytest.raises(UnsafePath):
            storage.mkdir(trapped, path, parents=parents)
    assert snapshot(outside) == before


def test_rename_and_move_through_links_are_refused(trapped: Path, outside: Path) -> None:
    before = snapshot(outside)
    with pytest.raises(UnsafePath):
        storage.rename(trapped, "link_dir/secret.txt", "stolen.txt")
    with pytest.raises(UnsafePath):
        storage.rename(trapped, "sub/link_dir/deep", "renamed")
    with pytest.raises(UnsafePath):
        storage.move(trapped, "link_dir/secret.txt", "")  # pull a file in from outside
    with pytest.raises(UnsafePath):
        storage.move(trapped, "inner.txt", "link_dir")  # push a file out
    with pytest.raises(UnsafePath):
        storage.move(trapped, "inner.txt", "sub/link_dir/deep")
    assert snapshot(outside) == before
    assert (trapped / "inner.txt").read_text() == "inner"
    # Renaming or moving the link itself is fine: the link moves, its target does not.
    assert storage.rename(trapped, "link_file", "renamed_link") == "renamed_link"
    assert storage.move(trapped, "renamed_link", "sub") == "sub/renamed_link"
    assert (trapped / "sub" / "renamed_link").is_symlink()
    assert snapshot(outside) == before


def test_delete_removes_links_not_targets(trapped: Path, outside: Path) -> None:
    before = snapshot(outside)
    with pytest.raises(UnsafePath):
        storage.delete(trapped, ["link_dir/secret.txt"])
    with pytest.raises(UnsafePath):
        storage.delete(trapped, ["sub/link_dir/deep"], recursive=True)
    assert snapshot(outside) == before
    storage.delete(trapped, ["link_file", "link_dir"])  # links: no recursive needed
    assert not (trapped / "link_file").is_symlink() and not (trapped / "link_dir").is_symlink()
    storage.delete(trapped, ["sub"], recursive=True)  # a directory holding a link to outside
    assert not (trapped / "sub").exists()
    assert snapshot(outside) == before


def test_resolve(trapped: Path, tmp_path: Path) -> None:
    assert storage.resolve(trapped, "inner.txt", must_exist=True) == trapped / "inner.txt"
    assert storage.resolve(trapped, "new/dir/file") == trapped / "new" / "dir" / "file"
    assert storage.resolve(trapped, "") == trapped
    with pytest.raises(NotFound) as exc:
        storage.resolve(trapped, "new/dir", must_exist=True)
    assert exc.value.status == 404 and "'new'" in str(exc.value)
    assert_no_leak(exc, tmp_path)
    for path in ("link_file", "link_dir", "link_dir/secret.txt", "sub/link_dir/x/y"):
        with pytest.raises(UnsafePath):
            storage.resolve(trapped, path)


def test_links_pointing_inside_are_not_followed_either(folder: Path) -> None:
    """The rule is "no link is followed", which needs no judgement of where a link leads."""
    (folder / "real").mkdir()
    (folder / "real" / "f.txt").write_text("f")
    (folder / "alias").symlink_to("real")
    assert [e.name for e in storage.list_dir(folder, "real")] == ["f.txt"]
    with pytest.raises(UnsafePath):
        storage.list_dir(folder, "alias")
    with pytest.raises(UnsafePath):
        storage.open_read(folder, "alias/f.txt")


def test_directory_swapped_for_a_link_during_a_write_is_not_followed(folder: Path, outside: Path) -> None:
    """A session replaces the target directory by a link while the upload streams (TOCTOU).

    The write holds a descriptor of the directory it checked, so the file lands there (now
    renamed) and nothing appears outside.
    """
    (folder / "sub").mkdir()
    before = snapshot(outside)

    def body():
        yield b"first "
        os.rename(folder / "sub", folder / "sub_moved")
        (folder / "sub").symlink_to(outside)
        yield b"second"

    storage.write_atomic(folder, "sub/data.txt", body())
    assert snapshot(outside) == before
    assert (folder / "sub_moved" / "data.txt").read_bytes() == b"first second"


# -- operations ----------------------------------------------------------------------------
def test_list_dir_and_stat(folder: Path) -> None:
    (folder / "b dir").mkdir()
    (folder / "a.txt").write_bytes(b"12345")
    os.chmod(folder / "a.txt", 0o640)
    (folder / "résumé 2.txt").write_text("r")
    os.mkfifo(folder / "pipe")
    entries = storage.list_dir(folder)
    assert [e.name for e in entries] == ["a.txt", "b dir", "pipe", "résumé 2.txt"]
    a = entries[0].as_dict()
    assert a["type"] == "file" and a["size"] == 5 and a["mode"] == "-rw-r-----" and a["target"] is None
    assert datetime.fromisoformat(a["mtime"]).utcoffset().total_seconds() == 0
    assert entries[1].type == "dir" and entries[1].mode.startswith("d")
    assert entries[2].type == "other"
    assert storage.list_dir(folder, "b dir") == []
    assert storage.stat(folder, "a.txt").size == 5
    assert storage.stat(folder, "").type == "dir"
    with pytest.raises(NotFound):
        storage.list_dir(folder, "missing")
    with pytest.raises(Conflict):
        storage.list_dir(folder, "a.txt")
    with pytest.raises(NotFound):
        storage.stat(folder, "missing")


def test_missing_folder(store: FolderStore) -> None:
    with pytest.raises(NotFound) as exc:
        storage.list_dir(store.path("local", uuid.uuid4()))
    assert str(exc.value) == "the folder does not exist"


def test_mkdir(folder: Path) -> None:
    assert storage.mkdir(folder, "a") == "a"
    assert (folder / "a").is_dir() and (folder / "a").stat().st_mode & 0o777 == 0o755
    with pytest.raises(AlreadyExists) as exc:
        storage.mkdir(folder, "a")
    assert exc.value.status == 409 and "'a' already exists" in str(exc.value)
    with pytest.raises(NotFound):
        storage.mkdir(folder, "x/y/z")
    assert storage.mkdir(folder, "x//y/./z", parents=True) == "x/y/z"
    assert storage.mkdir(folder, "x/y/z", parents=True) == "x/y/z"  # like mkdir -p
    assert (folder / "x" / "y" / "z").is_dir()
    (folder / "file").write_text("f")
    with pytest.raises(AlreadyExists):
        storage.mkdir(folder, "file", parents=True)
    with pytest.raises(Conflict):
        storage.mkdir(folder, "file/sub", parents=True)
    if AS_ROOT:
        assert {(folder / p).stat().st_uid for p in ("a", "x", "x/y", "x/y/z")} == {1000}


def test_rename(folder: Path) -> None:
    (folder / "d").mkdir()
    (folder / "d" / "old.txt").write_text("o")
    (folder / "d" / "taken").write_text("t")
    assert storage.rename(folder, "d/old.txt", "데이터 파일.csv") == "d/데이터 파일.csv"
    assert (folder / "d" / "데이터 파일.csv").read_text() == "o"
    with pytest.raises(AlreadyExists):
        storage.rename(folder, "d/데이터 파일.csv", "taken")
    assert (folder / "d" / "taken").read_text() == "t"
    with pytest.raises(NotFound):
        storage.rename(folder, "d/missing", "x")
    with pytest.raises(UnsafePath):
        storage.rename(folder, "", "x")
    assert storage.rename(folder, "d", "d2") == "d2"
    assert (folder / "d2" / "taken").exists()


def test_move(folder: Path) -> None:
    (folder / "src" / "inner").mkdir(parents=True)
    (folder / "dst").mkdir()
    (folder / "f.txt").write_text("f")
    assert storage.move(folder, "f.txt", "dst") == "dst/f.txt"
    assert (folder / "dst" / "f.txt").read_text() == "f"
    assert storage.move(folder, "dst/f.txt", "") == "f.txt"
    assert storage.move(folder, "src", "dst") == "dst/src"
    assert (folder / "dst" / "src" / "inner").is_dir()
    with pytest.raises(Conflict, match="into itself"):
        storage.move(folder, "dst", "dst/src/inner")
    (folder / "dst" / "f.txt").write_text("other")
    with pytest.raises(AlreadyExists):
        storage.move(folder, "f.txt", "dst")
    assert (folder / "f.txt").read_text() == "f"
    with pytest.raises(Conflict, match="not a directory"):
        storage.move(folder, "dst/f.txt", "f.txt")
    with pytest.raises(NotFound):
        storage.move(folder, "f.txt", "nowhere")
    with pytest.raises(NotFound):
        storage.move(folder, "nothing", "dst")


def test_delete(folder: Path) -> None:
    (folder / "d" / "e").mkdir(parents=True)
    (folder / "d" / "e" / "f.txt").write_text("f")
    (folder / "a.txt").write_text("a")
    (folder / "b.txt").write_text("b")
    with pytest.raises(Conflict, match="recursive"):
        storage.delete(folder, ["a.txt", "d"])
    assert (folder / "a.txt").exists()  # checked everything before removing anything
    with pytest.raises(NotFound):
        storage.delete(folder, ["a.txt", "missing"])
    assert (folder / "a.txt").exists()
    storage.delete(folder, "a.txt")
    assert not (folder / "a.txt").exists()
    storage.delete(folder, ["d", "d/e/f.txt", "b.txt"], recursive=True)
    assert storage.list_dir(folder) == []
    with pytest.raises(UnsafePath):
        storage.delete(folder, [""], recursive=True)
    assert folder.is_dir()


def test_open_read(folder: Path) -> None:
    (folder / "데이터 파일.csv").write_bytes(b"a,b\n1,2\n")
    with storage.open_read(folder, "데이터 파일.csv") as f:
        assert f.read() == b"a,b\n1,2\n"
    (folder / "d").mkdir()
    with pytest.raises(Conflict, match="is a directory"):
        storage.open_read(folder, "d")
    os.mkfifo(folder / "pipe")
    with pytest.raises(Conflict, match="not a regular file"):
        storage.open_read(folder, "pipe")
    with pytest.raises(NotFound):
        storage.open_read(folder, "nope")


def test_usage(folder: Path, outside: Path) -> None:
    assert storage.usage(folder) == (0, 0)
    (folder / "a").mkdir()
    (folder / "a" / "x.bin").write_bytes(b"x" * 1000)
    (folder / "a" / "b").mkdir()
    (folder / "a" / "b" / "y.bin").write_bytes(b"y" * 24)
    os.link(folder / "a" / "x.bin", folder / "hardlink.bin")  # the same bytes: counted once
    (outside / "huge.bin").write_bytes(b"h" * 100_000)
    (folder / "out").symlink_to(outside)
    (folder / "out_file").symlink_to(outside / "huge.bin")
    used, count = storage.usage(folder)
    assert used == 1024
    assert count == 5  # x.bin, y.bin, hardlink.bin, two links


def test_usage_of_a_deep_tree(folder: Path) -> None:
    """Iterative walk: deeper than Python's recursion limit would allow a naive recursion."""
    deep = "/".join(["d"] * 1100)
    storage.mkdir(folder, deep, parents=True)
    storage.write_atomic(folder, deep + "/f", [b"abc"])
    assert storage.usage(folder) == (3, 1)
    storage.delete(folder, ["d"], recursive=True)
    assert storage.list_dir(folder) == []


# -- atomic writes -------------------------------------------------------------------------
def test_write_atomic(folder: Path) -> None:
    entry = storage.write_atomic(folder, "résumé 2.txt", [b"hello ", bytearray(b"world"), memoryview(b"!")])
    assert entry.name == "résumé 2.txt" and entry.size == 12 and entry.type == "file"
    assert (folder / "résumé 2.txt").read_bytes() == b"hello world!"
    assert (folder / "résumé 2.txt").stat().st_mode & 0o777 == 0o644
    if AS_ROOT:
        assert (folder / "résumé 2.txt").stat().st_uid == 1000
    os.chmod(folder / "résumé 2.txt", 0o600)
    storage.write_atomic(folder, "résumé 2.txt", [b"new"])
    assert (folder / "résumé 2.txt").read_bytes() == b"new"
    assert (folder / "résumé 2.txt").stat().st_mode & 0o777 == 0o600  # kept
    with pytest.raises(NotFound):
        storage.write_atomic(folder, "a/b/c.txt", [b"x"])
    storage.write_atomic(folder, "a/b/c.txt", [b"x"], parents=True)
    assert (folder / "a" / "b" / "c.txt").read_bytes() == b"x"
    with pytest.raises(Conflict, match="is a directory"):
        storage.write_atomic(folder, "a", [b"x"])
    with pytest.raises(Conflict):
        storage.write_atomic(folder, "", [b"x"])
    assert [p.name for p in folder.iterdir() if p.name.startswith(storage.TEMP_PREFIX)] == []


def test_write_atomic_failure_keeps_old_content(folder: Path) -> None:
    (folder / "data.csv").write_bytes(b"old content")

    def broken():
        yield b"new "
        yield b"partial "
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        storage.write_atomic(folder, "data.csv", broken())
    assert (folder / "data.csv").read_bytes() == b"old content"
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv"]  # no temp file left behind
    with pytest.raises(ConnectionError):
        storage.write_atomic(folder, "fresh.csv", broken())
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv"]


def test_write_atomic_with_declared_size(folder: Path) -> None:
    with pytest.raises(StorageError, match="expected 10 bytes, received 3") as exc:
        storage.write_atomic(folder, "f", [b"abc"], size=10)
    assert exc.value.status == 400
    with pytest.raises(StorageError, match="received more"):
        storage.write_atomic(folder, "f", [b"abc", b"def"], size=4)
    assert not (folder / "f").exists()
    storage.write_atomic(folder, "f", [b"abc"], size=3)
    assert (folder / "f").read_bytes() == b"abc"


# -- quota ---------------------------------------------------------------------------------
def test_quota_refusals_carry_the_numbers(folder: Path, tmp_path: Path) -> None:
    with open(folder / "big.bin", "wb") as f:  # sparse: 1 GiB of apparent size, no disk used
        f.truncate(GiB)
    with pytest.raises(QuotaExceeded) as exc:
        storage.write_atomic(folder, "more.bin", [b"x"], size=12 * MiB, quota=GiB)
    assert exc.value.status == 413
    assert str(exc.value) == (
        "the upload of 12 MiB would take folder usage to 1.01 GiB (1086324736 B), "
        "over its capacity of 1 GiB (1 GiB used)"
    )
    assert (exc.value.used, exc.value.adding, exc.value.quota) == (GiB, 12 * MiB, GiB)
    assert_no_leak(exc, tmp_path)
    assert not (folder / "more.bin").exists()
    # Size unknown: refused once the stream crosses the line, nothing written.
    with pytest.raises(QuotaExceeded, match="the upload of more than 2 B") as exc:
        storage.write_atomic(folder, "more.bin", iter([b"a", b"b"]), quota=GiB + 1)
    assert not (folder / "more.bin").exists()
    # Replacing a file frees its size: 1 GiB replaced by 10 bytes fits.
    storage.write_atomic(folder, "big.bin", [b"0123456789"], size=10, quota=GiB)
    assert storage.usage(folder) == (10, 1)
    storage.write_atomic(folder, "fits.bin", [b"x" * 90], quota=100)
    with pytest.raises(QuotaExceeded, match=r"the upload of 1 B would take folder usage to 101 B, over its capacity"):
        storage.write_atomic(folder, "over.bin", [b"x"], size=1, quota=100)


def test_upload_quota(store: FolderStore, folder: Path) -> None:
    fid = uuid.UUID(folder.name)
    (folder / "existing.bin").write_bytes(b"e" * 300)
    with pytest.raises(QuotaExceeded) as exc:
        store.begin_upload("local", fid, "new.bin", 400, quota=500)
    assert exc.value.status == 413
    assert str(exc.value) == (
        "the upload of 400 B would take folder usage to 700 B, over its capacity of 500 B (300 B used)"
    )
    assert (
        not (store.root / ".uploads").exists() or [p for p in (store.root / ".uploads").iterdir() if p.is_dir()] == []
    )
    upload = store.begin_upload("local", fid, "existing.bin", 450, quota=500)  # replaces 300: fits
    store.append(upload, 0, b"x" * 100, quota=500)
    (folder / "grown.bin").write_bytes(b"g" * 100)  # the session writes meanwhile
    with pytest.raises(QuotaExceeded, match=r"usage to 550 B, over its capacity of 500 B \(400 B used\)"):
        store.append(upload, 100, b"x" * 100, quota=500)
    assert store.upload_offset(upload) == 100


def test_parallel_uploads_reserve_their_declared_sizes(store: FolderStore, folder: Path) -> None:
    """Ten uploads asked for at once, 300 B each into 1000 B: three fit, the rest are refused."""
    fid = uuid.UUID(folder.name)
    other = store.create("local", uuid.uuid4())
    start = threading.Barrier(10)

    def ask(i: int) -> str | QuotaExceeded:
        start.wait(10)
        try:
            return store.begin_upload("local", fid, f"f{i}.bin", 300, quota=1000)
        except QuotaExceeded as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(ask, range(10)))
    admitted = [a for a in answers if isinstance(a, str)]
    refused = [a for a in answers if isinstance(a, QuotaExceeded)]
    assert len(admitted) == 3 and len(refused) == 7
    assert store.reserved_bytes(fid) == 900
    assert refused[0].reserved in (300, 600, 900)
    assert "held by uploads in progress" in str(refused[0])
    # Another folder's room is its own.
    store.begin_upload("local", uuid.UUID(other.name), "x.bin", 1000, quota=1000)

    # A finished upload's bytes count as usage instead; an aborted one gives its room back.
    store.append(admitted[0], 0, b"a" * 300)
    store.finish(admitted[0])
    assert store.reserved_bytes(fid) == 600
    with pytest.raises(QuotaExceeded, match=r"\(300 B used, 600 B held by uploads in progress\)"):
        store.begin_upload("local", fid, "late.bin", 101, quota=1000)
    store.abort(admitted[1])
    late = store.begin_upload("local", fid, "late.bin", 400, quota=1000)
    # The PATCH re-check counts the others' reservations too, not its own twice.
    assert store.append(late, 0, b"l" * 400, quota=1000) == 400
    # Stale uploads removed by the clean-up hold nothing any more.
    assert store.cleanup_stale(-1) == 3 and store.reserved_bytes(fid) == 0

    # An abandoned upload (its URL expired) gives its room back at the next request.
    abandoned = store.begin_upload("local", fid, "gone.bin", 600, quota=1000)
    with pytest.raises(QuotaExceeded):
        store.begin_upload("local", fid, "next.bin", 300, quota=1000, expire_after=3600)
    long_ago = time.time() - 7200
    for path in (store.uploads_dir / abandoned, *(store.uploads_dir / abandoned).iterdir()):
        os.utime(path, (long_ago, long_ago))
    store.begin_upload("local", fid, "next.bin", 300, quota=1000, expire_after=3600)
    assert store.reserved_bytes(fid) == 300


# -- resumable uploads ---------------------------------------------------------------------
def test_resumable_upload_survives_a_restart(tmp_path: Path, folder: Path) -> None:
    fid = uuid.UUID(folder.name)
    first = FolderStore(tmp_path / "store", hosts=("local", "nfs"))
    upload = first.begin_upload("local", fid, "in/데이터 파일.csv", 10)
    assert first.upload_offset(upload) == 0
    assert first.append(upload, 0, b"abcd") == 4
    info = json.loads((tmp_path / "store" / ".uploads" / upload / "info.json").read_text())
    assert info["relpath"] == "in/데이터 파일.csv" and info["size"] == 10 and info["offset"] == 4
    assert info["host"] == "local" and info["folder_id"] == str(fid) and info["created"]
    del first  # "restart": nothing kept in memory
    second = FolderStore(tmp_path / "store", hosts=("local", "nfs"))
    assert second.upload_offset(upload) == 4
    with pytest.raises(Conflict) as exc:
        second.append(upload, 0, b"abcd")
    assert exc.value.status == 409 and "current offset 4" in str(exc.value)
    with pytest.raises(Conflict, match="incomplete: 4 of 10"):
        second.finish(upload)
    assert not (folder / "in").exists()  # nothing visible before finish
    assert second.append(upload, 4, iter([b"ef", b"ghij"])) == 10
    assert second.upload_info(upload).complete
    entry = second.finish(upload)
    assert entry.name == "데이터 파일.csv" and entry.size == 10
    assert (folder / "in" / "데이터 파일.csv").read_bytes() == b"abcdefghij"
    if AS_ROOT:
        assert (folder / "in").stat().st_uid == 1000 and (folder / "in" / "데이터 파일.csv").stat().st_uid == 1000
    assert not (tmp_path / "store" / ".uploads" / upload).exists()
    with pytest.raises(NotFound):
        second.upload_offset(upload)


def test_upload_refuses_bytes_past_its_size(store: FolderStore, folder: Path) -> None:
    upload = store.begin_upload("local", uuid.UUID(folder.name), "f.bin", 5)
    store.append(upload, 0, b"abc")
    with pytest.raises(UploadTooLarge) as exc:
        store.append(upload, 3, b"def")
    assert exc.value.status == 413
    assert store.upload_offset(upload) == 3
    with pytest.raises(UploadTooLarge):
        store.append(upload, 3, iter([b"d", b"efg"]))
    assert store.upload_offset(upload) == 3  # the refused request's bytes are dropped


def test_interrupted_append_keeps_what_arrived(store: FolderStore, folder: Path) -> None:
    upload = store.begin_upload("local", uuid.UUID(folder.name), "f.bin", 6)

    def body():
        yield b"abc"
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        store.append(upload, 0, body())
    assert store.upload_offset(upload) == 3
    assert store.append(upload, 3, b"def") == 6
    store.finish(upload)
    assert (folder / "f.bin").read_bytes() == b"abcdef"


def test_busy_upload_is_a_conflict(store: FolderStore, folder: Path) -> None:
    upload = store.begin_upload("local", uuid.UUID(folder.name), "f.bin", 6)
    fd = os.open(store.root / ".uploads" / upload / "data", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another request is writing
        with pytest.raises(Conflict, match="busy"):
            store.append(upload, 0, b"abc")
    finally:
        os.close(fd)
    assert store.append(upload, 0, b"abc") == 3


def test_empty_upload_and_replacing(store: FolderStore, folder: Path) -> None:
    fid = uuid.UUID(folder.name)
    (folder / "f.txt").write_text("old")
    upload = store.begin_upload("local", fid, "f.txt", 0)
    store.finish(upload)
    assert (folder / "f.txt").read_bytes() == b""


def test_upload_targets_are_checked(store: FolderStore, trapped: Path, outside: Path, tmp_path: Path) -> None:
    fid = uuid.UUID(trapped.name)
    before = snapshot(outside)
    for path in ("link_file", "link_dir/x.txt", "sub/link_dir/deep/keep.txt", "../x", "/etc/x", ""):
        with pytest.raises((UnsafePath, Conflict)):
            store.begin_upload("local", fid, path, 3)
    with pytest.raises(Conflict, match="is a directory"):
        store.begin_upload("local", fid, "sub", 3)
    with pytest.raises(StorageError, match="whole number"):
        store.begin_upload("local", fid, "x", -1)
    # A link planted after the upload started: finish refuses and writes nothing outside.
    upload = store.begin_upload("local", fid, "later/x.txt", 3)
    store.append(upload, 0, b"abc")
    (trapped / "later").symlink_to(outside)
    with pytest.raises(UnsafePath) as exc:
        store.finish(upload)
    assert_no_leak(exc, tmp_path)
    upload2 = store.begin_upload("local", fid, "target.txt", 3)
    store.append(upload2, 0, b"abc")
    (trapped / "target.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(UnsafePath):
        store.finish(upload2)
    assert snapshot(outside) == before
    assert store.upload_offset(upload) == 3  # still there: the client may retry after fixing it


def test_abort_and_unknown_uploads(store: FolderStore, folder: Path) -> None:
    upload = store.begin_upload("local", uuid.UUID(folder.name), "f.bin", 3)
    store.abort(upload)
    assert not (store.root / ".uploads" / upload).exists()
    for bad in (upload, "../../etc/passwd", "", "0" * 31, "X" * 32):
        with pytest.raises(NotFound) as exc:
            store.upload_offset(bad)
        assert exc.value.status == 404
        with pytest.raises(NotFound):
            store.append(bad, 0, b"x")
        with pytest.raises(NotFound):
            store.abort(bad)
    with pytest.raises(NotFound):
        store.begin_upload("local", uuid.uuid4(), "f.bin", 3)  # no such folder


def test_cleanup_stale(store: FolderStore, folder: Path) -> None:
    fid = uuid.UUID(folder.name)
    old = store.begin_upload("local", fid, "old.bin", 3)
    fresh = store.begin_upload("local", fid, "fresh.bin", 3)
    past = time.time() - 7200
    for p in [store.root / ".uploads" / old, *(store.root / ".uploads" / old).iterdir()]:
        os.utime(p, (past, past))
    assert store.cleanup_stale(3600) == 1
    with pytest.raises(NotFound):
        store.upload_offset(old)
    assert store.upload_offset(fresh) == 0
    assert store.cleanup_stale(3600) == 0


# -- ranges --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("", 100, None),
        ("bytes=0-99", 100, (0, 99)),
        ("bytes=0-0", 100, (0, 0)),
        ("bytes=10-20", 100, (10, 20)),
        ("bytes=0-500", 100, (0, 99)),  # end clamped
        ("bytes=100-", 1000, (100, 999)),
        ("bytes=99-", 100, (99, 99)),
        ("bytes=-50", 100, (50, 99)),
        ("bytes=-500", 100, (0, 99)),  # suffix longer than the file
        ("Bytes = 1 - 2", 100, (1, 2)),
        ("bytes=0-1,5-6", 100, None),  # several ranges: the whole file
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert storage.parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),  # starts at the end
        ("bytes=200-300", 100),
        ("bytes=5-2", 100),
        ("bytes=-0", 100),
        ("bytes=-", 100),
        ("bytes=-10", 0),
        ("bytes=0-", 0),
        ("bytes=a-b", 100),
        ("bytes=+1-2", 100),
        ("bytes=-1-2", 100),
        ("items=0-1", 100),
        ("0-1", 100),
        ("bytes=1.5-2", 100),
    ],
)
def test_parse_range_refusals(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as exc:
        storage.parse_range(header, size)
    assert exc.value.status == 416 and exc.value.size == size


def test_read_range(folder: Path) -> None:
    data = bytes(range(256)) * 10
    (folder / "résumé 2.txt").write_bytes(data)
    assert b"".join(storage.read_range(folder, "résumé 2.txt", 0, 99)) == data[:100]
    assert b"".join(storage.read_range(folder, "résumé 2.txt", 2500, 10**9)) == data[2500:]
    assert b"".join(storage.read_range(folder, "résumé 2.txt")) == data
    chunks = list(storage.read_range(folder, "résumé 2.txt", 1, 2000, chunk_size=512))
    assert [len(c) for c in chunks] == [512, 512, 512, 464] and b"".join(chunks) == data[1:2001]
    start, end = storage.parse_range("bytes=-10", len(data))
    assert b"".join(storage.read_range(folder, "résumé 2.txt", start, end)) == data[-10:]
    assert storage.content_range(start, end, len(data)) == "bytes 2550-2559/2560"
    with pytest.raises(RangeNotSatisfiable) as exc:
        storage.read_range(folder, "résumé 2.txt", 2560, 2600)  # refused at the call, not mid-response
    assert exc.value.size == 2560
    (folder / "empty").write_bytes(b"")
    assert list(storage.read_range(folder, "empty")) == []
    with pytest.raises(NotFound):
        storage.read_range(folder, "missing", 0, 1)


def test_error_statuses() -> None:
    assert issubclass(StorageError, ValueError)
    assert [cls.status for cls in (UnsafePath, NotFound, Conflict, AlreadyExists, RangeNotSatisfiable)] == [
        400,
        404,
        409,
        409,
        416,
    ]
    assert issubclass(AlreadyExists, Conflict)


def test_not_root_skips_chown(store: FolderStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root (a laptop, the local backend) chown would fail: the folder stays ours."""
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    path = store.create("local", uuid.uuid4())
    storage.write_atomic(path, "f.txt", [b"x"])
    storage.mkdir(path, "d")
    real_uid = os.getuid()
    assert {p.stat().st_uid for p in (path, path / "f.txt", path / "d")} == {real_uid}


def test_finish_copies_when_the_host_is_another_filesystem(
    store: FolderStore, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rename`` across filesystems fails with EXDEV: finish falls back to an atomic copy."""
    upload = store.begin_upload("local", uuid.UUID(folder.name), "dir/f.bin", 3 * MiB)
    payload = os.urandom(3 * MiB)
    store.append(upload, 0, payload)
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        if str(src).endswith(f"{upload}/data"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    entry = store.finish(upload)
    assert entry.size == 3 * MiB
    assert (folder / "dir" / "f.bin").read_bytes() == payload
    assert not (store.root / ".uploads" / upload).exists()


# -- one request's appends (UploadWriter) -----------------------------------------------------
def test_upload_writer_holds_the_upload_for_its_request(store: FolderStore, folder: Path) -> None:
    upload = store.begin_upload("local", uuid.UUID(folder.name), "f.bin", 10)
    data = store.root / ".uploads" / upload / "data"
    with store.open_upload(upload, 0) as writer:
        assert writer.remaining == 10
        assert writer.write(b"abc") == 3
        assert writer.write(memoryview(bytearray(b"defg"))[:2]) == 5
        with pytest.raises(Conflict, match="busy"):
            store.append(upload, 5, b"x")  # a second request meanwhile
        with pytest.raises(Conflict, match="busy"):
            store.open_upload(upload, 5)
        with pytest.raises(UploadTooLarge):
            writer.write(b"123456")  # 5 + 6 > 10: refused whole, nothing of it written
        assert data.read_bytes() == b"abcde" and writer.offset == 5
        assert writer.sync() == 5
        info = json.loads((store.root / ".uploads" / upload / "info.json").read_text())
        assert info["offset"] == 5
    with pytest.raises(StorageError, match="closed"):
        writer.write(b"x")
    with pytest.raises(Conflict, match="current offset 5"):
        store.open_upload(upload, 0)
    with store.open_upload(upload, 5) as writer:
        writer.write(b"fghij")
        writer.sync()
    store.finish(upload)
    assert (folder / "f.bin").read_bytes() == b"abcdefghij"


def test_upload_writer_checks_the_quota_before_any_byte(store: FolderStore, folder: Path) -> None:
    upload = store.begin_upload("local", uuid.UUID(folder.name), "f.bin", 100, quota=150)
    (folder / "grown.bin").write_bytes(b"g" * 100)  # the session wrote meanwhile
    with pytest.raises(QuotaExceeded):
        store.open_upload(upload, 0, quota=150)
    with store.open_upload(upload, 0, quota=250) as writer:  # the lock was released after the refusal
        writer.write(b"x" * 100)
    assert store.upload_offset(upload) == 100


def test_start_writeback_is_a_harmless_hint(tmp_path: Path) -> None:
    from jupyter_backendai.storage.safepath import start_writeback

    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, b"x" * 100_000)
        start_writeback(fd, 0, 100_000)
        start_writeback(fd, 0, 0)
    finally:
        os.close(fd)
    start_writeback(fd, 0, 10)  # a closed descriptor: ignored, like any error of a hint
    assert path.read_bytes() == b"x" * 100_000


# -- archives ------------------------------------------------------------------------------------
def zip_of(folder: Path, paths, **kwargs) -> tuple[zipfile.ZipFile, storage.ArchiveStats, list[bytes]]:
    plan = storage.plan_archive(folder, paths, folder_name="my folder")
    pieces: list[bytes] = []
    stats = storage.write_archive(folder, plan, pieces.append, chunk_size=64 * 1024, **kwargs)
    return zipfile.ZipFile(io.BytesIO(b"".join(pieces))), stats, pieces


def test_archive_plans(trapped: Path) -> None:
    (trapped / "d" / "e").mkdir(parents=True)
    (trapped / "d" / "e" / "x.txt").write_text("x")
    plan = storage.plan_archive(trapped, "d", folder_name="my folder")
    assert plan == storage.ArchivePlan(paths=("d",), base="d", filename="d.zip")
    assert storage.plan_archive(trapped, "", folder_name="my folder").filename == "my folder.zip"
    assert storage.plan_archive(trapped, "inner.txt", folder_name="f") == storage.ArchivePlan(
        paths=("inner.txt",), base="", filename="inner.txt.zip"
    )
    nested = storage.plan_archive(trapped, ["d/e/x.txt", "d/e", "d//e/./x.txt"], folder_name="f")
    assert nested == storage.ArchivePlan(paths=("d/e",), base="d", filename="e.zip")
    several = storage.plan_archive(trapped, ["d/e", "inner.txt"], folder_name="f")
    assert several == storage.ArchivePlan(paths=("d/e", "inner.txt"), base="", filename="f.zip")
    for bad, error in [
        ("link_file", UnsafePath),
        ("link_dir", UnsafePath),
        ("sub/link_dir", UnsafePath),
        ("link_dir/deep", UnsafePath),
        ("../x", UnsafePath),
        ("nope", NotFound),
        ([], StorageError),
        (["x"] * (storage.archive.MAX_PATHS + 1), StorageError),
    ]:
        with pytest.raises(error):
            storage.plan_archive(trapped, bad, folder_name="f")
    os.mkfifo(trapped / "pipe")
    with pytest.raises(Conflict, match="not a regular file or a directory"):
        storage.plan_archive(trapped, "pipe", folder_name="f")


def test_archive_contents_links_and_names(trapped: Path, outside: Path) -> None:
    before = snapshot(outside)
    (trapped / "sub" / "데이터 ü.txt").write_text("한국어")
    (trapped / "sub" / "empty").mkdir()
    (trapped / "sub" / "inner_link").symlink_to("../inner.txt")  # inside, but links are never followed
    os.mkfifo(trapped / "sub" / "pipe")
    big = os.urandom(300_000)
    (trapped / "big.npz").write_bytes(big)
    old = trapped / "old.txt"
    old.write_text("old")
    os.utime(old, (0, 0))  # before 1980: clamped, not refused
    zf, stats, pieces = zip_of(trapped, "")
    assert zf.testzip() is None
    assert sorted(zf.namelist()) == ["big.npz", "inner.txt", "old.txt", "sub/", "sub/empty/", "sub/데이터 ü.txt"]
    assert zf.read("sub/데이터 ü.txt") == "한국어".encode() and zf.read("big.npz") == big
    assert zf.getinfo("big.npz").compress_type == zipfile.ZIP_STORED
    assert zf.getinfo("inner.txt").compress_type == zipfile.ZIP_DEFLATED
    assert zf.getinfo("old.txt").date_time == (1980, 1, 1, 0, 0, 0)
    assert sorted(stats.skipped) == [
        "link_dir",
        "link_file",
        "relative_out",
        "sub/inner_link",
        "sub/link_dir",
        "sub/pipe",
    ]
    assert stats.files == 4 and stats.dirs == 2 and stats.bytes == len(big) + 5 + 3 + len("한국어".encode())
    assert all(len(p) >= 64 * 1024 for p in pieces[:-1])  # handed out in pieces, not all at once
    assert b"secret" not in b"".join(pieces) and b"keep" not in b"".join(pieces)
    assert snapshot(outside) == before
    stored, _, _ = zip_of(trapped, ["sub"], compress=False)
    assert sorted(stored.namelist()) == ["sub/", "sub/empty/", "sub/데이터 ü.txt"]
    assert {i.compress_type for i in stored.infolist()} == {zipfile.ZIP_STORED}


def test_archive_link_planted_after_the_plan_and_a_receiver_gone(folder: Path, outside: Path) -> None:
    (folder / "d").mkdir()
    (folder / "d" / "f.txt").write_text("f" * 200_000)
    plan = storage.plan_archive(folder, "d", folder_name="f")
    (folder / "d" / "f.txt").unlink()
    (folder / "d").rmdir()
    (folder / "d").symlink_to(outside)
    pieces: list[bytes] = []
    with pytest.raises(UnsafePath):
        storage.write_archive(folder, plan, pieces.append)
    assert pieces == []

    (folder / "d").unlink()
    (folder / "d").mkdir()
    for i in range(5):
        (folder / "d" / f"{i}.bin").write_bytes(os.urandom(100_000))
    sent: list[bytes] = []

    def send(piece: bytes) -> None:
        if sent:
            raise ConnectionError("the client went away")
        sent.append(piece)

    with pytest.raises(ConnectionError):
        storage.write_archive(folder, plan, send, chunk_size=64 * 1024)
    assert len(sent) == 1  # nothing more was sent after the failure, not even the central directory
