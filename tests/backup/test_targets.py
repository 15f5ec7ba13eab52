"""The conformance suite of targets: every target (memory, directory, S3 over HTTP) must pass
each of these, as restic's backend test suite does for its backends."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from cutru.backup.targets import Handle, Kind, LocalTarget, Target
from cutru.errors import InputError, ObjectExists, ObjectNotFound

from .conftest import TargetFactory

H = Handle(Kind.DATA, "00ff")


def test_save_then_load_round_trips(target: Target) -> None:
    target.save(H, b"hello, world")
    assert target.load(H) == b"hello, world"
    assert target.stat(H).size == 12


def test_saving_an_existing_name_is_refused_and_keeps_the_original(target: Target) -> None:
    target.save(H, b"first")
    with pytest.raises(ObjectExists):
        target.save(H, b"second")
    assert target.load(H) == b"first"


def test_empty_and_large_objects(target: Target) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)
    target.save(Handle(Kind.DATA, "empty"), b"")
    target.save(Handle(Kind.DATA, "big"), big)
    assert target.load(Handle(Kind.DATA, "empty")) == b""
    assert target.load(Handle(Kind.DATA, "big")) == big


def test_ranges(target: Target) -> None:
    target.save(H, b"0123456789")
    assert target.load(H, 3, 4) == b"3456"
    assert target.load(H, 7) == b"789"
    assert target.load(H, 0, 10) == b"0123456789"
    assert target.load(H, 10) == b""
    assert target.load(H, 4, 0) == b""


@pytest.mark.parametrize(("offset", "length"), [(8, 5), (11, None), (-1, 2), (0, -1), (11, 0)])
def test_ranges_past_the_end_are_refused(target: Target, offset: int, length: int | None) -> None:
    target.save(H, b"0123456789")
    with pytest.raises(InputError):
        target.load(H, offset, length)


def test_missing_objects(target: Target) -> None:
    with pytest.raises(ObjectNotFound):
        target.load(H)
    with pytest.raises(ObjectNotFound):
        target.load(H, 2, 3)
    with pytest.raises(ObjectNotFound):
        target.stat(H)


def test_list_is_sorted_by_name_and_per_kind(target: Target) -> None:
    names = ["0b", "0a", "ff", "10", "0a0"]
    for name in names:
        target.save(Handle(Kind.INDEX, name), name.encode())
    target.save(Handle(Kind.DATA, "77"), b"x")
    listed = list(target.list(Kind.INDEX))
    assert [info.handle.name for info in listed] == sorted(names)
    assert [info.size for info in listed] == [len(n) for n in sorted(names)]
    assert all(info.handle.kind is Kind.INDEX for info in listed)
    assert list(target.list(Kind.LOCKS)) == []


def test_config_has_no_name(target: Target) -> None:
    config = Handle(Kind.CONFIG)
    assert list(target.list(Kind.CONFIG)) == []
    target.save(config, b"cfg")
    assert target.load(config) == b"cfg"
    assert [info.handle for info in target.list(Kind.CONFIG)] == [config]


def test_remove_is_idempotent(target: Target) -> None:
    target.save(H, b"x")
    target.remove(H)
    with pytest.raises(ObjectNotFound):
        target.load(H)
    target.remove(H)
    assert list(target.list(Kind.DATA)) == []
    target.save(H, b"again")  # a removed name may be used again
    assert target.load(H) == b"again"


def test_a_second_client_sees_the_same_objects(make_target: TargetFactory) -> None:
    make_target().save(H, b"shared")
    assert make_target().load(H) == b"shared"


def test_concurrent_saves_of_one_name_have_one_winner(make_target: TargetFactory) -> None:
    clients = [make_target() for _ in range(4)]
    won: list[int] = []
    lost: list[int] = []
    barrier = threading.Barrier(len(clients))

    def save(i: int) -> None:
        barrier.wait()
        try:
            clients[i].save(H, f"writer {i}".encode())
            won.append(i)
        except ObjectExists:
            lost.append(i)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == len(clients) - 1
    assert clients[0].load(H) == f"writer {won[0]}".encode()


@pytest.mark.parametrize("name", ["", "UPPER", "a/b", "..", ".tmp-1", "a" * 129, "-a", "a.b"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(InputError):
        Handle(Kind.DATA, name)


def test_the_config_takes_no_name() -> None:
    with pytest.raises(InputError):
        Handle(Kind.CONFIG, "x")


# --- specific to the directory target ------------------------------------------------------


def test_local_leaves_no_temporary_files_and_skips_strays(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    target.save(H, b"x")
    with pytest.raises(ObjectExists):
        target.save(H, b"y")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["00ff"]
    (tmp_path / "data" / ".tmp-crashed").write_bytes(b"half")
    (tmp_path / "data" / "README.txt").write_bytes(b"not ours")
    assert [info.handle for info in target.list(Kind.DATA)] == [H]


def test_local_objects_are_private(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "r")
    target.save(H, b"x")
    assert (tmp_path / "r" / "data" / "00ff").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "r" / "data").stat().st_mode & 0o777 == 0o700
