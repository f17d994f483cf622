"""The training engine: one run, advanced step by step by its caller.

The app, the command line, the comparisons and the tests all drive training
through `TrainingRun`. It never loops on its own: `step()` does one optimiser
step, so a caller can pause (stop calling), resume (call again), step once,
reset to the same initialisation or restart with a new seed. Dropout is off
and the data order has its own generator, so a run is reproducible on CPU
whatever else the process does (several visitors, interleaved runs).
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch import nn

from qgoft_core import metrics as M
from qgoft_core.explore.history import RunHistory, Snapshot, layer_snapshot
from qgoft_core.explore import caches
from qgoft_core.explore.methods import MethodSettings, Tuned, build_tuned, new_classifier
from qgoft_core.explore.registry import METHOD_SPECS, METHODS
from qgoft_core.explore.models import BaseModel, load_base

# The default of RunConfig.max_steps: the most steps a run may ask for unless its caller sets
# its own cap (the app passes its QGOFT_MAX_STEPS setting, ui/settings.py). Read nowhere else.
STEP_CAP = 5000
MAX_BATCH = 512
PROBE_EXAMPLES = 64  # held-out texts whose embeddings measure similarity to the base


class TrainingConfigError(ValueError):
    """A setting that cannot work; the message says which and why."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run keeps its last good state."""


# Torch's CPU thread count holds for the thread that sets it (a thread started later begins from
# the last count set), so whether a caller chose it is kept per thread too: a run built in an app
# scheduler worker keeps that worker's count, a run built in any other thread (a live comparison,
# the command line) still takes QGOFT_THREADS / CPU_CORES, as it did before the scheduler.
_chosen = threading.local()


