"""What bench_redis.py measures the Redis store against: the raw redis-py write, the same put
done with WATCH/MULTI instead of a Lua script, and the record layouts the store did not pick."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from jobstatus import JobRecord
from jobstatus.record import FINAL_STATES
from jobstatus.store import version_of


def raw_put(client: redis.Redis, prefix: str) -> Callable[[JobRecord], None]:
    """The least a write of the layout is: HSET of the record's hash and ZADD of the index,
    one pipeline, one round trip (no checks, no status index, no publish)."""

    def put(record: JobRecord) -> None:
        data = record.to_json().encode("utf-8")
        stamp = time.time()
        pipe = client.pipeline(transaction=False)
        pipe.hset(
            f"{prefix}:job:{record.job_id}",
            mapping={"doc": data, "status": record.job_status, "version": version_of(data),
                     "updated_at": repr(stamp)},
        )  # fmt: skip
        pipe.zadd(f"{prefix}:updated", {record.job_id: stamp})
        pipe.execute()

    return put


class WatchPut:
    """The store's put (the final rule, the same keys written) with WATCH/MULTI/EXEC instead of
    one Lua script: WATCH, HMGET, then MULTI…EXEC, again from the start when another writer
    changed the record in between. Counts those restarts."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self.retries = 0

    def __call__(self, record: JobRecord) -> None:
        prefix, job_id = self.prefix, record.job_id
        key = f"{prefix}:job:{job_id}"
        data = record.to_json().encode("utf-8")
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    status = pipe.hget(key, "status")
                    if status is not None and status.decode() in FINAL_STATES:
                        pipe.unwatch()
                        return
                    stamp = time.time()
                    pipe.multi()
                    if status is not None and status.decode() != record.job_status:
                        pipe.zrem(f"{prefix}:status:{status.decode()}", job_id)
                    pipe.delete(key)
                    pipe.hset(
                        key,
                        mapping={"doc": data, "status": record.job_status,
                                 "version": version_of(data), "updated_at": repr(stamp)},
                    )  # fmt: skip
                    pipe.zadd(f"{prefix}:updated", {job_id: stamp})
                    pipe.zadd(f"{prefix}:status:{record.job_status}", {job_id: stamp})
                    pipe.sadd(f"{prefix}:statuses", record.job_status)
                    pipe.zrem(f"{prefix}:expires", job_id)
                    pipe.publish(f"{prefix}:changes", job_id)
                    pipe.execute()
                    return
                except redis.WatchError:
                    self.retries += 1


# -- the layouts the store did not pick ---------------------------------------------------------

_GET_AND_SCORE = """
local doc = redis.call('GET', KEYS[1])
if not doc then return false end
return {doc, redis.call('ZSCORE', KEYS[2], ARGV[1])}
"""


def layout_memory(
    client: redis.Redis, prefix: str, record: JobRecord, count: int
) -> dict[str, Any]:
    """Bytes per record key (INFO used_memory before and after ``count`` records) of three
    layouts: the store's hash (doc + status + updated_at + version), the document alone as a
    string (metadata elsewhere), and a string plus a small hash of metadata."""
    data = record.to_json().encode("utf-8")
    meta = {"status": "done", "updated_at": repr(time.time()), "version": version_of(data)}
    layouts: dict[str, Callable[[Any, str], None]] = {
        "hash: doc, status, updated_at, version (the store's)": lambda p, k: p.hset(
            k, mapping={"doc": data, **meta}
        ),
        "string: the document alone": lambda p, k: p.set(k, data),
        "string + a hash of metadata (two keys)": lambda p, k: (
            p.set(k, data),
            p.hset(k + ":meta", mapping=meta),
        ),
    }
    figures: dict[str, Any] = {}
    for name, write in layouts.items():
        before = client.info("memory")["used_memory"]
        pipe = client.pipeline(transaction=False)
        for n in range(count):
            write(pipe, f"{prefix}:layout:{n}")
            if n % 1000 == 999:
                pipe.execute()
        pipe.execute()
        figures[name] = (client.info("memory")["used_memory"] - before) / count
        for start in range(0, count, 1000):
            keys = [f"{prefix}:layout:{n}" for n in range(start, min(count, start + 1000))]
            client.unlink(*keys, *(k + ":meta" for k in keys))
    return figures


def layout_reads(
    client: redis.Redis, prefix: str, record: JobRecord
) -> dict[str, Callable[[int], object]]:
    """Reading a document and its updated_at atomically, per layout: HMGET of the hash, and for
    a string document kept apart from its metadata, a script or MULTI/EXEC doing GET + ZSCORE."""
    data = record.to_json().encode("utf-8")
    job_id = record.job_id
    hash_key, string_key, index = f"{prefix}:lr:h", f"{prefix}:lr:s", f"{prefix}:lr:updated"
    client.hset(hash_key, mapping={"doc": data, "updated_at": repr(time.time()), "version": "v"})
    client.set(string_key, data)
    client.zadd(index, {job_id: time.time()})
    script = client.register_script(_GET_AND_SCORE)

    def multi(_: int) -> object:
        pipe = client.pipeline(transaction=True)
        pipe.get(string_key)
        pipe.zscore(index, job_id)
        return pipe.execute()

    return {
        "HMGET doc updated_at version (hash)": lambda _: client.hmget(
            hash_key, ["doc", "updated_at", "version"]
        ),
        "EVALSHA GET + ZSCORE (string)": lambda _: script(keys=[string_key, index], args=[job_id]),
        "MULTI GET ZSCORE EXEC (string)": multi,
        "GET alone (string, no metadata)": lambda _: client.get(string_key),
    }


def raw_list(client: redis.Redis, prefix: str, since: float) -> int:
    """list(since) by hand: the index range, one pipeline of HMGETs, json.loads each."""
    ids = client.zrevrangebyscore(f"{prefix}:updated", "+inf", repr(since))
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"{prefix}:job:{job_id.decode()}", ["doc", "updated_at", "version"])
    return len([json.loads(doc) for doc, _, _ in pipe.execute()])
