"""The Redis store (``--store redis://``): records in one Redis or Valkey that
every process of a capsule shares, each operation one Lua script.

Needs the ``[redis]`` extra only once a store connects: importing this is free.
"""

from jetforce_sesh.stores.redis.store import RedisStore, RedisStores

__all__ = ["RedisStore", "RedisStores"]
