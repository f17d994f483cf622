"""Shared helpers of the load benchmarks (visitors.py, soak.py): the app served as a Space
would serve it, its memory, and gradio_client visitors that press Train.

Everything here talks to 127.0.0.1 only, and every wait is bounded in time.

- ``AppServer``: ``python app.py`` in a subprocess with a Space's environment (SYSTEM=spaces,
  SPACE_ID, a free port on 127.0.0.1, offline hub), every QGOFT_* and GRADIO_* variable of the
  caller's environment dropped (the app's defaults), its log in a file.
- ``RssSampler``: a thread that adds up VmRSS of the server and all its descendants every 0.5 s.
- ``train_args`` / ``stream_train``: the Train endpoint's page defaults from ``view_api()`` with
  some overridden, and one streamed Train press timed at the client.
"""
from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
SPACE_ID = "bench/qgoft"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TRAIN_API = "/train"
TRAIN_PARAMS = ("model", "task", "method", "scaling", "layers", "lam", "lr", "batch_size", "steps", "seed")
PLACE = re.compile(r"you are number (\d+)")  # the app's place-in-line message
FULL_MARKERS = ("server is full", "queue is full")  # the app's ServerBusy text; Gradio's own queue limit

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the client side too


def command_line() -> str:
    """The exact command that ran this script (as typed from the repository root)."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *sys.argv[1:]])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def space_env(port: int, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment of `python app.py` on a Space, bound to loopback: the app's default settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGOFT_", "GRADIO_", "SPACE"))}
    env.update({
        "SYSTEM": "spaces", "SPACE_ID": SPACE_ID,
        "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


# -- memory of a process tree -------------------------------------------------------------------
def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc/<pid>/task/<tid>/children), bounded in size."""
    found, todo = [], [pid]
    while todo and len(found) < 4096:
        p = todo.pop()
        if p in found:
            continue
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                try:
                    with open(f"/proc/{p}/task/{task}/children") as fh:
                        todo.extend(int(c) for c in fh.read().split())
                except OSError:
                    pass
        except OSError:
            pass
    return found


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of the process and its descendants together, in MB (MiB)."""
    return sum(_status_kib(p, "VmRSS") for p in tree_pids(pid)) / 1024.0


def hwm_mb(pid: int) -> float:
    """The kernel's own peak RSS of one process (VmHWM), in MB."""
    return _status_kib(pid, "VmHWM") / 1024.0


