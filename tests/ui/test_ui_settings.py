"""The app's settings (read from the environment once), the one-way imports of the app layer, and
the caches the run registry owns. No server, no model."""
import ast
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from ui.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_documented_values_whatever_the_environment(monkeypatch):
    monkeypatch.setenv("QGOFT_MAX_STEPS", "7")
    s = Settings()
    assert (s.max_steps, s.max_seconds, s.max_concurrent_runs, s.queue_size) == (2000, 600, 2, 16)
    assert (s.allowed_models, s.max_upload_mb, s.idle_minutes, s.preload) == (None, 20, 30, True)
    assert (s.cpu_threads, s.gpu_chunk_steps, s.gpu_chunk_seconds, s.zero_gpu) == (None, 20, 60, False)
    assert (s.max_active_runs, s.threads_per_run, s.eval_sample) == (64, None, 256)
    assert (s.allow_local_models, s.server_name, s.finished_idle_minutes) == (False, None, 10)
    assert (s.model_cache_mb, s.data_cache_mb, s.embedding_cache_mb, s.malloc_arenas) == (2048, 64, 32, 2)
    with pytest.raises(FrozenInstanceError):
        s.max_steps = 3


def test_from_env_reads_every_variable():
    env = {"QGOFT_MAX_STEPS": "500", "QGOFT_MAX_SECONDS": "60", "QGOFT_MAX_CONCURRENT_RUNS": "3",
           "QGOFT_QUEUE_SIZE": "4", "QGOFT_ALLOWED_MODELS": " a/b, c ,,", "QGOFT_MAX_UPLOAD_MB": "5",
           "QGOFT_IDLE_MINUTES": "2", "QGOFT_PRELOAD": "0", "QGOFT_THREADS": "3", "CPU_CORES": "9",
           "QGOFT_GPU_CHUNK_STEPS": "10", "QGOFT_GPU_CHUNK_SECONDS": "30", "SPACES_ZERO_GPU": "1",
           "QGOFT_MAX_ACTIVE_RUNS": "30", "QGOFT_THREADS_PER_RUN": "2", "QGOFT_ALLOW_LOCAL_MODELS": "1",
           "GRADIO_SERVER_NAME": "0.0.0.0", "QGOFT_EVAL_SAMPLE": "128", "QGOFT_FINISHED_IDLE_MINUTES": "3",
           "QGOFT_MODEL_CACHE_MB": "900", "QGOFT_DATA_CACHE_MB": "16", "QGOFT_EMBEDDING_CACHE_MB": "8",
           "QGOFT_MALLOC_ARENAS": "0"}
    assert Settings.from_env(env) == Settings(
        max_steps=500, max_seconds=60, max_concurrent_runs=3, queue_size=4, allowed_models=("a/b", "c"),
        max_upload_mb=5, idle_minutes=2, preload=False, cpu_threads=3, gpu_chunk_steps=10,
        gpu_chunk_seconds=30, zero_gpu=True, max_active_runs=30, threads_per_run=2, allow_local_models=True,
        server_name="0.0.0.0", eval_sample=128, finished_idle_minutes=3, model_cache_mb=900, data_cache_mb=16,
        embedding_cache_mb=8, malloc_arenas=0)
    assert Settings.from_env({}) == Settings()


def test_bad_numbers_keep_their_defaults_and_cpu_cores_backs_up_threads():
    s = Settings.from_env({"QGOFT_MAX_STEPS": "lots", "QGOFT_THREADS": "", "CPU_CORES": "2.0"})
    assert s.max_steps == 2000 and s.cpu_threads == 2 and s.cores() == 2
    assert Settings.from_env({"QGOFT_THREADS": "many"}).cpu_threads is None
    assert Settings().cores() >= 1


def test_configure_cpu_threads_takes_the_apps_number(monkeypatch):
    import torch

    from qgoft_core.explore.training import configure_cpu_threads
    before = torch.get_num_threads()
    monkeypatch.setenv("QGOFT_THREADS", "1")
    try:
        assert configure_cpu_threads(64) == 8  # at most 8, whatever the environment says
        assert configure_cpu_threads() == 1  # no number given: the environment's
    finally:
        torch.set_num_threads(before)


def test_local_models_follow_the_host_unless_the_operator_opts_in():
    for name, local in ((None, True), ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
                        ("0.0.0.0", False), ("::", False), ("10.0.0.5", False)):
        s = Settings.from_env({"GRADIO_SERVER_NAME": name} if name else {})
        assert s.bound_to_localhost() == local and s.local_models_allowed() == local, name
        assert Settings.from_env({"GRADIO_SERVER_NAME": name or "", "QGOFT_ALLOW_LOCAL_MODELS": "1"}
                                 ).local_models_allowed()


