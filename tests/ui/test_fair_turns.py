"""The step scheduler on its own (no model, no server): fair turns, threads within the cores,
cancellation, pause and resume, a failing turn. No timing thresholds: only orders and counts."""
import threading
import time

import pytest

from ui.scheduler import RotationFull, StepScheduler, Turn


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    raise AssertionError("timed out")


def counting_work(name, quanta, log, lock, gate=None, pause=0.0):
    """A turn of `quanta` quanta that logs (name, k) as each starts."""
    for k in range(quanta):
        if gate is not None:
            gate.wait()
        with lock:
            log.append((name, k))
        if pause:
            time.sleep(pause)
        yield


def make(cores=1, threads_per_run=None, **kw):
    calls = []
    scheduler = StepScheduler(cores, threads_per_run, set_threads=calls.append, **kw)
    return scheduler, calls


def test_every_run_gets_a_step_before_any_gets_a_second():
    scheduler, _ = make(cores=1)
    log, lock, gate = [], threading.Lock(), threading.Event()
    turns = [scheduler.submit(Turn(counting_work(n, 4, log, lock, gate), key=n)) for n in "abcde"]
    gate.set()  # all five are in the rotation before the first quantum runs
    for t in turns:
        assert t.ended.wait(20) and t.error is None and t.quanta == 4
    assert len(log) == 20
    for i in range(0, 20, 5):  # strict rounds with one worker
        assert sorted(name for name, _ in log[i:i + 5]) == list("abcde")
        assert {k for _, k in log[i:i + 5]} == {i // 5}
    scheduler.shutdown()


def test_with_several_workers_no_run_gets_ahead_by_more_than_one_round():
    scheduler, _ = make(cores=3, threads_per_run=1)
    assert scheduler.workers == 3
    log, lock, gate = [], threading.Lock(), threading.Event()
    turns = [scheduler.submit(Turn(counting_work(n, 5, log, lock, gate, pause=0.002), key=n)) for n in "abcdefg"]
    gate.set()
    for t in turns:
        assert t.ended.wait(30)
    counts = {n: 0 for n in "abcdefg"}
    for name, k in log:
        assert k == counts[name]
        counts[name] += 1
        assert max(counts.values()) - min(counts.values()) <= 2  # one round apart at most (+1 in flight)
    scheduler.shutdown()


def test_threads_never_exceed_the_cores():
    for cores, per_run in ((2, None), (2, 1), (2, 2), (4, None), (4, 3), (1, 4)):
        scheduler, calls = make(cores=cores, threads_per_run=per_run)
        assert scheduler.workers * (scheduler.fixed_threads or 1) <= cores
        seen = []

        def work(k, scheduler=scheduler, seen=seen):
            for _ in range(k):
                seen.append(scheduler.threads_in_use())
                time.sleep(0.001)
                yield

        lone = scheduler.submit(Turn(work(3)))
        assert lone.ended.wait(20)
        if per_run is None:
            assert calls[0] == cores  # a run alone gets every core
        turns = [scheduler.submit(Turn(work(6))) for _ in range(5)]
        for t in turns:
            assert t.ended.wait(20)
        assert max(seen) <= cores and scheduler.peak_threads() <= cores
        assert all(1 <= c <= cores for c in calls)
        scheduler.shutdown()


def test_cancelling_a_waiting_turn_frees_its_place_at_once():
    scheduler, _ = make(cores=1)
    release, log, lock = threading.Event(), [], threading.Lock()
    ended = []
    blocker = scheduler.submit(Turn(counting_work("x", 3, log, lock, release), key="x"))
    wait_for(lambda: scheduler.position(blocker) == 0)
    closed = []

    def waiting():
        try:
            while True:
                yield
        finally:
            closed.append(threading.current_thread().name)

    victim = scheduler.submit(Turn(waiting(), key="v", on_end=ended.append))
    assert scheduler.active() == 2 and scheduler.position(victim) == 1
    scheduler.cancel(victim)
    assert victim.done and ended == [victim]  # told at once (a never-started generator has no cleanup to run)
    assert scheduler.active() == 1
    release.set()
    assert blocker.ended.wait(20) and blocker.quanta == 3
    scheduler.cancel(victim)  # twice: nothing happens
    assert ended == [victim]
    scheduler.shutdown()


def test_cancelling_a_running_turn_ends_it_after_its_quantum():
    scheduler, _ = make(cores=1)
    inside, release = threading.Event(), threading.Event()

    def work():
        while True:
            inside.set()
            release.wait()
            yield

    turn = scheduler.submit(Turn(work()))
    assert inside.wait(20)
    scheduler.cancel(turn)
    assert not turn.done  # the quantum in progress finishes first
    release.set()
    assert turn.ended.wait(20) and turn.quanta == 1 and scheduler.active() == 0
    scheduler.shutdown()


def test_pause_and_resume():
    scheduler, _ = make(cores=1)
    log, lock = [], threading.Lock()
    gate = threading.Event()
    a = scheduler.submit(Turn(counting_work("a", 6, log, lock, gate), key="a"))
    b = scheduler.submit(Turn(counting_work("b", 3, log, lock, gate), key="b"))
    assert scheduler.pause(a)
    gate.set()
    assert b.ended.wait(20)
    time.sleep(0.05)
    assert not a.done and all(name == "b" for name, _ in log)
    assert scheduler.active() == 0 and scheduler.stats()["paused"] == 1
    assert scheduler.resume(a)
    assert a.ended.wait(20) and [k for name, k in log if name == "a"] == list(range(6))
    scheduler.shutdown()


def test_a_failing_turn_ends_alone_and_the_others_go_on():
    scheduler, _ = make(cores=2, threads_per_run=1)
    log, lock = [], threading.Lock()
    ended = []

    def faulty():
        yield
        raise MemoryError("out of memory in this visitor's step")

    bad = scheduler.submit(Turn(faulty(), key="bad", on_end=ended.append))
    good = [scheduler.submit(Turn(counting_work(n, 5, log, lock), key=n, on_end=ended.append)) for n in "xyz"]
    for t in [bad, *good]:
        assert t.ended.wait(20)
    assert isinstance(bad.error, MemoryError) and bad.quanta == 2
    assert all(t.error is None and t.quanta == 5 for t in good)
    assert len(ended) == 4 and scheduler.active() == 0 and scheduler.threads_in_use() == 0
    scheduler.shutdown()


def test_admission_is_bounded_and_estimates_use_the_measured_quantum():
    scheduler, _ = make(cores=1, max_turns=2)
    gate = threading.Event()
    log, lock = [], threading.Lock()
    a = scheduler.submit(Turn(counting_work("a", 3, log, lock, gate)))
    b = scheduler.submit(Turn(counting_work("b", 3, log, lock, gate)))
    with pytest.raises(RotationFull, match="full"):
        scheduler.submit(Turn(counting_work("c", 1, log, lock)))
    assert scheduler.wait_estimate(b) is None  # nothing measured yet: no made-up number
    gate.set()
    assert a.ended.wait(20) and b.ended.wait(20)
    assert scheduler.quantum_seconds() is not None and scheduler.quantum_seconds() >= 0
    scheduler.shutdown()
