"""The Lua scripts of the Redis store: each store operation is one script.

A script runs whole or not at all as far as other clients can see, so the
compare of a version and the write that follows it, or the check for room and
the eviction that makes it, are one step for every process on the Redis: no
lost update and no check-then-act race, without WATCH retries or locks.

Keys of a slab, under ``BASE`` = ``{prefix}:{slab}:``:

- ``BASE r:{hex key}``: a hash per record: ``v`` version, ``d`` the codec's bytes
  as they are, ``t`` last use (epoch seconds, the capsule's clock). Its TTL is
  the idle timeout, refreshed on use.
- ``BASE used``: sorted set of hex keys by their last tick: recency, for
  eviction and the sweep.
- ``BASE keys``: sorted set of hex keys, all scored 0: lexicographic order, for
  listing by cursor (a record keeps its place however often it is used).
- ``BASE seq``: the counter that gives versions and ticks; it is never reset, so
  no version is given twice, and if Redis loses it, it starts again from the
  time, above where it was.
- ``BASE meta``: a hash saying which program and which codec wrote the slab.

Every script takes ``ARGV[1..4]`` = base, now, idle timeout (s), TTL (ms), and
names its keys from the base. That suits one Redis (or a replicated pair), not
Redis Cluster, whose scripts must declare every key up front.

Write scripts start with ``#!lua``: with flags declared, Redis refuses the whole
script when it is out of memory instead of failing in the middle of it.
"""

from __future__ import annotations

import hashlib

_PRELUDE = """
local base, now, timeout, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local used, keys = base .. 'used', base .. 'keys'
local function drop(member)
  redis.call('DEL', base .. 'r:' .. member)
  redis.call('ZREM', used, member)
  redis.call('ZREM', keys, member)
end
-- Idle is now - t >= timeout everywhere, as in the memory store.
local function idle(t)
  return timeout > 0 and now - tonumber(t) >= timeout
end
local function touch(rec, member, tick)
  redis.call('ZADD', used, tick, member)
  if ttl > 0 then redis.call('PEXPIRE', rec, ttl) end
end
-- The next version (or recency tick), as a string of digits. A counter that is
-- missing (a new slab, or a Redis that lost its data) starts from the time in
-- units of 100 us: versions given after a loss stay above those given before it
-- (unless the slab averaged over 10,000 a second), so a save that read a record
-- before the loss cannot overwrite one made after it.
local function next_version()
  local version = redis.call('INCR', base .. 'seq')
  if version == 1 then
    version = math.floor(now * 10000)
    redis.call('SET', base .. 'seq', string.format('%d', version))
  end
  return string.format('%d', version)
end
"""


class Script:
    """A script's source and its SHA-1, by which Redis runs it (EVALSHA)."""

    def __init__(self, name: str, body: str, writes: bool = True) -> None:
        self.name = name
        shebang = "#!lua" if writes else "#!lua flags=no-writes"
        self.source = f"{shebang}\n{_PRELUDE}\n{body}".encode()
        self.sha = hashlib.sha1(self.source).hexdigest()


#: ARGV[5] member. {0, count}: absent; {2, count}: it was idle and is dropped now
#: (or Redis's TTL dropped it first); {1, count, version, data}: found, used now.
LOAD = Script(
    "load",
    """
local member = ARGV[5]
local rec = base .. 'r:' .. member
local r = redis.call('HMGET', rec, 'v', 'd', 't')
if not r[1] then
  if redis.call('ZREM', used, member) == 1 then
    redis.call('ZREM', keys, member)
    return {2, redis.call('ZCARD', used)}
  end
  return {0, redis.call('ZCARD', used)}
end
if idle(r[3]) then
  drop(member)
  return {2, redis.call('ZCARD', used)}
end
redis.call('HSET', rec, 't', ARGV[2])
touch(rec, member, next_version())
return {1, redis.call('ZCARD', used), r[1], r[2]}
""",
)

