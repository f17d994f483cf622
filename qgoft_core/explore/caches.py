"""The engine's caches: each one owned here, named, and bounded in bytes.

Runs on the same base model and data share work (tokenised splits, the base
model's embeddings of a held-out split, the loaded base models). A server that
keeps every visitor's entries forever grows without end, so each cache keeps its
least recently used entries up to a byte budget; `pin` keeps an entry that every
visitor shares (the default task on the default model) out of eviction. The app
sets the budgets from its settings (`set_budget`); the defaults suit one user.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, TypeVar

V = TypeVar("V")
MIB = 1024 * 1024


def tensor_bytes(value: Any) -> int:
    """Bytes held by a tensor, or by the tensors inside a list/tuple/dict/object (recursively, once)."""
    import torch

    seen: set[int] = set()

    def size(obj: Any) -> int:
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size()
        if isinstance(obj, torch.nn.Module):
            return sum(size(t) for t in list(obj.parameters()) + list(obj.buffers()))
        if isinstance(obj, dict):
            return sum(size(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            # token id lists: ~8 bytes an int in a compact estimate (Python ints are larger; see `approx`)
            if obj and isinstance(obj[0], int):
                return 28 * len(obj)
            return sum(size(v) for v in obj) + 8 * len(obj)
        if hasattr(obj, "cache_bytes"):
            return int(obj.cache_bytes())
        if hasattr(obj, "__dict__"):
            return sum(size(v) for v in vars(obj).values())
        return 0

    return size(value)


class ByteBudgetCache(Generic[V]):
    """Thread-safe LRU cache whose entries together stay under `max_bytes` (pinned ones excepted)."""

    def __init__(self, name: str, max_bytes: int, size_of: Callable[[Any], int] = tensor_bytes):
        self.name = name
        self.max_bytes = int(max_bytes)
        self._size_of = size_of
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._pinned: set[Hashable] = set()
        self._lock = threading.RLock()
        self._building: dict[Hashable, threading.Lock] = {}

    def get_or_create(self, key: Hashable, make: Callable[[], V]) -> V:
        """The entry for `key`, made once (other callers of the same key wait for it)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key][0]
            value = make()  # outside the cache lock: other keys are served meanwhile
            self.put(key, value)
            with self._lock:
                self._building.pop(key, None)
            return value

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key: Hashable, value: V) -> None:
        size = self._size_of(value)
        with self._lock:
            self._entries.pop(key, None)
            if size > self.max_bytes and key not in self._pinned:
                return  # larger than the whole budget: used once, not kept
            self._entries[key] = (value, size)
            self._evict()

    def pin(self, key: Hashable) -> None:
        """Keep `key` whatever the budget (an entry every visitor shares)."""
        with self._lock:
            self._pinned.add(key)

    def pin_where(self, predicate: Callable[[Hashable], bool]) -> int:
        """Pin every entry present whose key matches; returns how many."""
        with self._lock:
            keys = [k for k in self._entries if predicate(k)]
            self._pinned.update(keys)
            return len(keys)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._pinned.discard(key)

    def discard_where(self, predicate: Callable[[Hashable], bool]) -> int:
        """Drop every unpinned entry whose key matches; returns how many."""
        with self._lock:
            doomed = [k for k in self._entries if k not in self._pinned and predicate(k)]
            for k in doomed:
                del self._entries[k]
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def set_budget(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = int(max_bytes)
            self._evict()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"name": self.name, "entries": len(self._entries), "bytes": self.nbytes,
                    "max_bytes": self.max_bytes, "pinned": len(self._pinned & set(self._entries))}

    def _evict(self) -> None:
        total = sum(size for _, size in self._entries.values())
        for key in list(self._entries):
            if total <= self.max_bytes:
                break
            if key in self._pinned:
                continue
            total -= self._entries.pop(key)[1]


# The engine's caches. The app sets their budgets from QGOFT_MODEL_CACHE_MB, QGOFT_DATA_CACHE_MB and
# QGOFT_EMBEDDING_CACHE_MB (ui/settings.py, ui/memory.py) and drops a visitor's own entries when the
# visitor leaves; these defaults suit the command line.
BASE_MODELS: ByteBudgetCache = ByteBudgetCache("base models", 2048 * MIB)
ENCODED_SPLITS: ByteBudgetCache = ByteBudgetCache("tokenised splits", 256 * MIB)
BASE_EMBEDDINGS: ByteBudgetCache = ByteBudgetCache("base embeddings of held-out splits", 128 * MIB)
ALL_CACHES: tuple[ByteBudgetCache, ...] = (BASE_MODELS, ENCODED_SPLITS, BASE_EMBEDDINGS)


def cache_stats() -> list[dict[str, Any]]:
    return [c.stats() for c in ALL_CACHES]
