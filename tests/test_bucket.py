"""A cloud bucket as the run folder (COLABKIT_HOME=s3://…), against a real S3-compatible server.

moto's server mode runs on loopback, in this process; s3fs talks to it over HTTP exactly as it would
to AWS (AWS_ENDPOINT_URL points it there). Nothing is faked inside colabkit or s3fs: the writes are
real PUTs, the listings real ListObjectsV2 calls, a kill really cuts a request off.
"""

import hashlib
import json
import logging
import os
import sys
import time
import uuid

import pytest
import s3fs
import torch
from moto.server import ThreadedMotoServer
from resume_util import REPO, assert_same, env_for, run_to_end, run_with_kills
from torch import nn

import colabkit as ck
from colabkit.checkpoint import LEASE_NAME, Checkpointer, LeaseHeld, ckpt_name
from colabkit.store import TMP_PREFIX, FsspecStore, open_store

SCRIPT = REPO / "tests" / "scripts" / "tiny_train.py"
TOTAL = 40


@pytest.fixture(scope="module")
def s3_server():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    creds = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "course-test",
             "AWS_SECRET_ACCESS_KEY": "course-test", "AWS_DEFAULT_REGION": "us-east-1"}
    yield creds
    server.stop()


@pytest.fixture
def bucket(s3_server, monkeypatch, tmp_path):
    """A fresh bucket; this process and its subprocesses reach it through the AWS_* variables."""
    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    name = f"course-{uuid.uuid4().hex[:10]}"
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(name)
    return name, fs


def objects(fs, prefix):
    fs.invalidate_cache()
    return sorted(p.split("/", 1)[1] for p in fs.find(prefix))


def newest_in_bucket(fs, folder):
    def newest():
        names = [p.rsplit("/", 1)[-1] for p in objects(fs, folder)]
        steps = [int(n[5:14]) for n in names if n.endswith(".pt") and n + ".sha256" in names]
        return max(steps, default=None)
    return newest


def test_an_s3_store_writes_final_names_directly_and_sees_other_writers(bucket):
    name, fs = bucket
    store = open_store(f"s3://{name}/run")
    assert isinstance(store, FsspecStore) and store.direct_put
    assert not open_store("memory://x/run").direct_put   # rename-capable stores keep temp-then-rename
    moves = []
    real_mv = store.fs.mv
    store.fs.mv = lambda *a, **k: (moves.append(a), real_mv(*a, **k))
    store.write_bytes("a/b.bin", b"x" * 1000)
    assert moves == []                                     # no copy-and-delete "rename"
    assert store.read_bytes("a/b.bin") == b"x" * 1000
    assert store.list() == ["a/b.bin"]
    # Another session writes to the same bucket: this store's next listing sees it (no stale cache).
    other = s3fs.S3FileSystem(skip_instance_cache=True)
    other.pipe_file(f"{name}/run/a/c.bin", b"y")
    assert store.list("a") == ["a/b.bin", "a/c.bin"]
    assert store.exists("a/c.bin")
    other.rm_file(f"{name}/run/a/c.bin")
    assert not store.exists("a/c.bin") and store.list("a") == ["a/b.bin"]
    store.delete("a/b.bin")
    assert store.list() == []


def test_a_large_file_streams_into_a_bucket_whole(bucket, tmp_path):
    """put_file (the archive cache's write) streams in chunks; in a bucket it becomes one object."""
    name, fs = bucket
    src = tmp_path / "archive.bin"
    payload = os.urandom(3 << 20)
    src.write_bytes(payload)
    store = open_store(f"s3://{name}/cache")
    seen = []
    store.put_file("archive.bin", src, on_chunk=seen.append)
    assert sum(seen) == len(payload)
    assert fs.cat_file(f"{name}/cache/archive.bin") == payload
    assert objects(fs, f"{name}/cache") == ["cache/archive.bin"]