#: ARGV[5] member. {} or {version, data}; an idle record is left as it is.
PEEK = Script(
    "peek",
    """
local r = redis.call('HMGET', base .. 'r:' .. ARGV[5], 'v', 'd', 't')
if not r[1] or idle(r[3]) then return {} end
return {r[1], r[2]}
""",
    writes=False,
)

#: ARGV[5] member, [6] expected version, [7] data, [8] capacity, [9] "1" to
#: refuse when full. {outcome, count, number, kind, member, kind, member...}:
#: outcome "saved" (number: the version; a "c" event last if it was created),
#: "conflict" (number: the version stored, 0 if none) or "full"; events "x"
#: expired and "e" evicted, in the order they happened.
SAVE = Script(
    "save",
    """
local member, expected = ARGV[5], tonumber(ARGV[6])
local rec = base .. 'r:' .. member
local events = {}
local function event(kind, who)
  events[#events + 1] = kind
  events[#events + 1] = who
end
local function answer(outcome, number)
  local reply = {outcome, redis.call('ZCARD', used), number}
  for _, item in ipairs(events) do reply[#reply + 1] = item end
  return reply
end
local r = redis.call('HMGET', rec, 'v', 't')
local current = 0
if r[1] then
  if idle(r[2]) then
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
  -- Room, decided here: the least recently used record, if idle, gives its
  -- place up; otherwise refuse, or evict it.
  local oldest = redis.call('ZRANGE', used, 0, 0)[1]
  local t = redis.call('HGET', base .. 'r:' .. oldest, 't')
  if not t or idle(t) then
    drop(oldest)
    event('x', oldest)
  elseif ARGV[9] == '1' then
    return answer('full', 0)
  else
    drop(oldest)
    event('e', oldest)
  end
end
local version = next_version()
redis.call('HSET', rec, 'v', version, 'd', ARGV[7], 't', ARGV[2])
touch(rec, member, version)
if created then
  redis.call('ZADD', keys, 0, member)
  event('c', member)
end
return answer('saved', version)
""",
)

#: ARGV[5] member, [6] expected version. {outcome, count, stored version}:
#: "deleted", "absent" or "conflict". An idle record counts as absent and is left
#: for the sweep, as in the memory store.
DELETE = Script(
    "delete",
    """
local member, expected = ARGV[5], tonumber(ARGV[6])
local r = redis.call('HMGET', base .. 'r:' .. member, 'v', 't')
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
#: at the first live one. {count, dropped member, ...}.
SWEEP = Script(
    "sweep",
    """
local reply = {0}
for _, member in ipairs(redis.call('ZRANGE', used, 0, tonumber(ARGV[5]) - 1)) do
  local t = redis.call('HGET', base .. 'r:' .. member, 't')
  if t and not idle(t) then break end
  drop(member)
  reply[#reply + 1] = member
end
reply[1] = redis.call('ZCARD', used)
return reply
""",
)

#: ARGV[5] the store's kind tag, [6] codec format. {"ok", count} (the slab is
#: ours, or new and now marked ours), {"foreign", key, its type}, {"kind",
#: found} or {"codec", found}.
CLAIM = Script(
    "claim",
    """
local meta = base .. 'meta'
local wanted = {{meta, 'hash'}, {used, 'zset'}, {keys, 'zset'},
  {base .. 'seq', 'string'}}
for _, pair in ipairs(wanted) do
  local found = redis.call('TYPE', pair[1])['ok']
  if found ~= 'none' and found ~= pair[2] then
    return {'foreign', pair[1], found}
  end
end
local kind = redis.call('HGET', meta, 'kind')
if not kind then
  if redis.call('EXISTS', used, keys, base .. 'seq') > 0 then
    return {'foreign', base .. '*', 'keys without ' .. meta}
  end
  redis.call('HSET', meta, 'kind', ARGV[5], 'codec', ARGV[6])
elseif kind ~= ARGV[5] then
  return {'kind', kind}
else
  local codec = redis.call('HGET', meta, 'codec')
  if codec ~= ARGV[6] then return {'codec', codec} end
end
return {'ok', redis.call('ZCARD', used)}
""",
)
