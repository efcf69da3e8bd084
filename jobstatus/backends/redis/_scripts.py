"""The Lua scripts behind every write: each runs as one atomic step inside Redis.

Keys (``P`` is the store's prefix; every key of a store starts with ``P:``)::

    P:job:<job_id>     hash   doc, status, updated_at, version[, owner][, w]; TTL: expires_at
    P:updated          zset   job_id scored by updated_at (seconds since the epoch)
    P:status:<status>  zset   job_id scored by updated_at, one per status in use
    P:statuses         set    the statuses that have a P:status:<status> zset
    P:owner:<owner>    zset   job_id scored by updated_at, one per owner with records
    P:expires          zset   job_id scored by expires_at (epoch milliseconds)
    P:expiring-owners  hash   job_id → owner, for the records that have both
    P:changes          channel: every write PUBLISHes the job id

``doc`` holds the document's exact bytes (``JobRecord.to_json()``); ``version`` is
``jobstatus.store.version_of`` of them; ``w`` is the token of the last conditional write (a
retry of that very call after a lost reply recognises its own write). A record with
``expires_at`` has a Redis TTL ending 1 ms before it (Redis drops a key once its time is
*past*; a record is expired once its time has *come*), so Redis itself drops expired records;
their index entries go when a list meets them, or with ``purge(expired=True)``; the owner of a
record Redis dropped is found in ``P:expiring-owners``.

Status keys are built inside the scripts from the prefix (the stored status is only known
there): the scripts need a standalone Redis, which is why Redis Cluster is refused.
"""

from __future__ import annotations

from jobstatus.record import FINAL_STATES

# Shared helpers, prepended to every script. ARGV[1] is always the prefix.
_COMMON = """
local P = ARGV[1]
local UPDATED, EXPIRES, STATUSES = P .. ':updated', P .. ':expires', P .. ':statuses'
local EXPIRING_OWNERS = P .. ':expiring-owners'

local function drop_status(status, id)
  local key = P .. ':status:' .. status
  if redis.call('ZREM', key, id) == 1 and redis.call('ZCARD', key) == 0 then
    redis.call('SREM', STATUSES, status)
  end
end

-- Forget every index entry of id; status and owner are its stored ones, or false when the
-- record is gone (Redis expired it): then every status zset is swept, and the owner is the
-- one P:expiring-owners kept.
local function unindex(id, status, owner)
  local indexed = redis.call('ZREM', UPDATED, id)
  redis.call('ZREM', EXPIRES, id)
  if not status then owner = redis.call('HGET', EXPIRING_OWNERS, id) end
  redis.call('HDEL', EXPIRING_OWNERS, id)
  if owner then redis.call('ZREM', P .. ':owner:' .. owner, id) end
  if status then
    drop_status(status, id)
  elseif indexed == 1 then
    for _, name in ipairs(redis.call('SMEMBERS', STATUSES)) do drop_status(name, id) end
  end
  return indexed
end

-- Write one record whole: the hash, its TTL, its index entries; publish its id. owner is ''
-- for a record without one.
local function write(id, doc, status, version, updated_at, expires_ms, owner, token)
  local key = P .. ':job:' .. id
  local old = redis.call('HMGET', key, 'status', 'owner')
  if old[1] then
    if old[1] ~= status then drop_status(old[1], id) end
    if old[2] and old[2] ~= owner then redis.call('ZREM', P .. ':owner:' .. old[2], id) end
  elseif redis.call('ZSCORE', UPDATED, id) then
    unindex(id, false, false)  -- entries left by a record Redis expired
  end
  redis.call('DEL', key)
  redis.call('HSET', key, 'doc', doc, 'status', status, 'version', version,
             'updated_at', updated_at)
  if token ~= '' then redis.call('HSET', key, 'w', token) end
  redis.call('ZADD', UPDATED, updated_at, id)
  redis.call('ZADD', P .. ':status:' .. status, updated_at, id)
  redis.call('SADD', STATUSES, status)
  if owner ~= '' then
    redis.call('HSET', key, 'owner', owner)
    redis.call('ZADD', P .. ':owner:' .. owner, updated_at, id)
  end
  if expires_ms ~= '' then
    redis.call('PEXPIREAT', key, tonumber(expires_ms) - 1)
    redis.call('ZADD', EXPIRES, expires_ms, id)
  else
    redis.call('ZREM', EXPIRES, id)
  end
  if expires_ms ~= '' and owner ~= '' then
    redis.call('HSET', EXPIRING_OWNERS, id, owner)
  else
    redis.call('HDEL', EXPIRING_OWNERS, id)
  end
  redis.call('PUBLISH', P .. ':changes', id)
end
"""

_FINAL = "{" + ", ".join(f"[{state!r}] = true" for state in sorted(FINAL_STATES)) + "}"

