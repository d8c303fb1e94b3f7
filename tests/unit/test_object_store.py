"""Storage and the quarantine on an S3-protocol object store (moto's server on loopback, the one the
cluster runs): what differs from a local disk is that a folder cannot be renamed, only copied key
by key, and that an object appears whole when its upload completes.

Seen on the cluster before this test: a rejected batch could not be quarantined on the object
store (the entry was built in a hidden folder and moved into place; the move failed with NoSuchKey).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from include.quarantine import Quarantine
from include.storage import Storage, Window

ROOT = Path(__file__).resolve().parents[2]
JAN5 = Window.parse("2026-01-05", "2026-01-06")
BUCKET = "unit-store"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3 endpoint on loopback with a bucket; the AWS variables s3fs reads point at it."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    # fsspec caches filesystems by their arguments, not by the AWS_* variables they read: one made
    # earlier in the session (the cluster tier's) would still point at that endpoint
    s3fs.S3FileSystem.clear_instance_cache()

    sys.path.insert(0, str(ROOT / "scripts"))
    from services import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("s3")
    server.stop()


def keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def s3_storage(name: str) -> Storage:
    return Storage(f"s3://{BUCKET}/{name}", f"s3://{BUCKET}/{name}-landing", "timestamp")


def test_a_rejected_batch_is_quarantined_on_the_object_store_as_numbered_entries(s3):
    storage = s3_storage("jail")
    jail = Quarantine(storage)
    rows = pd.DataFrame({"id": [1, 2], "timestamp": ["2026-01-05T01:00", "2026-01-05T02:00"], "x": [1.0, -5.0]})
    report = {"results": [{"column": "x", "rule": "expect_column_values_to_be_between", "success": False}]}
    first = jail.add(JAN5, {"s3://x/day1.parquet": rows}, {}, report, "# rejected", {"run_id": "r1"})
    second = jail.add(JAN5, {}, {}, report, "# rejected, no rows", {"run_id": "r2"})  # an empty window fails too
    assert [first["id"][:6], second["id"][:6]] == ["0001__", "0002__"]
    assert first["failed"] == ["x: expect_column_values_to_be_between"]
    assert Quarantine(storage).entry_ids() == [first["id"], second["id"]]
    assert jail.rows(first["id"])["s3://x/day1.parquet"]["x"].tolist() == [1.0, -5.0]
    assert storage.fs.cat_file(f"{jail.root}/{second['id']}/report.md") == b"# rejected, no rows"
    stored = keys(s3, "jail/")
    assert not [k for k in stored if ".tmp-" in k], stored  # objects are written in place, nothing left aside
    assert f"jail/quarantine/{first['id']}/entry.json" in stored


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_half_written_entry_is_no_entry_and_its_number_is_not_handed_out_again(s3, tmp_path, where):
    """A gate killed while it wrote an entry leaves rows without entry.json: no gate trips over it,
    and the next entry takes the next number, so the leftovers never mix into a finished entry."""
    storage = s3_storage("half") if where == "s3" else Storage(str(tmp_path / "store"), str(tmp_path / "landing"), "timestamp")
    jail = Quarantine(storage)
    storage.write_bytes(b"partial", f"{jail.root}/0001__{JAN5.key}/rows/000__day1.parquet")
    assert jail.entry_ids() == [] and jail.entries("open") == []
    entry = jail.add(JAN5, {}, {}, {"results": []}, "# r", {"run_id": "r1"})
    assert entry["id"] == f"0002__{JAN5.key}"
    assert jail.entry_ids() == [entry["id"]]


def test_json_and_parquet_round_trip_on_the_object_store(s3):
    storage = s3_storage("files")
    path = storage.write_json({"a": 1}, storage.path("verdicts", "v.json"))
    assert storage.read_json(path) == {"a": 1}
    frame = pd.DataFrame({"id": [1, 2], "p": [0.1, 0.9]})
    storage.write_parquet(frame, storage.path("predictions", "p.parquet"))
    storage.write_parquet(frame.assign(p=[0.2, 0.8]), storage.path("predictions", "p.parquet"))  # replaced whole
    assert storage.read_parquet(storage.path("predictions", "p.parquet"))["p"].tolist() == [0.2, 0.8]
    assert keys(s3, "files/") == ["files/predictions/p.parquet", "files/verdicts/v.json"]


def test_a_file_another_process_writes_is_listed_at_the_next_look(s3):
    """A long-lived reader (a poking sensor, the demo driver) sees verdicts written after its first
    listing: s3fs would otherwise answer from the listing it cached at the first look."""
    storage = s3_storage("listing")
    storage.write_json({"start": "2026-01-05", "end": "2026-01-06"}, storage.path("verdicts", "a.json"))
    assert len(storage.verdicts()) == 1
    s3.put_object(Bucket=BUCKET, Key="listing/verdicts/b.json", Body=b'{"start": "2026-01-06", "end": "2026-01-07"}')
    assert [v["start"] for v in storage.verdicts()] == ["2026-01-05", "2026-01-06"]
