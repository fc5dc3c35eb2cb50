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
- ``BASE held``: sorted set, all scored 0, of ``{hex key}:{process}:{lapse}``:
  a record whose turn a request of that process held at its last sweep, until
  the hold lapses (Redis's clock, in microseconds). Each process says at every
  script which records its own requests hold now (``StoreSpec.held``), so what
  it wrote here counts only for the others. Sweeps and eviction pass held
  records by; loads, saves, peeks, deletes and listings find them alive.
- ``BASE seq``: the last version (or recency tick) given.
- ``BASE meta``: a hash saying which program and which codec wrote the slab,
  and the idle timeout its records' TTLs were set for.

Every script declares those keys as ``KEYS[1..6]`` (used, keys, held, seq, meta,
then the record's, if it has one) and takes ``ARGV[1..6]`` = now, idle timeout
(s), TTL (ms), the highest version the calling process has seen, the hex keys
its requests hold that the script may need to know of (a space between), and
the process's token. A script may
also touch the hash of another record of the slab (the one it evicts or
sweeps): the same hash slot, so still one slot per script.

Write scripts start with ``#!lua``: with flags declared, Redis refuses the whole
script when it is out of memory instead of failing in the middle of it.
"""

from __future__ import annotations

import hashlib

#: What the store writes in a slab's meta hash, to know its own keys again.
KIND = "jetforce-sesh redis store 2"
#: Most records one save drops to make room: after a restart with a smaller
#: max_records, the slab comes down to it within a save or a few.
EVICT_BUDGET = 1000

_PRELUDE = (
    """
local used, keys, held, seq, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, timeout, ttl, floor = tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4])
local mine_list, token = ARGV[5], ARGV[6]
local base = string.sub(used, 1, -5)
-- The holds other processes told of for member: "member:token:lapse".
local function holds(member)
  return redis.call('ZRANGEBYLEX', held, '[' .. member .. ':', '(' .. member .. ';')
end
local function unhold(member)
  redis.call('ZREMRANGEBYLEX', held, '[' .. member .. ':', '(' .. member .. ';')
end
local function drop(member)
  redis.call('DEL', base .. 'r:' .. member)
  redis.call('ZREM', used, member)
  redis.call('ZREM', keys, member)
  unhold(member)
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
-- The records requests of the calling process hold (ARGV[5]: hex keys, a
-- space between), read into a set the first time one is asked about.
local mine = nil
-- A record whose turn a request holds: in the calling process, as it says
-- now; in another, as it said at its last sweep, until that hold lapses (its
-- own past holds the caller does not count: what it says now replaces them).
local function is_held(member)
  if mine_list ~= '' then
    if mine == nil then
      mine = {}
      for m in string.gmatch(mine_list, '%x+') do mine[m] = true end
    end
    if mine[member] then return true end
  end
  local found = holds(member)
  if #found == 0 then return false end
  local clock = micros()
  for _, entry in ipairs(found) do
    local who, lapse = string.match(entry, '^%x+:(%w+):(%d+)$')
    if who ~= token and lapse and tonumber(lapse) > clock then return true end
  end
  return false
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


#: KEYS[6] record; ARGV[7] member, [8] codec format. {0, count}: absent; {2,
#: count}: it was idle (and held by no request) and is dropped now (or Redis's
#: TTL dropped it first); {1, count, version, data}: found, used now.
LOAD = Script(
    "load",
    """
local member, rec = ARGV[7], KEYS[6]
local r = redis.call('HMGET', rec, 'v', 'd', 't')
if not r[1] then
  if redis.call('ZREM', used, member) == 1 then
    redis.call('ZREM', keys, member)
    unhold(member)
    return {2, redis.call('ZCARD', used)}
  end
  return {0, redis.call('ZCARD', used)}
end
if idle(r[3]) and not is_held(member) then
  drop(member)
  return {2, redis.call('ZCARD', used)}
end
redis.call('HSET', rec, 't', ARGV[1])
touch(rec, member, next_version(ARGV[8]))
return {1, redis.call('ZCARD', used), r[1], r[2]}
""",
)

#: KEYS[6] record; ARGV[7] member. {} or {version, data}; an idle record (held
#: by no request) is left as it is.
PEEK = Script(
    "peek",
    """
local r = redis.call('HMGET', KEYS[6], 'v', 'd', 't')
if not r[1] or (idle(r[3]) and not is_held(ARGV[7])) then return {} end
return {r[1], r[2]}
""",
    writes=False,
)

