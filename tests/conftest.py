"""Shared test setup: offline, CPU, importable from a fresh checkout."""

import os
import sys
from pathlib import Path

# No test may reach a model hub: everything is built from configs or shipped.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
import torch  # noqa: E402

VOCAB = 64


def _tiny_config(arch: str):
    import transformers as tf

    if arch == "bert":
        return tf.BertConfig(vocab_size=VOCAB, hidden_size=20, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=36, max_position_embeddings=32, type_vocab_size=2,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=VOCAB, n_embd=20, n_layer=2, n_head=2, n_positions=32,
                             n_inner=36, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                             bos_token_id=0, eos_token_id=0)
    if arch == "llama":
        return tf.LlamaConfig(vocab_size=VOCAB, hidden_size=24, intermediate_size=44, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    raise ValueError(arch)


_TINY_CACHE: dict = {}


def build_tiny(arch: str, seed: int = 0, classifier: bool = False, num_labels: int = 3):
    """A tiny random model from a config, in eval mode, with fixed weights for a seed.

    Dropout is off, so every forward is deterministic; non-power-of-two widths
    (20, 24, 36, 44) exercise the carry rule of the tree layout. Each call returns
    a fresh deep copy (building from a config is the slow part).
    """
    import copy

    key = (arch, seed, classifier, num_labels)
    if key not in _TINY_CACHE:
        _TINY_CACHE[key] = _build_tiny(arch, seed, classifier, num_labels)
    return copy.deepcopy(_TINY_CACHE[key])


def _build_tiny(arch: str, seed: int, classifier: bool, num_labels: int):
    import transformers as tf

    cfg = _tiny_config(arch)
    torch.manual_seed(seed)
    if classifier:
        cfg.num_labels = num_labels
        model = tf.AutoModelForSequenceClassification.from_config(cfg)
    else:
        model = tf.AutoModel.from_config(cfg)
    return model.eval()


def tiny_inputs(arch: str, batch: int = 2, length: int = 7, seed: int = 123) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def model_output(model, inputs) -> torch.Tensor:
    out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@torch.no_grad()
def randomize_adapters(qmodel, seed: int = 1, spread: float = 0.5) -> None:
    """Random, non-zero adapter parameters (and a perturbed head, if any)."""
    g = torch.Generator().manual_seed(seed)
    for layer in qmodel.adapter_layers().values():
        for name, p in layer.named_parameters(recurse=False):
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.device, p.dtype)
            if name == "qgoft_theta":
                p.copy_(spread * noise)
            elif name == "qgoft_blocks":
                p.add_(0.3 * noise)
            else:  # scales
                p.copy_(1.0 + 0.2 * noise)
    for wrapper in qmodel.saved_modules().values():
        for p in wrapper.trained_module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype))


@pytest.fixture
def tiny():
    """Builders for tiny random models: tiny.build(arch, seed, classifier), tiny.inputs(arch)."""
    class Tiny:
        build = staticmethod(build_tiny)
        inputs = staticmethod(tiny_inputs)
        output = staticmethod(model_output)
        randomize = staticmethod(randomize_adapters)
    return Tiny


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tiny-tensor tests on one intra-op thread.

    The core tests push thousands of tiny ops (8 x 8 bmm, 20-wide layers); on a
    2-core machine with anything else running, OpenMP hand-offs make those up to
    10x slower than one thread. Restored after the module.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------
# A tiny BaseModel for engine / CLI / inspection tests (appended for those tests)
# --------------------------------------------------------------------------
TINY_BASE_ID = "tests/tiny-bert-minilm-vocab"


def build_tiny_base(hidden: int = 32, layers: int = 2, seed: int = 0):
    """A qgoft_core.explore.models.BaseModel: a tiny random BERT with the offline MiniLM tokenizer.

    The vocabulary matches the tokenizer, so the built-in text tasks run through
    it exactly as through the real model; hidden 32 / intermediate 64 divide
    PEFT OFT's and BOFT's block sizes. Frozen and in eval mode like load_base().
    """
    import transformers as tf
    from qgoft_core.explore.models import BaseModel, default_model_path

    tokenizer = tf.AutoTokenizer.from_pretrained(str(default_model_path()))
    cfg = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    encoder = tf.BertModel(cfg).eval()
    encoder.config._name_or_path = TINY_BASE_ID  # what adapters record as their base
    for p in encoder.parameters():
        p.requires_grad_(False)
    return BaseModel(TINY_BASE_ID, encoder, tokenizer, "mean")


@pytest.fixture(scope="session")
def tiny_base():
    """One tiny BaseModel shared by the session (frozen, like the real shared base)."""
    return build_tiny_base()


@pytest.fixture(scope="session")
def tiny_base_builder():
    """build_tiny_base itself, for tests that need a tiny base of another size.

    A fixture, not `from conftest import ...`: with a second conftest.py (tests/browser) the
    name `conftest` may be that other module, depending on which one pytest imported last.
    """
    return build_tiny_base


@pytest.fixture
def one_thread(monkeypatch):
    """One intra-op thread for tests on tiny models, also inside TrainingRun.

    TrainingRun sets the thread count from QGOFT_THREADS (else every core);
    for 32-wide layers thread hand-offs cost more than they save, and on a
    shared 2-core machine they can make a test 10x slower.
    """
    monkeypatch.setenv("QGOFT_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    """A tiny random BERT with a tiny word-level tokenizer, saved as a local model folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "good", "bad", "film", "great", "awful",
             "movie", "not", "and", "is", "was", "it", "of", "to", "fun", "boring", "love", "hate"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=24, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    return str(folder)


def make_run(model_dir: str, method: str):
    from qgoft_core.explore.training import RunConfig, TrainingRun
    config = RunConfig(model=model_dir, method=method, steps=7, batch_size=4, eval_every=3, eval_examples=12,
                       max_length=24, warmup_steps=2, lr=1e-2, device="cpu")
    return TrainingRun(config)


# -- saved adapters for the inspection tests ----------------------------------------------
def save_ours(base, path, method="goft", scaling=None, edit=None, num_labels=3, theta=0.3):
    """An engine-style adapter: saved from a SentenceClassifier, with its head (GOFT angles ~ theta * N(0, 1))."""
    from qgoft_core import QGOFTConfig, get_qgoft_model, share_base
    from qgoft_core.explore.models import SentenceClassifier

    classifier = SentenceClassifier(share_base(base.encoder), num_labels, base.pooling)
    model = get_qgoft_model(classifier, QGOFTConfig(method=method, scaling=scaling, modules_to_save=["head"]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.adapter_layers().values():
            if method == "goft":
                layer.qgoft_theta.copy_(theta * torch.randn(layer.qgoft_theta.shape, generator=generator))
            else:
                layer.qgoft_blocks.add_(1e-5 * torch.randn(layer.qgoft_blocks.shape, generator=generator))
        if edit:
            edit(model)
    model.save_pretrained(path)
    return model


def save_peft(base, path, config, edit=None):
    """A stock PEFT adapter on the plain encoder (no head), saved with save_pretrained."""
    from peft import get_peft_model

    from qgoft_core import share_base

    model = get_peft_model(share_base(base.encoder), config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=generator))
        if edit:
            edit(model)
    model.save_pretrained(str(path))
    return model