def configure_cpu_threads(wanted: Optional[int] = None, *, unless_chosen: bool = False) -> int:
    """Set the calling thread's torch CPU threads to `wanted`, at most 8, and return the number.

    `wanted` None: QGOFT_THREADS, else Spaces' CPU_CORES, else os.cpu_count() (what the command
    line and a TrainingRun on its own use; the app passes its own setting, ui/settings.py).
    A number given once makes the calling thread's count the caller's: from then on
    ``unless_chosen=True`` (what a new TrainingRun passes) leaves that thread as it is. So a run
    built inside the app's training workers keeps the threads the scheduler gave the worker,
    instead of taking every core.
    """
    if unless_chosen and getattr(_chosen, "threads", False):
        return torch.get_num_threads()
    if wanted is None:
        wanted = os.environ.get("QGOFT_THREADS") or os.environ.get("CPU_CORES") or os.cpu_count() or 1
    elif not unless_chosen:
        _chosen.threads = True
    n = max(1, min(int(float(wanted)), 8))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def eval_sample_indices(n: int, cap: Optional[int]) -> list[int]:
    """A fixed sample of at most `cap` of `n` held-out examples, spread evenly over the split.

    Depends only on the split's size: every run on the same data evaluates on the same examples
    (so their base-model embeddings are cached once), and a file sorted by label is still
    sampled across all its labels.
    """
    if not cap or cap >= n:
        return list(range(n))
    return [(i * n) // cap for i in range(cap)]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingConfigError("device 'cuda' was asked for but no CUDA GPU is available")
    return torch.device(name)


@dataclass
class RunConfig:
    model: Optional[str] = None  # None: the offline default MiniLM
    task: str = "sentiment"  # a built-in task; or pass a TextTask to TrainingRun
    method: str = "qgoft"
    scaling: Optional[str] = None
    reg_lambda: float = 0.01
    target_modules: Optional[list[str] | str] = None
    lr: Optional[float] = None  # None: the method's default (registry)
    steps: int = 60
    batch_size: int = 16
    seed: int = 0
    max_length: int = 64
    eval_every: int = 10
    eval_examples: Optional[int] = None  # cap on held-out examples per evaluation (the first ones)
    eval_sample: Optional[int] = None  # then at most this many, a fixed sample spread over the split
    warmup_steps: int = 5
    lora_r: int = 8
    oft_block_size: int = 32
    oft_cayley_neumann: bool = True
    boft_block_size: int = 4
    boft_factors: int = 2
    device: str = "auto"
    max_steps: int = STEP_CAP

    def resolved_lr(self) -> float:
        return float(self.lr) if self.lr is not None else METHOD_SPECS[self.method].default_lr

    def validate(self, model_max_length: Optional[int] = None) -> None:
        if self.method not in METHODS:
            raise TrainingConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        lr = self.resolved_lr()
        if not math.isfinite(lr) or lr <= 0:
            raise TrainingConfigError(f"learning rate must be a positive number, got {lr}")
        if lr > 1.0:
            raise TrainingConfigError(f"learning rate {lr} is absurdly large (> 1); try 1e-3 for GOFT")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= MAX_BATCH:
            raise TrainingConfigError(f"batch size must be between 1 and {MAX_BATCH}, got {self.batch_size}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise TrainingConfigError(f"steps must be at least 1, got {self.steps}")
        if self.steps > self.max_steps:
            raise TrainingConfigError(f"{self.steps} steps is above this server's cap of {self.max_steps}")
        if not isinstance(self.max_length, int) or self.max_length < 4:
            raise TrainingConfigError(f"max length must be at least 4 tokens, got {self.max_length}")
        if model_max_length is not None and self.max_length > model_max_length:
            raise TrainingConfigError(f"max length {self.max_length} is beyond the model's limit of "
                                      f"{model_max_length} tokens")
        if not math.isfinite(float(self.reg_lambda)) or self.reg_lambda < 0:
            raise TrainingConfigError(f"lambda must be >= 0, got {self.reg_lambda}")
        if not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise TrainingConfigError(f"eval_every must be at least 1, got {self.eval_every}")
        if self.scaling not in (None, "output", "input"):
            raise TrainingConfigError(f"unknown scaling {self.scaling!r}; choose none, 'output' or 'input'")

    def settings(self) -> MethodSettings:
        return MethodSettings(method=self.method, scaling=self.scaling, reg_lambda=float(self.reg_lambda),
                              target_modules=self.target_modules, lora_r=self.lora_r,
                              oft_block_size=self.oft_block_size, oft_cayley_neumann=self.oft_cayley_neumann,
                              boft_block_size=self.boft_block_size, boft_factors=self.boft_factors)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Encoded:
    """A tokenised split: token id lists (unpadded) and labels."""

    ids: list[list[int]]
    labels: torch.Tensor
    key: tuple = ()  # what was encoded (model, texts, labels, length): names this split in caches

    def cache_bytes(self) -> int:
        # A Python list of ints costs ~36 bytes an id (8 the pointer, 28 the int object, small ints shared).
        return 36 * sum(len(r) for r in self.ids) + self.labels.numel() * self.labels.element_size()

    def batch(self, index, pad_id: int, device) -> dict[str, torch.Tensor]:
        rows = [self.ids[i] for i in index]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, : len(r)] = torch.tensor(r)
            mask[k, : len(r)] = 1
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
                "labels": self.labels[list(index)].to(device)}


def encode(base: BaseModel, texts: tuple[str, ...], labels: tuple[int, ...], max_length: int) -> Encoded:
    """The tokenised split, shared by every run on the same model and data (caches.ENCODED_SPLITS)."""
    key = (base.model_id, hash(texts), hash(labels), len(texts), max_length)

    def tokenise() -> Encoded:
        tok = base.tokenizer(list(texts), truncation=True, max_length=max_length)
        return Encoded(tok["input_ids"], torch.tensor(labels, dtype=torch.long), key)

    return caches.ENCODED_SPLITS.get_or_create(key, tokenise)


# Pooled base-model embeddings of a held-out split: at step 0 every method's
# encoder is exactly the base (identity at initialisation), so the step-0
# evaluation and the similarity probe need only the head on these. Shared by
# all runs on the same base and data, which makes the first chart of a run
# appear without a full held-out forward. Kept in caches.BASE_EMBEDDINGS.