def smaps_rollup_mb(pid: int) -> dict[str, float]:
    """Where one process's memory is: /proc/<pid>/smaps_rollup (Rss, Anonymous, Shared/Private...) in MB."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = round(int(parts[1]) / 1024.0, 1)
    except (OSError, ValueError):
        pass
    return out


class RssSampler:
    """Samples the tree RSS of `pid` every `interval` s in a daemon thread; `peak_mb` and per-phase peaks."""

    MAX_SAMPLES = 20000  # ~3 hours at 0.5 s; later samples only update the peaks

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self.peak_mb = 0.0
        self._phase: Optional[str] = None
        self.phase_peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._t0 = time.perf_counter()

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def phase(self, name: Optional[str]) -> None:
        """Peaks from now on are also recorded under `name` (None: no phase)."""
        self.sample()
        self._phase = name
        if name is not None:
            self.phase_peaks.setdefault(name, 0.0)
        self.sample()

    def sample(self) -> float:
        mb = tree_rss_mb(self.pid)
        if mb <= 0:
            return mb
        self.peak_mb = max(self.peak_mb, mb)
        if self._phase is not None:
            self.phase_peaks[self._phase] = max(self.phase_peaks.get(self._phase, 0.0), mb)
        if len(self.samples) < self.MAX_SAMPLES:
            self.samples.append((round(time.perf_counter() - self._t0, 2), round(mb, 1)))
        return mb

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


# -- the server ---------------------------------------------------------------------------------
class AppStartError(RuntimeError):
    pass


class AppServer:
    """`python app.py` as a Space runs it, on a free 127.0.0.1 port; stopped (tree and all) on exit."""

    def __init__(self, extra_env: Optional[dict[str, str]] = None, timeout: float = 300.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = space_env(self.port, extra_env)
        self.timeout = timeout
        self.process: Optional[subprocess.Popen] = None
        self.log_path = Path(tempfile.mkstemp(prefix="qgoft-bench-app-", suffix=".log")[1])
        # Gradio's upload/cache folder of this server alone: its size is measured, and it is removed at the end.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="qgoft-bench-gradio-"))
        self.env.setdefault("GRADIO_TEMP_DIR", str(self.temp_dir))
        self.ready_seconds: Optional[float] = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def shown_env(self) -> dict[str, str]:
        keys = ("SYSTEM", "SPACE_ID", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "HF_HUB_OFFLINE",
                "TRANSFORMERS_OFFLINE", "GRADIO_ANALYTICS_ENABLED", "GRADIO_TEMP_DIR")
        extra = [k for k in self.env if k.startswith(("QGOFT_", "GRADIO_HEARTBEAT", "CPU_CORES"))]
        return {k: self.env[k] for k in (*keys, *extra) if k in self.env}

    def start(self) -> float:
        """Start the app and wait for the first HTTP 200 of "/" (seconds taken)."""
        log = open(self.log_path, "wb")
        start = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        while time.perf_counter() - start < self.timeout:
            if self.process.poll() is not None:
                raise AppStartError(f"`python app.py` exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        self.ready_seconds = time.perf_counter() - start
                        return self.ready_seconds
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise AppStartError(f"the app did not answer on {self.url} within {self.timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        children = [p for p in tree_pids(self.process.pid) if p != self.process.pid]
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for child in children:  # only the app's own descendants, by id
            try:
                os.kill(child, 9)
            except OSError:
                pass

    def __enter__(self) -> "AppServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def temp_dir_mb(self) -> float:
        """Disk used by Gradio's upload/cache folder of this server (uploaded files stay there)."""
        total = 0
        for path in self.temp_dir.rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except OSError:
                pass
        return total / (1024.0 * 1024.0)

    def __exit__(self, *exc) -> None:
        self.stop()
        try:
            self.log_path.unlink()
        except OSError:
            pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


# -- visitors -----------------------------------------------------------------------------------
def connect(url: str, timeout: float = 60.0):
    """A gradio_client Client (its own session), retrying while the server is slow to answer."""
    from gradio_client import Client

    deadline, last = time.perf_counter() + timeout, None
    while time.perf_counter() < deadline:
        try:
            return Client(url, verbose=False, analytics_enabled=False)
        except Exception as exc:  # noqa: BLE001 - a busy server may drop a request: retry within the bound
            last = exc
            time.sleep(1.0)
    raise RuntimeError(f"could not connect to {url} within {timeout:.0f} s: {last!r}")


def train_defaults(client) -> dict[str, Any]:
    """The Train endpoint's parameters and the page's default values (from view_api)."""
    info = client.view_api(print_info=False, return_format="dict")
    endpoint = info["named_endpoints"][TRAIN_API]
    out: dict[str, Any] = {}
    for k, param in enumerate(endpoint["parameters"]):
        name = TRAIN_PARAMS[k] if k < len(TRAIN_PARAMS) else param.get("parameter_name", f"p{k}")
        out[name] = param.get("parameter_default") if param.get("parameter_has_default") else None
    return out


def method_lr(method: str) -> Optional[float]:
    """The learning rate the page switches to when the method changes (the method's usual one)."""
    try:
        sys.path.insert(0, str(ROOT))
        from qgoft_core.explore.registry import METHOD_SPECS
        return float(METHOD_SPECS[method].default_lr)
    except Exception:  # noqa: BLE001 - unknown method: the app reports it
        return None


def train_args(defaults: dict[str, Any], **overrides: Any) -> list[Any]:
    values = dict(defaults)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("method") and overrides["method"] != defaults.get("method"):
        lr = method_lr(overrides["method"])
        if lr is not None and "lr" not in overrides:
            values["lr"] = lr
    return [values[k] for k in TRAIN_PARAMS[:len(values)]]


