"""Conversation state in Redis at two round trips per update (aiogram's ``RedisStorage`` costs 6-8).

aiogram's ``RedisStorage`` with ``RedisEventIsolation`` talks to Redis once per call: the lock
(``SET NX PX``), ``get_state`` (the FSM middleware), every ``get_data``, ``update_data`` (a GET
and a SET), ``set_state``, ``set_data``, and the lock's release (a Lua script). A desk step that
reads its draft, updates it and moves on costs 6-8 round trips, each a few hundred microseconds
of client CPU in redis-py plus the network wait.

Here the isolation lock does the work of the whole update:

* **acquire** is one Lua script: take the lock (``SET NX PX``) and return the state and the data
  (``MGET``), which are cached for the update (in a context variable: the update's task). Given the
  deployment's de-duplicator (``claims``), the same script claims the update being fed (bot/dedup.py):
  a repeat raises :class:`~bot.dedup.DuplicateUpdate` without taking the lock, so a first delivery
  costs no round trip of its own for that;
* during the update ``get_state``/``get_data``/``set_state``/``set_data`` of that key touch only
  the cache (any other key, e.g. a notification to someone else, goes to Redis as usual);
* **release** is one Lua script: write what changed (``SET ... EX`` or ``DEL``) and release the
  lock (compare-and-delete), in a ``finally``: what a handler wrote before failing is kept, as
  with the stock storage.

Keys, values and TTLs are those of ``RedisStorage`` with the same key builder (JSON data, the
state as a plain string), so the two can be swapped on a live Redis (a rolling upgrade keeps every
conversation). A second update of the same chat waits for the lock (polling every 2-50 ms instead
of redis-py's 100 ms). The lock expires after ``lock_timeout_ms`` (60 s, as aiogram's) should a
worker die holding it. ``api/runtime.build_storage`` builds it; the benchmark compares it with the
stock storage (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import secrets
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseEventIsolation,
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)

from bot.dedup import DuplicateUpdate, RedisDeduplicator, current_delivery

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('MGET', KEYS[2], KEYS[3])
end
return 0
"""

# KEYS: lock, state, data, the update's claim; ARGV: token, lock ms, claim ttl (s). -1: claimed before.
_ACQUIRE_CLAIMING = """
if redis.call('EXISTS', KEYS[4]) == 1 then
  return -1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[3])
  return redis.call('MGET', KEYS[2], KEYS[3])
end
return 0
"""

