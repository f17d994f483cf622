"""A QGOFTModel trains inside Hugging Face's own `transformers.Trainer`.

The same loop `accelerate launch --multi_gpu` distributes; here on CPU, with
no evaluation, no checkpoints and no loggers. The qGOFT penalty is added in
`compute_loss`, the one hook Trainer offers for an extra loss term.
"""
import pytest
import torch

from qgoft_core import QGOFTConfig, get_qgoft_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


class TinyTextDataset(torch.utils.data.Dataset):
    """Random token ids with a learnable label (whether token 5 occurs)."""

    def __init__(self, n: int = 32, length: int = 8, vocab: int = 64):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(6, vocab, (n, length), generator=g)
        self.ids[::2, 3] = 5
        self.labels = (self.ids == 5).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]),
                "labels": self.labels[i]}


def test_qgoft_model_trains_inside_transformers_trainer(tiny, tmp_path):
    from transformers import Trainer, TrainingArguments

    class QGOFTTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            outputs = model(**inputs)
            loss = outputs.loss + model.regularization_loss()
            return (loss, outputs) if return_outputs else loss

    base = tiny.build("bert", classifier=True, num_labels=2)
    frozen = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = get_qgoft_model(base, QGOFTConfig(method="qgoft", reg_lambda=0.01, modules_to_save=["classifier"]))
    adapter_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert adapter_before and all("qgoft_" in n or "classifier" in n for n in adapter_before)

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=8,
                             learning_rate=1e-2, warmup_steps=0, report_to=[], use_cpu=True,
                             save_strategy="no", eval_strategy="no", logging_strategy="no",
                             disable_tqdm=True, remove_unused_columns=False, seed=0)
    result = QGOFTTrainer(model=model, args=args, train_dataset=TinyTextDataset()).train()

    assert result.global_step == 4 and torch.isfinite(torch.tensor(result.training_loss))
    after = dict(model.named_parameters())
    for name, before in adapter_before.items():
        assert not torch.equal(after[name].detach(), before), f"{name} did not train"
    for layer in model.adapter_layers().values():  # the frozen base weights are untouched
        assert not layer.base_layer.weight.requires_grad
    base_now = {n.replace("base_layer.", ""): p for n, p in model.base_model.named_parameters()
                if not p.requires_grad}
    for name, value in frozen.items():
        key = name if name in base_now else name.replace("classifier.", "classifier.original_module.")
        assert torch.equal(base_now[key], value), f"base weight {name} changed"
    assert not any(tmp_path.iterdir()), "Trainer wrote checkpoints although saving is off"