class TrainingRun:
    """One fine-tuning run that its caller advances step by step."""

    def __init__(self, config: RunConfig, task=None, base: Optional[BaseModel] = None):
        self.device = pick_device(config.device)
        if self.device.type == "cpu":
            configure_cpu_threads(unless_chosen=True)  # the app's workers keep the threads they were given
        self.base = base or load_base(config.model)
        config.validate(self.base.max_length)
        self.config = config
        if task is None:
            from qgoft_core.explore.data.tasks import load_builtin_task
            task = load_builtin_task(config.task)
        self.task = task
        self.train_data = encode(self.base, task.train_texts, task.train_labels, config.max_length)
        test_n = config.eval_examples or len(task.test_texts)
        test_texts, test_labels = task.test_texts[:test_n], task.test_labels[:test_n]
        self.held_out_total = len(test_texts)  # live evaluations use `test_data`, maybe a sample of them
        picked = eval_sample_indices(len(test_texts), config.eval_sample)
        if len(picked) < len(test_texts):
            test_texts = tuple(test_texts[i] for i in picked)
            test_labels = tuple(test_labels[i] for i in picked)
        self.test_data = encode(self.base, tuple(test_texts), tuple(test_labels), config.max_length)
        if len(self.train_data.ids) == 0 or len(self.test_data.ids) == 0:
            raise TrainingConfigError("the task needs at least one training and one held-out example")
        self.pad_id = self.base.tokenizer.pad_token_id or 0
        self._build(config.seed)

    # -- construction / reset ----------------------------------------------
    def _build(self, seed: int) -> None:
        self.seed = seed
        classifier = new_classifier(self.base.encoder, self.task.num_labels, self.base.pooling, seed)
        with torch.random.fork_rng(devices=[]):
            # PEFT draws LoRA's A matrices from the global generator: seed it, so that
            # the same seed gives the same run and new_seed gives a new initialisation.
            torch.manual_seed(seed)
            self.tuned: Tuned = build_tuned(classifier, self.config.settings())
        self.tuned.model.to(self.device)
        self.tuned.model.eval()  # dropout off: exact reproducibility (see module docstring)
        self.initial_state = self.tuned.trainable_state()
        self.energy_cache = M.BaseEnergyCache()
        self._probe_size = min(PROBE_EXAMPLES, len(self.test_data.ids))  # the first held-out chunk
        self.base_test_embeddings = self._base_test_embeddings()
        self.base_embeddings = self.base_test_embeddings[: self._probe_size]
        self._base_retention: Optional[float] = None
        self._restart()

    def _restart(self) -> None:
        self.step_count = 0
        self.optimizer = torch.optim.AdamW(self.tuned.parameters(), lr=self.config.resolved_lr(),
                                           weight_decay=0.0)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._order: list[int] = []
        self.history = RunHistory()
        self.stopped_reason: Optional[str] = None
        self.last_good_state = self.initial_state

    def reset(self) -> None:
        """Back to step 0 with exactly the same initialisation and data order."""
        self.tuned.load_trainable_state(self.initial_state)
        self._restart()

    def new_seed(self, seed: int) -> None:
        """A fresh initialisation (head, LoRA matrices) and data order."""
        self.config = replace(self.config, seed=seed)
        self._build(seed)

    # -- training ------------------------------------------------------------
    def current_lr(self) -> float:
        warm = self.config.warmup_steps
        scale = min(1.0, (self.step_count + 1) / warm) if warm > 0 else 1.0
        return self.config.resolved_lr() * scale

    def _next_batch(self) -> list[int]:
        n, size = len(self.train_data.ids), self.config.batch_size
        while len(self._order) < size:
            self._order.extend(torch.randperm(n, generator=self.generator).tolist())
        batch, self._order = self._order[:size], self._order[size:]
        return batch

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def step(self) -> dict:
        """One optimiser step; returns the step record."""
        if self.stopped_reason:
            raise TrainingDiverged(self.stopped_reason)
        start = time.perf_counter()
        batch = self.train_data.batch(self._next_batch(), self.pad_id, self.device)
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self._autocast():
            out = self.tuned.model(**batch)
            task_loss = out.loss.float()
            reg_loss = self.tuned.regularization_loss().float().to(task_loss.device)
            loss = task_loss + reg_loss
        if not torch.isfinite(loss):
            self._diverged(f"loss became {float(loss.detach())} at step {self.step_count + 1}")
        loss.backward()
        grads_ok = all(torch.isfinite(p.grad).all() for p in self.tuned.parameters() if p.grad is not None)
        if not grads_ok:
            self.optimizer.zero_grad(set_to_none=True)
            self._diverged(f"gradients became NaN/inf at step {self.step_count + 1}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_count += 1
        seconds = time.perf_counter() - start
        # What a later divergence rolls back to (e.g. a parameter overwritten with inf).
        self.last_good_state = self.tuned.trainable_state()
        record = {"step": self.step_count, "loss": float(task_loss.detach()),
                  "reg_loss": float(reg_loss.detach()),
                  "lr": lr, "sec_per_step": seconds, "examples_per_sec": len(batch["labels"]) / seconds}
        self.history.steps.append(record)
        return record

    def _diverged(self, why: str) -> None:
        self.stopped_reason = (f"training stopped: {why}. The adapter keeps its last good state "
                               f"(step {self.step_count}); lower the learning rate and reset.")
        self.optimizer.zero_grad(set_to_none=True)
        # No update was applied; only if a parameter itself is NaN/inf (set from outside, say)
        # go back to the state after the last good step.
        if not all(torch.isfinite(p).all() for p in self.tuned.parameters()):
            self.tuned.load_trainable_state(self.last_good_state)
        raise TrainingDiverged(self.stopped_reason)

    def run(self, steps: Optional[int] = None) -> Iterator[tuple[str, dict]]:
        """Advance `steps` (default: up to config.steps) yielding ("step"|"eval"|"snapshot", record)."""
        target = self.step_count + steps if steps is not None else self.config.steps
        if self.step_count == 0 and not self.history.evals:
            yield "eval", self.evaluate()
            yield "snapshot", self.snapshot()
        while self.step_count < target:
            yield "step", self.step()
            if self.step_count % self.config.eval_every == 0 or self.step_count == target:
                yield "eval", self.evaluate()
                yield "snapshot", self.snapshot()

    # -- measuring -----------------------------------------------------------
    def _embed(self, batch: dict) -> torch.Tensor:
        with torch.no_grad(), self._autocast():
            return self.tuned.classifier().embed(batch["input_ids"], batch["attention_mask"]).float().cpu()

    def _test_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """The held-out split in chunks of PROBE_EXAMPLES: the first chunk is the similarity probe."""
        n = len(self.test_data.ids)
        for lo in range(0, n, PROBE_EXAMPLES):
            yield self.test_data.batch(range(lo, min(n, lo + PROBE_EXAMPLES)), self.pad_id, self.device)

    def _base_test_embeddings(self) -> torch.Tensor:
        """Pooled embeddings of the held-out split by the untrained encoder (= the base), cached."""
        # Keyed by what was encoded, not by object ids (an id is reused once its object is freed).
        key = (self.base.model_id, id(self.base.encoder), self.test_data.key, self.base.pooling, str(self.device))
        return caches.BASE_EMBEDDINGS.get_or_create(
            key, lambda: torch.cat([self._embed(batch) for batch in self._test_batches()]))

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Held-out accuracy and loss, plus similarity of representations to the base."""
        classifier = self.tuned.classifier()
        if self.step_count == 0:
            # Untrained: the encoder is the base model exactly, so only the head runs.
            probe = self.base_embeddings
            logits = classifier.head(self.base_test_embeddings.to(self.device, classifier.head.weight.dtype))
        else:
            probe, chunks = None, []
            for batch in self._test_batches():
                with self._autocast():
                    pooled, chunk_logits = classifier.classify(batch["input_ids"], batch["attention_mask"])
                if probe is None:
                    probe = pooled[: self._probe_size].float().cpu()
                chunks.append(chunk_logits)
            logits = torch.cat(chunks)
        logits, labels = logits.float(), self.test_data.labels.to(self.device)
        record = {"step": self.step_count, "accuracy": int((logits.argmax(-1) == labels).sum()) / len(labels),
                  "loss": float(nn.functional.cross_entropy(logits, labels)),
                  "cka": M.linear_cka(self.base_embeddings, probe)}
        self.history.evals.append(record)
        return record

    @torch.no_grad()
    def layer_metrics(self) -> dict[str, M.LayerMetrics]:
        if self.tuned.spec.givens:
            return M.adapter_metrics(self.tuned.qgoft, self.energy_cache)
        result = {}
        for name, base_layer in self.tuned.base_layers.items():
            w = M.torch_weight(base_layer)
            result[name] = M.weight_metrics(name, w, self.tuned.tuned_weight(name), self.config.method,
                                            self.tuned.input_operator(name),
                                            self.energy_cache.get_weight(name, w))
        return result

    def snapshot(self) -> Snapshot:
        """Per-layer adapter metrics now (see `history.LayerSnapshot`: float32 arrays to stay small)."""
        layers = {name: layer_snapshot(m.angles, m.norm_ratio, m.orth_dev, m.he_drift, m.block, m.scales)
                  for name, m in self.layer_metrics().items()}
        snap: Snapshot = {"step": self.step_count, "layers": layers}
        self.history.snapshots.append(snap)
        return snap

    def retention(self) -> dict:
        """Spearman correlation of cosine similarity vs graded pairs, base and tuned."""
        from qgoft_core.explore.data.tasks import load_retention_pairs
        pairs = load_retention_pairs()
        tuned = self._pair_spearman(pairs)
        if self._base_retention is None:
            if self.tuned.spec.givens:
                with self.tuned.qgoft.disable_adapter():
                    self._base_retention = self._pair_spearman(pairs)
            else:
                self._base_retention = self._base_pair_spearman(pairs)
        record = {"step": self.step_count, "base": self._base_retention, "tuned": tuned,
                  "kept": tuned / self._base_retention if self._base_retention else float("nan")}
        self.history.retention.append(record)
        return record

    def _sentence_embeddings(self, texts, embed_fn) -> torch.Tensor:
        enc = self.base.tokenizer(list(texts), truncation=True, max_length=self.config.max_length)
        data = Encoded(enc["input_ids"], torch.zeros(len(texts), dtype=torch.long))
        out = []
        for lo in range(0, len(texts), 64):
            batch = data.batch(range(lo, min(len(texts), lo + 64)), self.pad_id, self.device)
            with torch.no_grad(), self._autocast():
                out.append(embed_fn(batch["input_ids"], batch["attention_mask"]).float().cpu())
        return torch.cat(out)

    def _pair_spearman(self, pairs, embed_fn=None) -> float:
        embed_fn = embed_fn or self.tuned.classifier().embed
        a = self._sentence_embeddings(pairs.a, embed_fn)
        b = self._sentence_embeddings(pairs.b, embed_fn)
        cos = torch.nn.functional.cosine_similarity(a, b).numpy()
        return M.spearman(cos, np.asarray(pairs.scores))

    def _base_pair_spearman(self, pairs) -> float:
        from qgoft_core.explore.models import SentenceClassifier
        frozen = SentenceClassifier(self.base.encoder, self.task.num_labels, self.base.pooling).to(self.device)
        return self._pair_spearman(pairs, frozen.embed)

    # -- reporting -------------------------------------------------------------
    def trainable_parameters(self) -> tuple[int, int]:
        return self.tuned.trainable_count()

    def device_label(self) -> str:
        if self.device.type == "cuda":
            return f"CUDA ({torch.cuda.get_device_name(self.device)})"
        return f"CPU ({torch.get_num_threads()} threads)"
