"""The Lua scripts of the Redis store: each store operation is one script.

A script runs whole or not at all as far as other clients can see, so the
compare of a version and the write that follows it, or the check for room and
the eviction that makes it, are one step for every process on the Redis: no
lost update and no check-then-act race, without WATCH retries or locks.

Keys of a slab, under ``BASE`` = ``{prefix}:{{slab}}:`` (the slab's name in
braces: a Redis Cluster hash tag, so that all of a slab's keys are in one hash
slot, and a boundary no prefix or name can cross, since neither may hold a
brace):

- ``BASE r:{hex key}``: a hash per record: ``v`` version, ``d`` the codec's bytes
  as they are, ``t`` last use (epoch seconds, the capsule's clock). Its TTL is
  the idle timeout, refreshed on use; none without an idle timeout.
- ``BASE used``: sorted set of hex keys by their last tick: recency, for
  eviction and the sweep.
- ``BASE keys``: sorted set of hex keys, all scored 0: lexicographic order, for
  listing by cursor (a record keeps its place however often it is used).
- ``BASE held``: sorted set of hex keys whose turn a request holds, scored by
  when the hold lapses (Redis's clock, in microseconds): the sweep and eviction
  pass them by.
- ``BASE seq``: the last version (or recency tick) given.
- ``BASE meta``: a hash saying which program and which codec wrote the slab,
  and the idle timeout its records' TTLs were set for.

Every script declares those keys as ``KEYS[1..6]`` (used, keys, held, seq, meta,
then the record's, if it has one) and takes ``ARGV[1..4]`` = now, idle timeout
(s), TTL (ms), the highest version the calling process has seen. A script may
also touch the hash of another record of the slab (the one it evicts or
sweeps): the same hash slot, so still one slot per script.

Write scripts start with ``#!lua``: with flags declared, Redis refuses the whole
script when it is out of memory instead of failing in the middle of it.
"""

from __future__ import annotations

import hashlib

#: What the store writes in a slab's meta hash, to know its own keys again.
KIND = "jetforce-sesh redis store 2"

_PRELUDE = (
    """
local used, keys, held, seq, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, timeout, ttl, floor = tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4])
local base = string.sub(used, 1, -5)
local function drop(member)
  redis.call('DEL', base .. 'r:' .. member)
  redis.call('ZREM', used, member)
  redis.call('ZREM', keys, member)
  redis.call('ZREM', held, member)
end
-- Idle is now - t >= timeout everywhere, as in the memory store.
local function idle(t)
  return timeout > 0 and now - tonumber(t) >= timeout
end
-- Redis's clock, in microseconds: one clock for every process.
local function micros()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- A record whose turn a request holds (in any process), until the hold lapses.
local function is_held(member)
  local until_ = redis.call('ZSCORE', held, member)
  return until_ and tonumber(until_) > micros()
end
local function touch(rec, member, tick)
  redis.call('ZADD', used, tick, member)
  if ttl > 0 then redis.call('PEXPIRE', rec, ttl) else redis.call('PERSIST', rec) end
end
-- The next version (or recency tick), as a string of digits: above the last
-- one given, above every version the calling process has seen, and at least
-- Redis's clock in microseconds. A Redis that comes back older (a snapshot, an
-- AOF that lost its last second, a lagging replica promoted) has an older
-- counter, but its clock went on: the versions it gives are above those given
-- before (a slab cannot give a million a second), so a save naming a version
-- read before the loss cannot pass against a record made after it.
local function next_version(codec)
  local last = redis.call('GET', seq)
  local version = math.max(micros(), floor + 1)
  if last then
    version = math.max(version, tonumber(last) + 1)
  elseif codec then
    -- The counter is missing: a new slab, or a Redis that lost its data under
    -- a running capsule. Say again whose keys these are, so that another
    -- process (or this one, restarted) knows them for its own.
    redis.call('HSET', meta, 'kind', '"""
    + KIND
    + """', 'codec', codec,
      'ttl', ARGV[3])
  end
  version = string.format('%d', version)
  redis.call('SET', seq, version)
  return version
end
"""
)