#: put: ARGV = prefix, id, doc, status, version, updated_at, expires_ms|'', force '1'|'0',
#: expect 'n'|'a'|'v', expected version, token|'', owner|''.
#: Returns {1} when written, {0, doc, version, updated_at} when the stored record is kept (or
#: was written by this very call before), {-1, stored version|false} on a conflict.
PUT = (
    _COMMON
    + f"local FINAL = {_FINAL}\n"
    + """
local id = ARGV[2]
local key = P .. ':job:' .. id
local stored = redis.call('HMGET', key, 'status', 'version', 'updated_at', 'w', 'doc')
local status, version = stored[1], stored[2]
local token, expect = ARGV[11], ARGV[9]
if token ~= '' and status and stored[4] == token then
  return {0, stored[5], version, stored[3]}  -- a retry of a write that was applied
end
if (expect == 'a' and status) or (expect == 'v' and version ~= ARGV[10]) then
  return {-1, version}
end
if status and ARGV[8] ~= '1' and FINAL[status] then
  return {0, stored[5], version, stored[3]}
end
write(id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[12], token)
return {1}
"""
)

#: restore: ARGV = prefix, then id, doc, status, version, updated_at, expires_ms|'', owner|''
#: per record.
RESTORE = (
    _COMMON
    + """
local n = 0
for i = 2, #ARGV, 7 do
  write(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
        '')
  n = n + 1
end
return n
"""
)

#: delete: ARGV = prefix, id. Returns 1 when a record (or what an expired one left) was removed.
DELETE = (
    _COMMON
    + """
local id = ARGV[2]
local key = P .. ':job:' .. id
local stored = redis.call('HMGET', key, 'status', 'owner')
local removed = redis.call('DEL', key) + unindex(id, stored[1], stored[2])
if removed > 0 then redis.call('PUBLISH', P .. ':changes', id) end
return removed > 0 and 1 or 0
"""
)

#: A page of a list: ARGV = prefix, index zset, max score, min score, offset, count.
#: Returns id, score, doc, version for each entry, then 1 if the index has more entries in
#: the range past this page, else 0. An entry whose record Redis expired comes with doc false,
#: and its index entries are gone.
LIST_PAGE = (
    _COMMON
    + """
local count = tonumber(ARGV[6])
local entries = redis.call('ZREVRANGEBYSCORE', ARGV[2], ARGV[3], ARGV[4],
                           'WITHSCORES', 'LIMIT', ARGV[5], count + 1)
local out = {}
for i = 1, math.min(#entries, 2 * count), 2 do
  local id = entries[i]
  local found = redis.call('HMGET', P .. ':job:' .. id, 'doc', 'version')
  if not found[1] then unindex(id, false, false) end
  out[#out + 1] = id
  out[#out + 1] = entries[i + 1]
  out[#out + 1] = found[1]
  out[#out + 1] = found[2]
end
out[#out + 1] = #entries > 2 * count and 1 or 0
return out
"""
)


def _remove_one() -> str:
    return """
local function remove(id)
  local key = P .. ':job:' .. id
  local stored = redis.call('HMGET', key, 'status', 'owner')
  redis.call('DEL', key)
  unindex(id, stored[1], stored[2])
  redis.call('PUBLISH', P .. ':changes', id)
end
"""


#: Purge by age: ARGV = prefix, index zset, exclusive bound '(<older_than>', count.
#: Removes up to count records the index has before the bound; returns how many.
PURGE_OLDER = (
    _COMMON
    + _remove_one()
    + """
local ids = redis.call('ZRANGEBYSCORE', ARGV[2], '-inf', ARGV[3], 'LIMIT', 0, ARGV[4])
for _, id in ipairs(ids) do remove(id) end
return #ids
"""
)

#: Purge by expiry: ARGV = prefix, now (epoch ms), offset, count, then the statuses to purge
#: (none: any). Looks at up to count entries of P:expires due by now, from offset; returns
#: {removed, looked at}. A record Redis already dropped matches a status by its index entry.
PURGE_EXPIRED = (
    _COMMON
    + _remove_one()
    + """
local due = redis.call('ZRANGEBYSCORE', EXPIRES, '-inf', ARGV[2], 'LIMIT', ARGV[3], ARGV[4])
local wanted = {}
for i = 5, #ARGV do wanted[ARGV[i]] = true end
local any = #ARGV < 5
local removed = 0
for _, id in ipairs(due) do
  local match = any
  if not match then
    local status = redis.call('HGET', P .. ':job:' .. id, 'status')
    if status then
      match = wanted[status] == true
    else
      for i = 5, #ARGV do
        if redis.call('ZSCORE', P .. ':status:' .. ARGV[i], id) then match = true end
      end
    end
  end
  if match then
    remove(id)
    removed = removed + 1
  end
end
return {removed, #due}
"""
)