def run_info(outputs: Any) -> Optional[dict]:
    """The run-info JSON of a streamed update (None for a keep-alive tick or an unchanged one)."""
    if isinstance(outputs, (list, tuple)):
        for value in outputs:
            if isinstance(value, dict) and "state" in value and "step" in value:
                return value
    return None


def is_refusal(text: str) -> bool:
    text = (text or "").lower()
    return any(marker in text for marker in FULL_MARKERS)


POLL_SECONDS = 0.1  # how often a visitor's thread looks for new updates (the measuring resolution)


def poll_outputs(job, every: float = POLL_SECONDS) -> Iterator[Any]:
    """The job's updates, as iterating the job gives them, looked for every `every` seconds.

    Iterating a gradio_client Job waits in a loop of 1 ms sleeps; thirty visitor threads doing
    that spent a third of the benchmark's CPU (py-spy), on the same cores as the server it measures.
    """
    seen = 0
    while True:
        finished = job.done()
        outputs = job.outputs()
        while seen < len(outputs):
            seen += 1
            yield outputs[seen - 1]
        if finished:
            return
        time.sleep(every)


def stream_train(client, args: list[Any], deadline: float, started: Optional[float] = None,
                 on_job: Optional[Callable[[Any], None]] = None) -> dict[str, Any]:
    """Press Train once and follow the stream until it ends (or `deadline`, perf_counter time).

    Times are seconds from `started` (default: now), measured at the client.
    """
    t0 = time.perf_counter() if started is None else started
    rec: dict[str, Any] = {"admitted": False, "refused": False, "waited": False, "max_place": 0,
                           "t_first_update": None, "t_let_in": None, "t_first_step": None, "t_done": None,
                           "steps": 0, "target": None, "final_state": None, "message": "", "updates": 0,
                           "sec_per_step": None, "error": None, "timed_out": False}
    job = client.submit(*args, api_name=TRAIN_API)
    if on_job is not None:
        on_job(job)
    try:
        for outputs in poll_outputs(job):
            now = time.perf_counter() - t0
            if time.perf_counter() > deadline:
                rec["timed_out"] = True
                job.cancel()
                break
            info = run_info(outputs)
            if info is None:
                continue
            rec["updates"] += 1
            if rec["t_first_update"] is None:
                rec["t_first_update"] = round(now, 3)
            state, message = info.get("state"), str(info.get("message") or "")
            rec["final_state"], rec["message"] = state, message[:300]
            if state == "waiting":
                rec["waited"] = True
                place = PLACE.search(message)
                if place:
                    rec["max_place"] = max(rec["max_place"], int(place.group(1)))
            if state in ("preparing", "training", "done", "paused", "stopped"):
                rec["admitted"] = True
                if rec["t_let_in"] is None:  # holds a training slot (after any wait in line)
                    rec["t_let_in"] = round(now, 3)
            if state == "error" and is_refusal(message):
                rec["refused"] = True
            step = int(info.get("step") or 0)
            if step >= 1 and rec["t_first_step"] is None and state in ("training", "done", "paused", "stopped"):
                rec["t_first_step"] = round(now, 3)
            rec["steps"] = max(rec["steps"], step) if rec["admitted"] else rec["steps"]
            rec["target"] = info.get("target")
            rec["sec_per_step"] = info.get("sec_per_step")
        rec["t_done"] = round(time.perf_counter() - t0, 3)
        if not rec["timed_out"] and rec["final_state"] not in ("done",) and not rec["refused"]:
            status = job.status()
            if not status.success and rec["error"] is None:
                rec["error"] = f"stream ended in state {rec['final_state']!r}: {rec['message'] or status.code}"
    except Exception as exc:  # noqa: BLE001 - a failed visitor is a result, not a crash of the benchmark
        rec["t_done"] = round(time.perf_counter() - t0, 3)
        text = f"{type(exc).__name__}: {exc}"
        if is_refusal(text):
            rec["refused"] = True
        rec["error"] = text[:500]
    return rec


def percentile(values: list[float], q: float) -> Optional[float]:
    """Linear-interpolated percentile (q in 0..100) of the finite values; None when there are none."""
    xs = sorted(v for v in values if v is not None and math.isfinite(v))
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 3)


def close_quietly(client) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001
        pass