class Script:
    """A script's source and its SHA-1, by which Redis runs it (EVALSHA)."""

    def __init__(self, name: str, body: str, writes: bool = True) -> None:
        self.name = name
        shebang = "#!lua" if writes else "#!lua flags=no-writes"
        self.source = f"{shebang}\n{_PRELUDE}\n{body}".encode()
        self.sha = hashlib.sha1(self.source).hexdigest()


#: KEYS[6] record; ARGV[5] member, [6] codec format, [7] hold (microseconds, 0:
#: none). {0, count}: absent; {2, count}: it was idle and is dropped now (or
#: Redis's TTL dropped it first); {1, count, version, data}: found, used now, and
#: held for [7] microseconds if asked.
LOAD = Script(
    "load",
    """
local member, rec, hold = ARGV[5], KEYS[6], tonumber(ARGV[7])
local r = redis.call('HMGET', rec, 'v', 'd', 't')
if not r[1] then
  if redis.call('ZREM', used, member) == 1 then
    redis.call('ZREM', keys, member)
    redis.call('ZREM', held, member)
    return {2, redis.call('ZCARD', used)}
  end
  return {0, redis.call('ZCARD', used)}
end
if idle(r[3]) and not is_held(member) then
  drop(member)
  return {2, redis.call('ZCARD', used)}
end
redis.call('HSET', rec, 't', ARGV[1])
touch(rec, member, next_version(ARGV[6]))
if hold > 0 then redis.call('ZADD', held, micros() + hold, member) end
return {1, redis.call('ZCARD', used), r[1], r[2]}
""",
)

#: KEYS[6] record; ARGV[5] member. {} or {version, data}; an idle record is left
#: as it is.
PEEK = Script(
    "peek",
    """
local r = redis.call('HMGET', KEYS[6], 'v', 'd', 't')
if not r[1] or idle(r[3]) then return {} end
return {r[1], r[2]}
""",
    writes=False,
)

#: KEYS[6] record; ARGV[5] member, [6] expected version, [7] data, [8]
#: capacity, [9] "1" to refuse when full, [10] codec format, [11] "1" to let go
#: of the record's hold. {outcome, count, number, kind, member, kind, member...}:
#: outcome "saved" (number: the version; a "c" event last if it was created),
#: "conflict" (number: the version stored, 0 if none) or "full"; events "x"
#: expired and "e" evicted, in the order they happened.
SAVE = Script(
    "save",
    """
local member, expected, rec = ARGV[5], tonumber(ARGV[6]), KEYS[6]
local events = {}
local function event(kind, who)
  events[#events + 1] = kind
  events[#events + 1] = who
end
local function answer(outcome, number)
  if ARGV[11] == '1' then redis.call('ZREM', held, member) end
  local reply = {outcome, redis.call('ZCARD', used), number}
  for _, item in ipairs(events) do reply[#reply + 1] = item end
  return reply
end
local r = redis.call('HMGET', rec, 'v', 't')
local current = 0
if r[1] then
  if idle(r[2]) and not is_held(member) then
    drop(member)
    event('x', member)
  else
    current = tonumber(r[1])
  end
elseif redis.call('ZREM', used, member) == 1 then
  redis.call('ZREM', keys, member)
  event('x', member)
end
if expected ~= -1 and expected ~= current then
  return answer('conflict', current)
end
local created = current == 0
if created and redis.call('ZCARD', used) >= tonumber(ARGV[8]) then
  -- Room, decided here: the least recently used record not held by a request,
  -- if idle, gives its place up; otherwise refuse, or evict it.
  local oldest = nil
  for _, candidate in ipairs(redis.call('ZRANGE', used, 0, 63)) do
    if not is_held(candidate) then oldest = candidate break end
  end
  local t = oldest and redis.call('HGET', base .. 'r:' .. oldest, 't')
  if oldest and (not t or idle(t)) then
    drop(oldest)
    event('x', oldest)
  elseif ARGV[9] == '1' or not oldest then
    return answer('full', 0)
  else
    drop(oldest)
    event('e', oldest)
  end
end
local version = next_version(ARGV[10])
redis.call('HSET', rec, 'v', version, 'd', ARGV[7], 't', ARGV[1])
touch(rec, member, version)
if created then
  redis.call('ZADD', keys, 0, member)
  event('c', member)
end
return answer('saved', version)
""",
)

