"""The engine's caches: bounded in bytes, least recently used first out, pinned entries kept."""
from __future__ import annotations

import threading

import torch

from qgoft_core.explore.caches import ByteBudgetCache, tensor_bytes


def _tensor(kib: int) -> torch.Tensor:
    return torch.zeros(kib * 256, dtype=torch.float32)  # 4 bytes each


def test_stays_under_its_budget_evicting_the_least_recently_used():
    cache = ByteBudgetCache("t", max_bytes=3 * 1024)
    for key in "abc":
        cache.put(key, _tensor(1))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", _tensor(1))
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.nbytes <= cache.max_bytes


def test_pinned_entries_survive_and_oversized_entries_are_not_kept():
    cache = ByteBudgetCache("t", max_bytes=2 * 1024)
    cache.pin("shared")
    cache.put("shared", _tensor(1))
    for key in range(5):
        cache.put(key, _tensor(1))
    assert "shared" in cache
    cache.put("huge", _tensor(8))
    assert "huge" not in cache


def test_shrinking_the_budget_evicts_at_once():
    cache = ByteBudgetCache("t", max_bytes=10 * 1024)
    for key in range(8):
        cache.put(key, _tensor(1))
    cache.set_budget(2 * 1024)
    assert len(cache) == 2 and cache.nbytes <= 2 * 1024


def test_get_or_create_makes_each_key_once_across_threads():
    cache = ByteBudgetCache("t", max_bytes=1 << 20)
    made = []

    def make():
        made.append(1)
        return _tensor(1)

    threads = [threading.Thread(target=cache.get_or_create, args=("k", make)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1


def test_sizes_of_nested_values():
    assert tensor_bytes(_tensor(2)) == 2048
    assert tensor_bytes({"a": _tensor(1), "b": [_tensor(1)]}) >= 2048
    assert tensor_bytes(torch.nn.Linear(4, 4)) == (16 + 4) * 4


def test_encoded_splits_and_base_models_report_their_size():
    from qgoft_core.explore.training import Encoded

    enc = Encoded([[1, 2, 3], [4]], torch.tensor([0, 1]), ("m", 1))
    assert enc.cache_bytes() == 36 * 4 + 16
