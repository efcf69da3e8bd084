"""What ``RedisStore.repair`` looks for: index entries that disagree with the records.

Every write is one Lua script, which Redis runs whole, whatever happens to the client that
sent it: a killed writer leaves no half-written record and no half-made index entry, and there
is no lock to go stale. What can drift is the indexes' view of records Redis *expired* itself:
their hash is gone, their entries in ``P:updated``, ``P:status:<status>``, ``P:expires``,
``P:owner:<owner>`` and ``P:expiring-owners`` stay until a listing meets them or
``purge(expired=True)`` runs (``get`` and ``list`` never show them). ``repair`` sweeps every id
the records and the indexes name, and in one script per batch (atomic, so no writer can come
between the look and the fix):

- drops the index entries of a record that is gone (``index_entry``);
- indexes a record missing from ``P:updated``, its status index or its owner's, or indexed
  with another stamp (``unindexed_record``), which only a write past the store's scripts makes;
- drops a record's entries in the indexes of statuses and owners it no longer has
  (``index_entry``), and status names in ``P:statuses`` whose index is empty;
- keeps ``P:expiring-owners`` to the records that have both an owner and an expiry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from redis.commands.core import Script

from jobstatus.backends.redis._client import ERRORS, Connector, failure
from jobstatus.repair import RepairReport

__all__ = ["REPAIR", "repair_indexes"]

_BATCH = 200

#: ARGV = prefix, dry run '1'|'0', the number of status names, the names, the number of owner
#: names, the names, then job ids. Returns kind, id (or status name), index key for each entry
#: that disagreed.
REPAIR = """
local P, dry = ARGV[1], ARGV[2] == '1'
local UPDATED, EXPIRES, STATUSES = P .. ':updated', P .. ':expires', P .. ':statuses'
local EXPIRING_OWNERS = P .. ':expiring-owners'
local names, owners = {}, {}
local statuses = tonumber(ARGV[3])
for i = 4, 3 + statuses do names[#names + 1] = ARGV[i] end
local owner_count = tonumber(ARGV[4 + statuses])
for i = 5 + statuses, 4 + statuses + owner_count do owners[#owners + 1] = ARGV[i] end
local first_id = 5 + statuses + owner_count
local out = {}
local function found(kind, id, key)
  out[#out + 1] = kind; out[#out + 1] = id; out[#out + 1] = key
end
local function drop(key, id)
  if redis.call('ZSCORE', key, id) then
    found('index_entry', id, key)
    if not dry then redis.call('ZREM', key, id) end
  end
end
local function index(key, id, score, stamp)
  if tonumber(redis.call('ZSCORE', key, id)) ~= score then
    found('unindexed_record', id, key)
    if not dry then redis.call('ZADD', key, stamp, id) end
  end
end
for i = first_id, #ARGV do
  local id = ARGV[i]
  local key = P .. ':job:' .. id
  local stored = redis.call('HMGET', key, 'status', 'updated_at', 'owner')
  local status, stamp, owner = stored[1], stored[2], stored[3]
  local kept_owner = redis.call('HGET', EXPIRING_OWNERS, id)
  if status and stamp then
    local score = tonumber(stamp)
    index(UPDATED, id, score, stamp)
    index(P .. ':status:' .. status, id, score, stamp)
    if owner then index(P .. ':owner:' .. owner, id, score, stamp) end
    if not dry then redis.call('SADD', STATUSES, status) end
    local expiring = owner and redis.call('PTTL', key) > 0
    if expiring and kept_owner ~= owner then
      found('unindexed_record', id, EXPIRING_OWNERS)
      if not dry then redis.call('HSET', EXPIRING_OWNERS, id, owner) end
    elseif kept_owner and not expiring then
      found('index_entry', id, EXPIRING_OWNERS)
      if not dry then redis.call('HDEL', EXPIRING_OWNERS, id) end
    end
  else
    drop(UPDATED, id)
    drop(EXPIRES, id)
    if kept_owner then
      found('index_entry', id, EXPIRING_OWNERS)
      if not dry then redis.call('HDEL', EXPIRING_OWNERS, id) end
    end
  end
  for _, name in ipairs(names) do
    if name ~= status then drop(P .. ':status:' .. name, id) end
  end
  for _, name in ipairs(owners) do
    if name ~= owner then drop(P .. ':owner:' .. name, id) end
  end
end
for _, name in ipairs(names) do
  if redis.call('ZCARD', P .. ':status:' .. name) == 0
      and redis.call('SISMEMBER', STATUSES, name) == 1 then
    found('index_entry', name, STATUSES)
    if not dry then redis.call('SREM', STATUSES, name) end
  end
end
return out
"""

_NOTES = {
    "index_entry": ("removed", "would be removed (dry run)"),
    "unindexed_record": ("indexed", "would be indexed (dry run)"),
}


def repair_indexes(
    connector: Connector, script: Script, prefix: str, where: str, *, dry_run: bool
) -> RepairReport:
    """Reconcile the indexes under ``prefix`` with its records (see the module)."""
    report = RepairReport(dry_run=dry_run)
    client = connector.client()
    try:
        names, owners, ids = _everything_named(client, prefix)
        listed = sorted(ids)
        for start in range(0, len(listed), _BATCH) or [0]:
            batch = listed[start : start + _BATCH]
            args: list[Any] = [prefix, "1" if dry_run else "0", len(names), *names]
            args += [len(owners), *owners, *batch]
            reply = script(args=args, client=client)
            for n in range(0, len(reply), 3):
                kind, name, key = (_text(value) for value in reply[n : n + 3])
                note = _note(kind, key.endswith(":statuses"), dry_run)
                report.add(kind, f"{key} {name}", repaired=not dry_run, note=note)
    except ERRORS as exc:
        raise failure("cannot repair the indexes", where, exc) from exc
    return report


def _note(kind: str, status_name: bool, dry_run: bool) -> str:
    done, would = _NOTES[kind]
    if dry_run:
        return would
    if status_name:
        return f"{done}: no record has this status"
    if kind == "index_entry":
        return f"{done}: the record is gone (Redis expired it) or has another status"
    return f"{done}: the record was missing from this index"


def _everything_named(client: Any, prefix: str) -> tuple[list[str], list[str], set[str]]:
    """The status names (in ``P:statuses`` or with an index), the owners with an index, and
    every job id a record or an index names."""
    status_prefix, owner_prefix = f"{prefix}:status:", f"{prefix}:owner:"
    names = {_text(n) for n in client.smembers(f"{prefix}:statuses")}
    names |= {_text(k)[len(status_prefix) :] for k in _keys(client, status_prefix)}
    owners = {_text(k)[len(owner_prefix) :] for k in _keys(client, owner_prefix)}
    job_prefix = f"{prefix}:job:"
    ids = {_text(k)[len(job_prefix) :] for k in _keys(client, job_prefix)}
    indexes = [f"{prefix}:updated", f"{prefix}:expires", *(status_prefix + n for n in names)]
    for key in [*indexes, *(owner_prefix + n for n in owners)]:
        ids |= {_text(member) for member, _ in client.zscan_iter(key)}
    ids |= {_text(member) for member, _ in client.hscan_iter(f"{prefix}:expiring-owners")}
    return sorted(names), sorted(owners), ids


def _keys(client: Any, prefix: str) -> Iterator[Any]:
    return iter(client.scan_iter(match=re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