#: KEYS[6] record; ARGV[5] member. Lets go of the record's hold (a request that
#: saved nothing). {count}.
RELEASE = Script(
    "release",
    """
redis.call('ZREM', held, ARGV[5])
return {redis.call('ZCARD', used)}
""",
)

#: KEYS[6] record; ARGV[5] member, [6] expected version. {outcome, count,
#: stored version}: "deleted", "absent" or "conflict". An idle record counts as
#: absent and is left for the sweep, as in the memory store.
DELETE = Script(
    "delete",
    """
local member, expected = ARGV[5], tonumber(ARGV[6])
local r = redis.call('HMGET', KEYS[6], 'v', 't')
local current = 0
if r[1] and not idle(r[2]) then current = tonumber(r[1]) end
if expected ~= -1 and expected ~= current then
  return {'conflict', redis.call('ZCARD', used), current}
end
if current == 0 then return {'absent', redis.call('ZCARD', used), 0} end
drop(member)
return {'deleted', redis.call('ZCARD', used), current}
""",
)

#: ARGV[5] cursor (the last member of the page before, "" for the first), [6]
#: limit. {next cursor or "", member, version, data, last use, member, ...}.
RECORDS = Script(
    "records",
    """
local limit = tonumber(ARGV[6])
local start = ARGV[5] == '' and '-' or '(' .. ARGV[5]
local members = redis.call('ZRANGEBYLEX', keys, start, '+', 'LIMIT', 0, limit)
local reply = {#members == limit and members[#members] or ''}
for _, member in ipairs(members) do
  local r = redis.call('HMGET', base .. 'r:' .. member, 'v', 'd', 't')
  if r[1] and not idle(r[3]) then
    for _, item in ipairs({member, r[1], r[2], r[3]}) do reply[#reply + 1] = item end
  end
end
return reply
""",
    writes=False,
)

#: ARGV[5] batch. Drops idle records from the least recently used on, stopping
#: at the first live one; a record whose turn is held is passed by (and counts
#: towards the batch). {count, dropped member, ...}.
SWEEP = Script(
    "sweep",
    """
local reply = {0}
for _, member in ipairs(redis.call('ZRANGE', used, 0, tonumber(ARGV[5]) - 1)) do
  local t = redis.call('HGET', base .. 'r:' .. member, 't')
  if t and not idle(t) then break end
  if not is_held(member) then
    drop(member)
    reply[#reply + 1] = member
  end
end
reply[1] = redis.call('ZCARD', used)
return reply
""",
)

