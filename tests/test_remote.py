"""Pull/push of a local store working copy to an fsspec URL (file:// and memory://)."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
from fsspec.implementations.memory import MemoryFileSystem  # type: ignore[import-untyped]

from labelgate.errors import InputError
from labelgate.store.remote import (
    RemoteStore,
    is_remote,
    local_cache_dir,
    open_remote,
    pull,
    push,
)

D = "tweets"
BATCH = "lake/tweets/items/batch=aaa111"
BATCH2 = "lake/tweets/items/batch=bbb222"
CACHE = "cache/tweets/contract/k1"
REPORT = "reports/tweets/20260101T000000Z-abc123"
CURATED = "curated/tweets/run=20260101T000000Z-abc123"
V1 = "published/tweets/v1"
V2 = "published/tweets/v2"
COMPLETE = [BATCH, BATCH2, CACHE, REPORT, CURATED, V1, V2]
INCOMPLETE = "lake/tweets/items/batch=ccc333"  # files but no marker: an interrupted write


def _parquet(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"id": [f"t{i}" for i in range(n)], "x": list(range(n))}).write_parquet(path)


def _json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_store(root: Path) -> Path:
    """A small local store: every unit kind, symlinks, leftovers, another dataset."""
    _parquet(root / BATCH / "data.parquet", 5)
    _parquet(root / BATCH / "rejects.parquet", 0)
    _json(root / BATCH / "_batch.json", {"batch": "aaa111"})
    _parquet(root / BATCH2 / "data.parquet", 7)
    _json(root / BATCH2 / "_batch.json", {"batch": "bbb222"})
    _parquet(root / CACHE / "valid.parquet", 3)
    _json(root / CACHE / "_done.json", {"key": "k1"})
    _json(root / REPORT / "report.json", {"run_id": "x"})
    (root / REPORT / "report.md").write_text("# report\n")
    _parquet(root / REPORT / "label_issues.parquet", 4)
    _parquet(root / CURATED / "items.parquet", 6)
    for v in (V1, V2):
        _parquet(root / v / "train.parquet", 8)
        (root / v / "train.jsonl").write_text('{"id": "t1"}\n')
        _json(root / v / "manifest.json", {"version": v[-1]})
    (root / "reports/tweets/latest").symlink_to("20260101T000000Z-abc123")
    (root / "published/tweets/current").symlink_to("v2")
    # never synced:
    _parquet(root / INCOMPLETE / "data.parquet", 2)
    _parquet(root / "lake/tweets/items/.tmp-ddd-x1" / "data.parquet", 2)
    _json(root / "lake/tweets/items/.tmp-ddd-x1" / "_batch.json", {})
    (root / "published/tweets/.tmp-v3-ab12").mkdir(parents=True)
    (root / "published/tweets/.tmp-v3-ab12/manifest.json").write_text("{}")
    (root / "locks").mkdir()
    (root / "locks/tweets.lock").write_text("{}")
    _json(root / "lake/other/items/batch=eee555/_batch.json", {})  # another dataset
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE runs AS SELECT 'r1' AS run_id, 42 AS n")
    return root


def remote_files(remote: RemoteStore) -> set[str]:
    """Every file on the remote, relative to its root."""
    prefix = remote.root.strip("/")
    out = set()
    for p in remote.fs.find(remote.root or "/", withdirs=False):
        rel = str(p).strip("/")
        out.add(rel[len(prefix) + 1:] if prefix else rel)
    return out


def put_remote(remote: RemoteStore, rel: str, data: bytes) -> None:
    path = remote.path(rel)
    remote.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # file:// needs the folder
    remote.fs.pipe_file(path, data)


def local_files(root: Path, units: list[str]) -> dict[str, bytes]:
    return {
        f"{u}/{p.relative_to(root / u).as_posix()}": p.read_bytes()
        for u in units for p in sorted((root / u).rglob("*")) if p.is_file()
    }


@pytest.fixture(autouse=True)
def _clear_memory() -> Iterator[None]:
    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs.clear()
    MemoryFileSystem.pseudo_dirs.append("")
    yield
    MemoryFileSystem.store.clear()


@pytest.fixture(params=["file", "memory"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return (tmp_path / "remote" / "store").as_uri()  # file:///.../remote/store
    return "memory://bucket/stores/s1"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return make_store(tmp_path / "local")


def test_push_uploads_complete_units_links_and_warehouse_only(url: str, store: Path) -> None:
    remote = open_remote(url)
    seen: list[str] = []
    stats = push(remote, store, D, on_unit=seen.append)

    expected = set(local_files(store, COMPLETE)) | {
        "warehouse.duckdb", "reports/tweets/latest.link", "published/tweets/current.link",
    }
    assert remote_files(remote) == expected
    assert remote.fs.cat_file(remote.path("published/tweets/current.link")) == b"v2\n"
    assert remote.fs.cat_file(remote.path("reports/tweets/latest.link")) \
        == b"20260101T000000Z-abc123\n"
    assert stats.units == 7 and stats.skipped == 0 and stats.links == 2 and stats.warehouse
    assert stats.files == len(local_files(store, COMPLETE))
    unit_bytes = sum(len(b) for b in local_files(store, COMPLETE).values())
    assert stats.bytes == unit_bytes + (store / "warehouse.duckdb").stat().st_size
    assert sorted(seen) == sorted([*COMPLETE, "warehouse.duckdb"])
    assert seen[-1] == "warehouse.duckdb"  # after every unit


def test_pull_into_empty_dir_reproduces_the_store(url: str, store: Path, tmp_path: Path) -> None:
    remote = open_remote(url)
    push(remote, store, D)
    fresh = tmp_path / "fresh"
    stats = pull(remote, fresh, D)

    assert stats.units == 7 and stats.skipped == 0 and stats.links == 2 and stats.warehouse
    assert local_files(fresh, COMPLETE) == local_files(store, COMPLETE)
    assert not (fresh / INCOMPLETE).exists()
    assert os.readlink(fresh / "published/tweets/current") == "v2"
    assert os.readlink(fresh / "reports/tweets/latest") == "20260101T000000Z-abc123"
    assert json.loads((fresh / "published/tweets/current/manifest.json").read_text()) \
        == {"version": "2"}
    assert (fresh / "warehouse.duckdb").read_bytes() == (store / "warehouse.duckdb").read_bytes()
    with duckdb.connect(str(fresh / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT run_id, n FROM runs").fetchall() == [("r1", 42)]
    assert pl.read_parquet(fresh / BATCH2 / "data.parquet")["x"].to_list() == list(range(7))
    hidden = [p for p in fresh.rglob(".*")]
    assert hidden == []  # no temp folders or files left behind

    again = pull(remote, fresh, D)
    assert (again.units, again.skipped, again.links) == (0, 7, 0)


def test_second_push_moves_no_unit_and_a_new_unit_alone(url: str, store: Path) -> None:
    remote = open_remote(url)
    push(remote, store, D)
    second = push(remote, store, D)
    assert (second.units, second.files, second.skipped, second.links) == (0, 0, 7, 0)
    assert second.warehouse  # the mutable file is always sent

    new = "lake/tweets/items/batch=fff666"
    _parquet(store / new / "data.parquet", 9)
    _json(store / new / "_batch.json", {"batch": "fff666"})
    seen: list[str] = []
    third = push(remote, store, D, on_unit=seen.append)
    assert seen == [new, "warehouse.duckdb"]
    assert (third.units, third.files, third.skipped) == (1, 2, 7)
    assert remote.fs.cat_file(remote.path(new, "data.parquet")) \
        == (store / new / "data.parquet").read_bytes()


def test_new_version_moves_current_link(url: str, store: Path, tmp_path: Path) -> None:
    remote = open_remote(url)
    push(remote, store, D)
    fresh = tmp_path / "fresh"
    pull(remote, fresh, D)

    v3 = "published/tweets/v3"
    _parquet(store / v3 / "train.parquet", 2)
    _json(store / v3 / "manifest.json", {"version": "3"})
    os.symlink("v3", store / "published/tweets/.cur")
    os.replace(store / "published/tweets/.cur", store / "published/tweets/current")
    stats = push(remote, store, D)
    assert (stats.units, stats.links) == (1, 1)
    assert remote.fs.cat_file(remote.path("published/tweets/current.link")) == b"v3\n"

    pulled = pull(remote, fresh, D)
    assert (pulled.units, pulled.links) == (1, 1)
    assert os.readlink(fresh / "published/tweets/current") == "v3"
    assert os.readlink(fresh / "reports/tweets/latest") == "20260101T000000Z-abc123"


def test_interrupted_upload_is_redone_by_push_and_not_pulled(
    url: str, store: Path, tmp_path: Path
) -> None:
    remote = open_remote(url)
    push(remote, store, D)
    remote.fs.rm_file(remote.path(BATCH2, "_batch.json"))  # as if killed before the marker
    put_remote(remote, f"{BATCH2}/data.parquet", b"truncated")

    fresh = tmp_path / "fresh"
    pulled = pull(remote, fresh, D)
    assert pulled.units == 6
    assert not (fresh / BATCH2).exists()
    assert (fresh / BATCH / "_batch.json").is_file()

    seen: list[str] = []
    pushed = push(remote, store, D, on_unit=seen.append)
    assert seen == [BATCH2, "warehouse.duckdb"]
    assert pushed.units == 1
    assert remote.fs.cat_file(remote.path(BATCH2, "data.parquet")) \
        == (store / BATCH2 / "data.parquet").read_bytes()

    assert pull(remote, fresh, D).units == 1
    assert local_files(fresh, [BATCH2]) == local_files(store, [BATCH2])


def test_pull_replaces_an_incomplete_local_unit(url: str, store: Path, tmp_path: Path) -> None:
    remote = open_remote(url)
    push(remote, store, D)
    fresh = tmp_path / "fresh"
    _parquet(fresh / BATCH / "data.parquet", 1)  # an interrupted local write, no marker
    (fresh / BATCH / "junk.txt").write_text("x")

    stats = pull(remote, fresh, D)
    assert stats.units == 7
    assert local_files(fresh, [BATCH]) == local_files(store, [BATCH])


def test_pull_ignores_remote_temp_files_and_a_link_to_a_missing_unit(
    url: str, store: Path, tmp_path: Path
) -> None:
    remote = open_remote(url)
    push(remote, store, D)
    put_remote(remote, "published/tweets/.tmp-v9-zz/manifest.json", b"{}")
    put_remote(remote, ".tmp-push-1234-warehouse.duckdb", b"partial")
    put_remote(remote, "published/tweets/current.link", b"v9\n")

    fresh = tmp_path / "fresh"
    stats = pull(remote, fresh, D)
    assert stats.units == 7
    assert not (fresh / "published/tweets/current").exists()  # v9 is not here
    assert not (fresh / "published/tweets/v9").exists()
    assert os.readlink(fresh / "reports/tweets/latest") == "20260101T000000Z-abc123"


def test_pull_rejects_a_link_that_leaves_its_folder(url: str, store: Path, tmp_path: Path) -> None:
    remote = open_remote(url)
    push(remote, store, D)
    put_remote(remote, "published/tweets/current.link", b"../../etc\n")
    with pytest.raises(InputError, match=r"published/tweets/current\.link holds '\.\./\.\./etc'") \
            as info:
        pull(remote, tmp_path / "fresh", D)
    assert f"store {url}:" in str(info.value)


def test_empty_store_pull_and_push(url: str, tmp_path: Path) -> None:
    remote = open_remote(url)
    empty = tmp_path / "empty"
    pulled = pull(remote, empty, D)
    assert (pulled.units, pulled.skipped, pulled.bytes, pulled.warehouse) == (0, 0, 0, False)
    assert empty.is_dir() and list(empty.iterdir()) == []

    pushed = push(remote, empty, D)
    assert (pushed.units, pushed.links, pushed.warehouse) == (0, 0, False)
    assert remote_files(remote) == set()


def test_push_only_syncs_the_named_dataset(url: str, store: Path) -> None:
    remote = open_remote(url)
    push(remote, store, D)
    assert not any(f.startswith("lake/other/") for f in remote_files(remote))
    other = push(remote, store, "other")
    assert other.units == 1
    assert "lake/other/items/batch=eee555/_batch.json" in remote_files(remote)


def test_push_checkpoints_a_leftover_write_ahead_log(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    db = local / "warehouse.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS a")
    # a WAL next to the file (as a killed writer leaves it): DuckDB replays it on open
    con = duckdb.connect(str(db))
    con.execute("SET checkpoint_threshold = '1GB'")
    con.execute("INSERT INTO t VALUES (2)")
    wal = local / "warehouse.duckdb.wal"
    assert wal.exists()
    wal_copy = wal.read_bytes()
    db_copy = db.read_bytes()
    con.close()
    db.write_bytes(db_copy)
    wal.write_bytes(wal_copy)

    remote = open_remote((tmp_path / "remote").as_uri())
    push(remote, local, D)
    fresh = tmp_path / "fresh"
    pull(remote, fresh, D)
    with duckdb.connect(str(fresh / "warehouse.duckdb"), read_only=True) as con2:
        assert sorted(con2.execute("SELECT a FROM t").fetchall()) == [(1,), (2,)]


def test_pull_drops_a_stale_local_wal(store: Path, tmp_path: Path) -> None:
    remote = open_remote((tmp_path / "remote").as_uri())
    push(remote, store, D)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "warehouse.duckdb.wal").write_bytes(b"not a log of this file")
    pull(remote, fresh, D)
    assert not (fresh / "warehouse.duckdb.wal").exists()
    with duckdb.connect(str(fresh / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT n FROM runs").fetchone() == (42,)


@pytest.mark.parametrize("bad", ["", "..", ".hidden", "a/b"])
def test_bad_dataset_name(bad: str, tmp_path: Path) -> None:
    remote = open_remote("memory://bucket/s")
    with pytest.raises(InputError, match="dataset name"):
        push(remote, tmp_path, bad)


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_open_remote_without_backend_names_the_package() -> None:
    with pytest.raises(InputError) as info:
        open_remote("s3://bucket/x")
    msg = str(info.value)
    assert "pip install s3fs" in msg
    assert "s3://bucket/x" in msg and "store:" in msg and "--store" in msg


def test_open_remote_unknown_protocol() -> None:
    with pytest.raises(InputError, match=r"nosuchproto://x.*--store"):
        open_remote("nosuchproto://x")


def test_open_remote_roots(tmp_path: Path) -> None:
    assert open_remote("memory://bucket/a/").root == "/bucket/a"
    assert open_remote((tmp_path / "s").as_uri()).root == str(tmp_path / "s")
    assert open_remote("memory://bucket/a").path("lake", D) == "/bucket/a/lake/tweets"


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("s3://bucket/prefix", True),
        ("gs://b/p", True),
        ("az://container/p", True),
        ("file:///abs/path", True),
        ("memory://x", True),
        ("s3+custom://b", True),
        ("store", False),
        ("/abs/store", False),
        ("./rel/s3://x", False),
        ("C:\\labelgate\\store", False),
        ("C://store", False),
        ("s3:/bucket", False),
        (Path("/abs/store"), False),
    ],
)
def test_is_remote(store: str | Path, expected: bool) -> None:
    assert is_remote(store) is expected


def test_local_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABELGATE_CACHE_DIR", str(tmp_path / "cache"))
    a = local_cache_dir("s3://bucket/prefix")
    assert a.parent == tmp_path / "cache" and a.is_dir()
    assert len(a.name) == 16 and int(a.name, 16) >= 0
    assert local_cache_dir("S3://bucket/prefix/") == a  # same store, same copy
    assert local_cache_dir("s3://bucket/other") != a

    monkeypatch.delenv("LABELGATE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    b = local_cache_dir("s3://bucket/prefix")
    assert b == tmp_path / "home/.cache/labelgate" / a.name and b.is_dir()


def test_push_order_marker_last_then_warehouse_then_links(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = open_remote("memory://bucket/s")
    root = remote.root.strip("/")
    order: list[str] = []

    def record(method: str) -> None:
        real = getattr(remote.fs, method)

        def call(src: str, dst: str, **kw: object) -> object:
            order.append(str(dst).strip("/")[len(root) + 1:])
            return real(src, dst, **kw)

        monkeypatch.setattr(remote.fs, method, call)

    record("put_file")
    record("mv")
    push(remote, store, D)

    markers = {"_batch.json", "_done.json", "report.json", "items.parquet", "manifest.json"}
    for unit in COMPLETE:
        mine = [p for p in order if p.startswith(unit + "/")]
        assert mine[-1].rsplit("/", 1)[1] in markers, (unit, mine)
        assert len([p for p in mine if p.rsplit("/", 1)[1] in markers]) == 1
    last_unit_file = max(i for i, p in enumerate(order) if p.startswith(tuple(COMPLETE)))
    wh = order.index("warehouse.duckdb")  # the move of the temp upload
    assert order[wh - 1].startswith(".tmp-push-")  # uploaded under a hidden name first
    assert last_unit_file < wh
    links = [i for i, p in enumerate(order) if p.endswith(".link")]  # temp upload + move
    assert [order[i] for i in links if not order[i].startswith("reports/tweets/.")
            and not order[i].startswith("published/tweets/.")] \
        == ["reports/tweets/latest.link", "published/tweets/current.link"]
    assert len(links) == 4 and min(links) > wh


def test_interrupted_pull_leaves_no_complete_looking_unit(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = open_remote("memory://bucket/s")
    push(remote, store, D)
    real = remote.fs.get_file
    calls: list[str] = []

    def flaky(rpath: str, lpath: str, **kw: object) -> object:
        calls.append(str(rpath))
        if str(rpath).endswith("/_batch.json"):
            raise OSError("connection reset")
        return real(rpath, lpath, **kw)

    monkeypatch.setattr(remote.fs, "get_file", flaky)
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="connection reset") as info:
        pull(remote, fresh, D)
    assert any("store memory://bucket/s" in note for note in info.value.__notes__)
    # the data file came first (marker last), yet no lake folder appeared, nor temp leftovers
    assert calls[-2].endswith(f"{BATCH}/data.parquet") or calls[-2].endswith("rejects.parquet")
    assert not (fresh / BATCH).exists()
    assert [p.name for p in (fresh / "lake/tweets/items").iterdir()] == []

    monkeypatch.setattr(remote.fs, "get_file", real)
    assert pull(remote, fresh, D).units == 7
    assert local_files(fresh, COMPLETE) == local_files(store, COMPLETE)