def test_cache_budgets_come_from_the_settings():
    from qgoft_core.explore import caches
    from ui.memory import apply_cache_budgets
    before = [c.max_bytes for c in caches.ALL_CACHES]
    try:
        apply_cache_budgets(replace(Settings(), model_cache_mb=100, data_cache_mb=7, embedding_cache_mb=3))
        assert [c.max_bytes for c in caches.ALL_CACHES] == [100 * caches.MIB, 7 * caches.MIB, 3 * caches.MIB]
    finally:
        for cache, budget in zip(caches.ALL_CACHES, before):
            cache.set_budget(budget)


def test_malloc_helpers_are_safe_anywhere():
    from ui import memory
    assert memory.cap_malloc_arenas(0) is False  # 0: leave glibc's default
    assert memory.trim_malloc() in (True, False)


def _ui_imports(path: Path) -> set[str]:
    """The ui.* modules a file imports, at any depth (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ui":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ui")
    return found


def test_app_layer_imports_go_one_way():
    assert not _ui_imports(ROOT / "ui" / "settings.py")
    assert not _ui_imports(ROOT / "ui" / "scheduler.py") and not _ui_imports(ROOT / "ui" / "memory.py")
    assert _ui_imports(ROOT / "ui" / "runs.py") <= {"ui.settings", "ui.settings.Settings", "ui.memory", "ui",
                                                    "ui.scheduler", "ui.scheduler.RotationFull",
                                                    "ui.scheduler.StepScheduler", "ui.scheduler.Turn"}
    for path in (ROOT / "ui" / "train").glob("*.py"):
        assert not {m for m in _ui_imports(path) if m.startswith(("ui.context", "ui.train_tab"))}, path
    for path in [*ROOT.glob("qgoft_core/**/*.py")]:
        assert not _ui_imports(path), f"{path} imports the app layer"


def test_only_the_settings_read_the_environment():
    """Only ui/settings.py reads the environment; app.py only sets a default."""
    readers = set()
    for path in [ROOT / "app.py", *(ROOT / "ui").rglob("*.py")]:
        text = path.read_text()
        if "os.environ.get" in text or "os.getenv" in text or "os.environ[" in text:
            readers.add(path.relative_to(ROOT).as_posix())
    assert readers <= {"ui/settings.py"}, readers


def test_the_engine_step_cap_is_a_constant_not_the_environment():
    code = ("import os; os.environ['QGOFT_MAX_STEPS'] = '7'; "
            "from qgoft_core.explore.training import STEP_CAP, RunConfig; "
            "print(STEP_CAP, RunConfig().max_steps, RunConfig(max_steps=3).max_steps)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["5000", "5000", "3"], out.stderr[-2000:]


def test_the_registry_owns_the_app_caches():
    from ui.context import AppContext
    from ui.runs import RunRegistry

    ctx = AppContext(settings=replace(Settings(), max_steps=50))
    assert isinstance(ctx.runs, RunRegistry) and ctx.runs.settings.max_steps == 50
    first, second = object(), object()
    assert ctx.runs.base_energy_cache("m", first) is first
    assert ctx.runs.base_energy_cache("m", second) is first  # every later run on "m" shares it
    assert AppContext(settings=Settings()).runs.base_energy_cache("m", second) is second  # one per app
    assert ctx.runs.claim_compare("s:compare") and not ctx.runs.claim_compare("s:compare")
    ctx.runs.end_compare("s:compare")
    assert ctx.runs.claim_compare("s:compare")


def test_a_chosen_thread_count_binds_only_the_thread_that_chose_it(monkeypatch):
    """A scheduler worker's count is kept by runs built in it; another thread's run still
    takes the environment's (a live comparison is not pinned to a worker's share)."""
    import threading

    import torch

    from qgoft_core.explore.training import configure_cpu_threads

    monkeypatch.setenv("QGOFT_THREADS", "2")
    seen = {}

    def worker():
        configure_cpu_threads(1)
        seen["worker"] = configure_cpu_threads(unless_chosen=True)

    def other():
        seen["other"] = configure_cpu_threads(unless_chosen=True)

    before = torch.get_num_threads()
    try:
        for target in (worker, other):
            thread = threading.Thread(target=target)
            thread.start()
            thread.join()
    finally:
        torch.set_num_threads(before)
    assert seen == {"worker": 1, "other": 2}