#: ARGV[5] codec format. {"ok", count, "1" if the records' TTLs were set for
#: another idle timeout (run RETIME), else "0"} (the slab is ours, or new and
#: now marked ours), {"foreign", key, its type}, {"kind", found} or {"codec",
#: found}.
CLAIM = Script(
    "claim",
    """
local wanted = {{meta, 'hash'}, {used, 'zset'}, {keys, 'zset'}, {held, 'zset'},
  {seq, 'string'}}
for _, pair in ipairs(wanted) do
  local found = redis.call('TYPE', pair[1])['ok']
  if found ~= 'none' and found ~= pair[2] then
    return {'foreign', pair[1], found}
  end
end
local kind = redis.call('HGET', meta, 'kind')
if not kind then
  if redis.call('EXISTS', used, keys, held, seq) > 0 then
    return {'foreign', base .. '*', 'keys without ' .. meta}
  end
  redis.call('HSET', meta, 'kind', '"""
    + KIND
    + """', 'codec', ARGV[5], 'ttl', ARGV[3])
elseif kind ~= '"""
    + KIND
    + """' then
  return {'kind', kind}
else
  local codec = redis.call('HGET', meta, 'codec')
  if codec ~= ARGV[5] then return {'codec', codec} end
end
local retime = redis.call('HGET', meta, 'ttl') ~= ARGV[3] and '1' or '0'
return {'ok', redis.call('ZCARD', used), retime}
""",
)

#: ARGV[5] cursor ("" for the first), [6] batch. Sets the TTL of each record of
#: the batch for this idle timeout (none if 0): after a restart with another
#: --idle-timeout, Redis neither drops records the capsule still keeps nor keeps
#: them longer than the capsule would. Once through, meta says so. {next cursor
#: or ""}.
RETIME = Script(
    "retime",
    """
local limit = tonumber(ARGV[6])
local start = ARGV[5] == '' and '-' or '(' .. ARGV[5]
local members = redis.call('ZRANGEBYLEX', keys, start, '+', 'LIMIT', 0, limit)
for _, member in ipairs(members) do
  local rec = base .. 'r:' .. member
  if ttl > 0 then redis.call('PEXPIRE', rec, ttl) else redis.call('PERSIST', rec) end
end
if #members < limit then
  redis.call('HSET', meta, 'ttl', ARGV[3])
  return {''}
end
return {members[#members]}
""",
)

#: What jetforce-sesh 0.2 wrote in a slab's meta hash, under ``prefix:slab:``.
OLD_KIND = "jetforce-sesh redis store 1"

#: KEYS[6..9] the 0.2 layout's meta, used, keys and seq; ARGV[5] its base
#: (``prefix:slab:``), [6] codec format. Moves a slab kept by jetforce-sesh 0.2
#: to this layout, whole: each record's hash renamed (its TTL with it), the
#: recency and listing sets and the version counter renamed, meta written anew
#: without a TTL setting (so the store opening gives every record its idle
#: timeout's), the old meta deleted. One script, so another process starting
#: at the same moment finds either everything moved or nothing. {"none"}
#: (nothing in the 0.2 layout), {"moved", records moved, count}, {"kind",
#: found}, {"codec", found} or {"both"} (keys in both layouts: nothing moved).
MIGRATE = Script(
    "migration from 0.2",
    """
local old_meta, old_used, old_keys, old_seq = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local old_base = ARGV[5]
if redis.call('EXISTS', old_meta) == 0 then return {'none'} end
local kind = redis.call('HGET', old_meta, 'kind')
if kind ~= '"""
    + OLD_KIND
    + """' then return {'kind', kind or 'no kind'} end
local codec = redis.call('HGET', old_meta, 'codec')
if codec ~= ARGV[6] then return {'codec', codec} end
if redis.call('EXISTS', meta, used, keys, held, seq) > 0 then return {'both'} end
local moved = 0
for _, member in ipairs(redis.call('ZRANGE', old_keys, 0, -1)) do
  local old = old_base .. 'r:' .. member
  if redis.call('EXISTS', old) == 1 then
    redis.call('RENAME', old, base .. 'r:' .. member)
    moved = moved + 1
  end
end
for _, pair in ipairs({{old_used, used}, {old_keys, keys}, {old_seq, seq}}) do
  if redis.call('EXISTS', pair[1]) == 1 then redis.call('RENAME', pair[1], pair[2]) end
end
redis.call('HSET', meta, 'kind', '"""
    + KIND
    + """', 'codec', codec)
redis.call('DEL', old_meta)
return {'moved', moved, redis.call('ZCARD', used)}
""",
)