#: KEYS[6] record; ARGV[7] member, [8] expected version, [9] data, [10]
#: capacity, [11] "1" to refuse when full, [12] codec format. {outcome, count,
#: number, kind, member, kind, member...}: outcome "saved" (number: the
#: version; a "c" event last if it was created), "conflict" (number: the version
#: stored, 0 if none), "full" (refused) or "busy" (every record a candidate for
#: eviction is held by a request); events "x" expired and "e" evicted, in the
#: order they happened. A new record in a slab holding ``capacity`` or more
#: (after a restart with a smaller max_records) makes room down to capacity - 1,
#: at most EVICT_BUDGET records a save.
SAVE = Script(
    "save",
    """
local member, expected, rec = ARGV[7], tonumber(ARGV[8]), KEYS[6]
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
local capacity, budget = tonumber(ARGV[10]), """
    + str(EVICT_BUDGET)
    + """
while created and budget > 0 and redis.call('ZCARD', used) >= capacity do
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
  elseif ARGV[11] == '1' then
    return answer('full', 0)
  elseif not oldest then
    return answer('busy', 0)
  else
    drop(oldest)
    event('e', oldest)
  end
  budget = budget - 1
end
local version = next_version(ARGV[12])
redis.call('HSET', rec, 'v', version, 'd', ARGV[9], 't', ARGV[1])
touch(rec, member, version)
if created then
  redis.call('ZADD', keys, 0, member)
  event('c', member)
end
return answer('saved', version)
""",
)

#: KEYS[6] record; ARGV[7] member, [8] expected version. {outcome, count,
#: stored version}: "deleted", "absent" or "conflict". An idle record (held by
#: no request) counts as absent and is left for the sweep, as in the memory
#: store.
DELETE = Script(
    "delete",
    """
local member, expected = ARGV[7], tonumber(ARGV[8])
local r = redis.call('HMGET', KEYS[6], 'v', 't')
local current = 0
if r[1] and (not idle(r[2]) or is_held(member)) then current = tonumber(r[1]) end
if expected ~= -1 and expected ~= current then
  return {'conflict', redis.call('ZCARD', used), current}
end
if current == 0 then return {'absent', redis.call('ZCARD', used), 0} end
drop(member)
return {'deleted', redis.call('ZCARD', used), current}
""",
)

#: ARGV[7] cursor (the last member of the page before, "" for the first), [8]
#: limit. {next cursor or "", member, version, data, last use, member, ...}.
RECORDS = Script(
    "records",
    """
local limit = tonumber(ARGV[8])
local start = ARGV[7] == '' and '-' or '(' .. ARGV[7]
local members = redis.call('ZRANGEBYLEX', keys, start, '+', 'LIMIT', 0, limit)
local reply = {#members == limit and members[#members] or ''}
for _, member in ipairs(members) do
  local r = redis.call('HMGET', base .. 'r:' .. member, 'v', 'd', 't')
  if r[1] and (not idle(r[3]) or is_held(member)) then
    for _, item in ipairs({member, r[1], r[2], r[3]}) do reply[#reply + 1] = item end
  end
end
return reply
""",
    writes=False,
)

#: ARGV[7] batch, [8] how long the holds of the calling process last
#: (microseconds). First tells the other processes which records the caller's
#: requests hold (ARGV[5]), until the next sweep should have told them again;
#: then drops idle records from the least recently used on, stopping at the
#: first live one; a record whose turn is held (here or elsewhere) is passed by
#: (and counts towards the batch). {count, dropped member, ...}.
SWEEP = Script(
    "sweep",
    """
local lapse = string.format('%d', micros() + tonumber(ARGV[8]))
for member in string.gmatch(mine_list, '%x+') do
  local own = member .. ':' .. token .. ':'
  redis.call('ZREMRANGEBYLEX', held, '[' .. own, '(' .. member .. ':' .. token .. ';')
  redis.call('ZADD', held, 0, own .. lapse)
end
local reply = {0}
for _, member in ipairs(redis.call('ZRANGE', used, 0, tonumber(ARGV[7]) - 1)) do
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

#: ARGV[7] codec format. {"ok", count, "1" if the records' TTLs were set for
#: another idle timeout (run RETIME), else "0"} (the slab is ours, or new and
#: now marked ours), {"foreign", key, its type}, {"kind", found}, {"codec",
#: found} or {"unfinished", old base} (a move from 0.2's layout began, and
#: 0.2's meta went before it ended: its records are still under the old base).
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
local from = redis.call('HGET', meta, 'from')
if from then return {'unfinished', from} end
if not kind then
  if redis.call('EXISTS', used, keys, held, seq) > 0 then
    return {'foreign', base .. '*', 'keys without ' .. meta}
  end
  redis.call('HSET', meta, 'kind', '"""
    + KIND
    + """', 'codec', ARGV[7], 'ttl', ARGV[3])
elseif kind ~= '"""
    + KIND
    + """' then
  return {'kind', kind}
else
  local codec = redis.call('HGET', meta, 'codec')
  if codec ~= ARGV[7] then return {'codec', codec} end
end
local retime = redis.call('HGET', meta, 'ttl') ~= ARGV[3] and '1' or '0'
return {'ok', redis.call('ZCARD', used), retime}
""",
)

