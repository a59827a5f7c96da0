"""Sessions' kept output: the pure bound (core.logs), its storage (db.session_logs) on SQLite and
PostgreSQL (the ``db`` fixture), and the local backend's file source (hub.logs.FileSource)."""

from __future__ import annotations

import os
import uuid

import pytest

from jupyter_backendai.core.logs import OutputTail, cap, last_lines, plan_trim, render
from jupyter_backendai.db import admin, session_logs
from jupyter_backendai.db import models as m
from jupyter_backendai.hub.logs import FileSource, StartFailed


@pytest.mark.parametrize(
    ("sizes", "keep", "expected"),
    [
        ([], 10, (0, 0)),
        ([4, 4], 10, (0, 0)),
        ([4, 4, 2], 10, (0, 0)),  # exactly the bound
        ([4, 4, 3], 10, (0, 1)),  # one byte over: cut the oldest chunk's head
        ([4, 4, 6], 10, (1, 0)),  # exactly the oldest chunk over
        ([4, 4, 7], 10, (1, 1)),
        ([4, 4, 20], 10, (2, 10)),  # a chunk alone over the bound
        ([5], 0, (1, 0)),
    ],
)
def test_plan_trim_keeps_at_most_the_bound(sizes, keep, expected):
    whole, cut = plan_trim(sizes, keep)
    assert (whole, cut) == expected
    kept = sum(sizes[whole:]) - cut
    assert kept == min(sum(sizes), keep)


def test_plan_trim_refuses_a_negative_bound():
    with pytest.raises(ValueError):
        plan_trim([1], -1)


def test_cap_render_and_last_lines():
    assert cap(b"abcdef", 4) == (b"cdef", 2)
    assert cap(b"ab", 4) == (b"ab", 0)
    # Cut inside a line (and inside a character): the partial first line is left out.
    assert render("tail of é line\nsecond\nthird\n".encode()[3:], dropped=3) == "second\nthird\n"
    assert render(b"only part of a line", dropped=5) == "only part of a line"
    assert render(b"\xff ok\n") == "\ufffd ok\n"
    text = "".join(f"line {i}\n" for i in range(50))
    assert last_lines(text, 3) == "line 47\nline 48\nline 49"
    assert last_lines("x" * 100, 5, max_chars=10) == "…" + "x" * 9


def test_a_followers_tail_holds_the_last_bytes_and_counts_what_went():
    tail = OutputTail(keep=4)
    for chunk in (b"ab", b"cd", b"ef"):
        tail.add(chunk)
    assert len(tail) == 6
    assert tail.take() == (b"abcdef", 0)  # up to twice keep is held whole
    assert tail.take() == (b"", 0)
    for chunk in (b"0123", b"4567", b"89"):
        tail.add(chunk)
    assert tail.take() == (b"6789", 6)  # past twice keep: the last keep bytes, and how many went
    tail.add(b"xyz")
    assert tail.take() == (b"xyz", 0)  # the count starts again after a take


def test_start_failure_message_has_the_reason_and_the_last_lines():
    output = "".join(f"out {i}\n" for i in range(30)) + "<b>boom</b>\n"
    e = StartFailed("the server exited with status 3", output, lines=5)
    assert str(e) == "the server exited with status 3"  # what the status history records
    assert e.jupyterhub_message.endswith("out 26\nout 27\nout 28\nout 29\n<b>boom</b>")
    assert "&lt;b&gt;boom&lt;/b&gt;" in e.jupyterhub_html_message and "out 24" not in e.jupyterhub_html_message
    assert "no output" in StartFailed("gone", "").jupyterhub_message


def _session(db) -> uuid.UUID:
    user, _ = admin.create_user(db, f"u{uuid.uuid4().hex[:6]}@example.com", "S3cret!pw")
    keypair = next(k for k in user.keypairs if k.is_active)
    row = m.Session(
        name="s", user_id=user.id, access_key=keypair.access_key, domain_name=user.domain_name,
        scaling_group=admin.DEFAULT, image="img",
    )  # fmt: skip
    db.add(row)
    db.commit()
    return row.id


def test_store_appends_merges_and_holds_the_bound(db):
    sid = _session(db)
    assert session_logs.read(db, sid) is None
    session_logs.reset(db, sid)
    assert session_logs.read(db, sid).text == ""
    keep = session_logs.CHUNK_BYTES + 1000  # a second chunk starts before the bound is reached
    for i in range(200):  # small writes go into one chunk
        session_logs.append(db, sid, f"line {i}\n".encode(), keep)
    db.commit()
    assert db.query(m.SessionLogChunk).filter_by(session_id=sid).count() == 1
    kept = session_logs.read(db, sid)
    assert kept.text.splitlines()[0] == "line 0" and kept.text.splitlines()[-1] == "line 199"
    assert kept.dropped_bytes == 0 and kept.kept_bytes == len(kept.text)

    # Far more than the bound, in pieces and in one big write: only the last `keep` bytes stay.
    written = b"".join(f"line {i}\n".encode() for i in range(200))
    for i in range(400):
        piece = f"more {i:05d} ".encode() * 20 + b"\n"
        written += piece
        session_logs.append(db, sid, piece, keep)
    db.commit()
    assert db.query(m.SessionLogChunk).filter_by(session_id=sid).count() == 2
    kept = session_logs.read(db, sid)
    assert kept.text.startswith("more ") and kept.text.endswith("more 00399 \n")
    assert kept.kept_bytes == keep and kept.dropped_bytes == len(written) - keep
    big = b"".join(f"big {i:06d}\n".encode() for i in range(20000))
    written += big
    session_logs.append(db, sid, big, keep)
    db.commit()
    kept = session_logs.read(db, sid)
    assert kept.kept_bytes == keep and kept.dropped_bytes == len(written) - keep
    chunks = db.query(m.SessionLogChunk).filter_by(session_id=sid).all()
    assert sum(len(c.data) for c in chunks) == keep
    assert b"".join(c.data for c in sorted(chunks, key=lambda c: c.id)) == written[-keep:]
    assert kept.text.endswith("big 019999\n") and kept.text.startswith("big ")  # whole lines from the cut on

    # Reading it all again (a hub restart) starts over.
    session_logs.reset(db, sid)
    session_logs.append(db, sid, b"again\n", keep, dropped=7)
    db.commit()
    kept = session_logs.read(db, sid)
    assert (kept.text, kept.kept_bytes, kept.dropped_bytes) == ("again\n", 6, 7)

    # Gone with the session.
    db.delete(db.get(m.Session, sid))
    db.commit()
    assert session_logs.read(db, sid) is None
    assert db.query(m.SessionLogChunk).filter_by(session_id=sid).count() == 0


def test_file_source_reads_new_output_and_trims_the_file(tmp_path):
    path = tmp_path / "s.log"
    writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # as the process's stdout
    source = FileSource(str(path), trim_at=10, keep=100)
    assert source.read() == (b"", 0)
    os.write(writer, b"hello\n")
    assert source.read() == (b"hello\n", 0)
    os.write(writer, b"world\n")
    assert source.read() == (b"world\n", 0)
    assert path.stat().st_size == 0  # 12 bytes read, nothing pending: truncated
    os.write(writer, b"after\n")
    assert source.read() == (b"after\n", 0)
    os.write(writer, b"x" * 250)
    data, dropped = source.read()
    assert (len(data), dropped) == (100, 150)  # more than `keep` at once: only its end
    assert not source.ended
    source.end()
    assert source.ended
    os.close(writer)
    source.remove()
    assert not path.exists() and source.read() == (b"", 0)