def test_sigkill_at_random_moments_with_the_run_in_a_bucket_resumes_bit_exact(bucket, tmp_path):
    name, fs = bucket
    ref_out = tmp_path / "ref"
    ref_out.mkdir()
    run_to_end([sys.executable, str(SCRIPT), str(ref_out), str(TOTAL)],
               env_for(tmp_path / "ref-home", tmp_path / "ref-work"), REPO)
    ref = torch.load(ref_out / "final.pt", weights_only=True)

    out = tmp_path / "killed"
    out.mkdir()
    home = f"s3://{name}/home"
    env = env_for(tmp_path / "unused", tmp_path / "work", COLABKIT_SAVE_EVERY_STEPS=1, TINY_STEP_SLEEP=0.02)
    env["COLABKIT_HOME"] = home
    folder = f"{name}/home/tiny-smoke/train/checkpoints" if os.environ.get("COLABKIT_SMOKE") \
        else f"{name}/home/tiny/train/checkpoints"
    res = run_with_kills([sys.executable, str(SCRIPT), str(out), str(TOTAL)], env, REPO, kills=4, seed=7,
                         done_marker="DONE", wait_for="[train] ", min_delay=0.0, max_delay=0.1, steps=(1, 6),
                         progress_folder=newest_in_bucket(fs, folder))
    assert res["killed"] >= 3, res["logs"]
    resumed = [log for log in res["logs"] if "resumed from ckpt-" in log and home in log]
    assert len(resumed) >= 3, "restarts should continue from the bucket's checkpoints"
    got = torch.load(out / "final.pt", weights_only=True)
    assert got["step"] == TOTAL
    assert assert_same(ref, got) > 20
    # Pruned to `keep` checkpoints, each with its checksum; no temporary objects, no lease left behind.
    names = [p.rsplit("/", 1)[-1] for p in objects(fs, folder)]
    assert [n for n in names if n.endswith(".pt")] == [ckpt_name(s) for s in (TOTAL - 2, TOTAL - 1, TOTAL)]
    assert all(n.endswith((".pt", ".sha256")) and not n.startswith(TMP_PREFIX) for n in names), names
    assert not fs.exists(f"{folder.rsplit('/', 1)[0]}/{LEASE_NAME}")


def test_a_truncated_checkpoint_object_is_skipped_for_the_one_before(bucket):
    name, fs = bucket
    store = open_store(f"s3://{name}/ckpts")
    saver = Checkpointer(store, keep=3)
    for s in (1, 2, 3):
        saver.save(s, {"state": {"w": torch.full((256,), float(s))}}, blocking=True)
    key = f"{name}/ckpts/{ckpt_name(3)}"
    data = fs.cat_file(key)
    fs.pipe_file(key, data[: len(data) // 2])       # an upload cut short by some other tool
    with pytest.warns(UserWarning, match=ckpt_name(3)):
        loaded, got = Checkpointer(open_store(f"s3://{name}/ckpts")).load_latest()
    assert got == ckpt_name(2)
    assert torch.equal(loaded["state"]["w"], torch.full((256,), 2.0))
    assert hashlib.sha256(fs.cat_file(f"{name}/ckpts/{ckpt_name(2)}")).hexdigest() == \
        fs.cat_file(f"{name}/ckpts/{ckpt_name(2)}.sha256").decode().split()[0]


def test_the_lease_in_a_bucket_keeps_a_second_session_out(bucket, tmp_path, monkeypatch):
    name, fs = bucket
    monkeypatch.setenv("COLABKIT_HOME", f"s3://{name}/home")
    monkeypatch.setenv("COLABKIT_WORK", str(tmp_path / "work"))
    for var in ("COLABKIT_SMOKE", "COLABKIT_SAVE_EVERY_STEPS", "COLABKIT_TAKE_OVER"):
        monkeypatch.delenv(var, raising=False)
    lease_key = f"{name}/home/t/train/{LEASE_NAME}"
    now = time.time()
    fs.pipe_file(lease_key, json.dumps({"owner": "other", "host": "another-vm", "boot": "b", "pid": 7,
                                        "started": now - 600, "heartbeat": now - 30, "interval_s": 60}).encode())
    run = ck.setup("t", {"seed": 0}, allow_cpu=True, verbose=False)
    extra = ck.State(k_t=0.0)

    def loop():
        return run.loop("train", total_steps=4, state={"net": nn.Linear(2, 1), "extra": extra}, progress=False,
                        save_every_steps=2)

    with pytest.raises(LeaseHeld, match="another-vm"):
        for _ in loop():
            pass
    assert not fs.exists(f"{name}/home/t/train/checkpoints")    # nothing was written
    # Once its heartbeat is stale, this session takes the run over and trains it.
    fs.pipe_file(lease_key, json.dumps({"owner": "other", "host": "another-vm", "boot": "b", "pid": 7,
                                        "started": now - 7200, "heartbeat": now - 3600,
                                        "interval_s": 60}).encode())
    for _ in loop():
        extra.k_t += 1
    assert extra.k_t == 4
    names = [p.rsplit("/", 1)[-1] for p in objects(fs, f"{name}/home/t/train/checkpoints")]
    assert ckpt_name(4) in names
    assert not fs.exists(lease_key)   # released at the end