#: ARGV[7] cursor ("" for the first), [8] batch. Sets the TTL of each record of
#: the batch for this idle timeout (none if 0): after a restart with another
#: --idle-timeout, Redis neither drops records the capsule still keeps nor keeps
#: them longer than the capsule would. Once through, meta says so. {next cursor
#: or ""}.
RETIME = Script(
    "retime",
    """
local limit = tonumber(ARGV[8])
local start = ARGV[7] == '' and '-' or '(' .. ARGV[7]
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

#: KEYS[6..9] the 0.2 layout's meta, used, keys and seq; ARGV[7] its base
#: (``prefix:slab:``), [8] codec format, [9] batch. Moves the next ``batch``
#: records of a slab kept by jetforce-sesh 0.2 to this layout: each record's
#: hash renamed (its TTL with it), its members moved from the old recency and
#: listing sets to the new ones with their scores. Every record is whole in one
#: layout or the other after each run, so a start that stops between two runs
#: (a crash, Redis away) loses nothing, and the next start (or another process
#: starting at the same moment) goes on from there: meta names the old base
#: under ``from`` until the move is done. The last run moves the version
#: counter, deletes the old meta and writes meta anew without a TTL setting (so
#: the store opening gives every record its idle timeout's). A run moves at
#: most ``batch`` records, so Redis serves everyone else between two runs,
#: whatever the slab's size. {"none"} (nothing in the 0.2 layout), {"more",
#: records moved}, {"moved", records moved in all, count}, {"kind", found},
#: {"codec", found} or {"both"} (keys in both layouts: nothing moved).
MIGRATE = Script(
    "migration from 0.2",
    """
local old_meta, old_used, old_keys, old_seq = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local old_base, codec, batch = ARGV[7], ARGV[8], tonumber(ARGV[9])
if redis.call('EXISTS', old_meta) == 0 then return {'none'} end
local kind = redis.call('HGET', old_meta, 'kind')
if kind ~= '"""
    + OLD_KIND
    + """' then return {'kind', kind or 'no kind'} end
local found = redis.call('HGET', old_meta, 'codec')
if found ~= codec then return {'codec', found} end
if redis.call('HGET', meta, 'from') ~= old_base then
  if redis.call('EXISTS', meta, used, keys, held, seq) > 0 then return {'both'} end
  redis.call('HSET', meta, 'kind', '"""
    + KIND
    + """', 'codec', codec, 'from', old_base,
    'moved', 0)
end
local done, moved = 0, 0
-- The listing set first, then what the recency set holds beyond it (0.2 kept
-- them equal; a member of one alone is moved all the same).
for _, source in ipairs({old_keys, old_used}) do
  -- (ZRANGE 0 -1 would be the whole set: asked only while room is left.)
  local members = done < batch and redis.call('ZRANGE', source, 0, batch - done - 1)
    or {}
  for _, member in ipairs(members) do
    local old = old_base .. 'r:' .. member
    if redis.call('EXISTS', old) == 1 then
      redis.call('RENAME', old, base .. 'r:' .. member)
      moved = moved + 1
    end
    local tick = redis.call('ZSCORE', old_used, member)
    if tick then
      redis.call('ZADD', used, tick, member)
      redis.call('ZREM', old_used, member)
    end
    if redis.call('ZREM', old_keys, member) == 1 then
      redis.call('ZADD', keys, 0, member)
    end
    done = done + 1
  end
end
redis.call('HINCRBY', meta, 'moved', moved)
if done == batch then return {'more', moved} end
local last = redis.call('GET', old_seq)
if last then
  local now_seq = redis.call('GET', seq)
  if not now_seq or tonumber(now_seq) < tonumber(last) then
    redis.call('SET', seq, last)
  end
  redis.call('DEL', old_seq)
end
local total = redis.call('HGET', meta, 'moved')
redis.call('HDEL', meta, 'from', 'moved')
redis.call('DEL', old_meta)
return {'moved', total, redis.call('ZCARD', used)}
""",
)