# ARGV: token, state op (0 keep, 1 set, 2 delete), state, data op, data, state ttl, data ttl (seconds, 0: none)
_RELEASE = """
local function put(key, op, value, ttl)
  if op == '1' then
    if ttl ~= '0' then redis.call('SET', key, value, 'EX', ttl) else redis.call('SET', key, value) end
  elseif op == '2' then
    redis.call('DEL', key)
  end
end
put(KEYS[2], ARGV[2], ARGV[3], ARGV[6])
put(KEYS[3], ARGV[4], ARGV[5], ARGV[7])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

_KEEP, _SET, _DELETE = "0", "1", "2"


class _Entry:
    __slots__ = ("data", "data_op", "data_raw", "state", "state_op")

    def __init__(self, state: str | None, data_raw: str | None) -> None:
        self.state = state
        self.data_raw = data_raw
        self.data: dict[str, Any] | None = None  # parsed on first use
        self.state_op = _KEEP
        self.data_op = _KEEP


_ENTRIES: contextvars.ContextVar[dict[str, _Entry] | None] = contextvars.ContextVar("onetrip_entries", default=None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class OneTripRedisStorage(BaseStorage):
    def __init__(
        self,
        redis: Any,
        key_builder: KeyBuilder | None = None,
        state_ttl: int | None = None,
        data_ttl: int | None = None,
        lock_timeout_ms: int = 60_000,
        claims: RedisDeduplicator | None = None,
    ) -> None:
        self.redis = redis
        self.claims = claims
        self.key_builder = key_builder or DefaultKeyBuilder()
        self.state_ttl = state_ttl
        self.data_ttl = data_ttl
        self.lock_timeout_ms = lock_timeout_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._acquire_claiming = redis.register_script(_ACQUIRE_CLAIMING)
        self._release = redis.register_script(_RELEASE)

    def create_isolation(self) -> OneTripIsolation:
        return OneTripIsolation(self)

    async def close(self) -> None:
        await self.redis.aclose()

    # -- the cache of the update being handled ------------------------------------------------

    def _entry(self, key: StorageKey) -> _Entry | None:
        entries = _ENTRIES.get()
        if entries is None:
            return None
        return entries.get(self.key_builder.build(key, "lock"))

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        entry = self._entry(key)
        if entry is not None:
            entry.state = cast(str | None, value)
            entry.state_op = _DELETE if value is None else _SET
            return
        redis_key = self.key_builder.build(key, "state")
        if value is None:
            await self.redis.delete(redis_key)
        else:
            await self.redis.set(redis_key, cast(str, value), ex=self.state_ttl)

    async def get_state(self, key: StorageKey) -> str | None:
        entry = self._entry(key)
        if entry is not None:
            return entry.state
        return _text(await self.redis.get(self.key_builder.build(key, "state")))

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            raise TypeError(f"Data must be a dict or dict-like object, got {type(data).__name__}")
        entry = self._entry(key)
        if entry is not None:
            entry.data = dict(data)
            entry.data_op = _SET if data else _DELETE
            return
        redis_key = self.key_builder.build(key, "data")
        if not data:
            await self.redis.delete(redis_key)
        else:
            await self.redis.set(redis_key, json.dumps(data), ex=self.data_ttl)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        entry = self._entry(key)
        if entry is not None:
            if entry.data is None:
                entry.data = json.loads(entry.data_raw) if entry.data_raw else {}
            return dict(entry.data)  # a copy, like a fresh read
        raw = _text(await self.redis.get(self.key_builder.build(key, "data")))
        return cast(dict[str, Any], json.loads(raw)) if raw else {}

    # -- the two round trips -----------------------------------------------------------------

    async def _lock_and_load(self, key: StorageKey) -> tuple[str, str, _Entry]:
        lock = self.key_builder.build(key, "lock")
        keys = [lock, self.key_builder.build(key, "state"), self.key_builder.build(key, "data")]
        token = secrets.token_hex(8)
        args: list[Any] = [token, self.lock_timeout_ms]
        acquire = self._acquire
        claiming = current_delivery() if self.claims is not None else None
        if claiming is not None and not claiming.claimed:
            assert self.claims is not None
            keys.append(self.claims.key(claiming.bot_id, claiming.update_id))
            args.append(self.claims.ttl)
            acquire = self._acquire_claiming
        else:
            claiming = None
        delay = 0.002
        while True:
            got = await acquire(keys=keys, args=args)
            if got == -1:  # only the claiming script answers so
                assert claiming is not None
                raise DuplicateUpdate(claiming.update_id)
            if got != 0:
                if claiming is not None:
                    claiming.claimed = True
                state, data = got
                return lock, token, _Entry(_text(state), _text(data))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _flush_and_unlock(self, key: StorageKey, token: str, entry: _Entry) -> None:
        data = ""
        if entry.data_op == _SET:
            data = json.dumps(entry.data)
        args = [
            token,
            entry.state_op,
            entry.state or "",
            entry.data_op,
            data,
            int(self.state_ttl or 0),
            int(self.data_ttl or 0),
        ]
        keys = [
            self.key_builder.build(key, "lock"),
            self.key_builder.build(key, "state"),
            self.key_builder.build(key, "data"),
        ]
        await self._release(keys=keys, args=args)


class OneTripIsolation(BaseEventIsolation):
    """Pairs with :class:`OneTripRedisStorage`: the lock that loads and saves the update's FSM record."""

    def __init__(self, storage: OneTripRedisStorage) -> None:
        self.storage = storage

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        storage = self.storage
        lock_key, token, entry = await storage._lock_and_load(key)
        entries = _ENTRIES.get()
        reset = None
        if entries is None:
            entries = {}
            reset = _ENTRIES.set(entries)
        entries[lock_key] = entry
        try:
            yield None
        finally:
            del entries[lock_key]
            if reset is not None:
                _ENTRIES.reset(reset)
            await storage._flush_and_unlock(key, token, entry)

    async def close(self) -> None:
        return None
