"""Train a GOFT / qGOFT adapter with Hugging Face's `transformers.Trainer`.

The same script runs on one CPU, one GPU, or several GPUs through Accelerate:

    python scripts/train_with_trainer.py --method qgoft --max-steps 200
    accelerate launch --multi_gpu --num_processes 2 scripts/train_with_trainer.py --method qgoft

A QGOFTModel is an ordinary nn.Module whose only trainable tensors are the
adapter (and the task head), so Trainer / DDP need nothing special; the one
addition is the qGOFT orthogonality penalty, added in `compute_loss`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from qgoft_core import QGOFTConfig, get_qgoft_model, share_base  # noqa: E402
from qgoft_core.explore.models import SentenceClassifier, load_base  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="hub id or folder (default: the offline MiniLM)")
    parser.add_argument("--task", default="sentiment", choices=("sentiment", "topic"))
    parser.add_argument("--method", default="qgoft", choices=("goft", "qgoft"))
    parser.add_argument("--reg-lambda", type=float, default=0.01)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16, help="per device")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", default="qgoft-trainer-run")
    parser.add_argument("--use-cpu", action="store_true")
    return parser.parse_args(argv)


class TextDataset(torch.utils.data.Dataset):
    def __init__(self, tokenizer, texts, labels, max_length: int):
        self.encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i],
                "labels": self.labels[i]}


def main(argv=None) -> None:
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from qgoft_core.explore.data.tasks import load_builtin_task

    args = parse_args(argv)

    class QGOFTTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            outputs = model(**inputs)
            # DDP wraps the model; the penalty lives on the QGOFTModel inside.
            qgoft = model.module if hasattr(model, "module") else model
            loss = outputs.loss + qgoft.regularization_loss()
            return (loss, outputs) if return_outputs else loss

    base = load_base(args.model)
    task = load_builtin_task(args.task)
    classifier = SentenceClassifier(share_base(base.encoder), task.num_labels, base.pooling)
    model = get_qgoft_model(classifier, QGOFTConfig(method=args.method, reg_lambda=args.reg_lambda,
                                                    modules_to_save=["head"]))
    train = TextDataset(base.tokenizer, task.train_texts, task.train_labels, args.max_length)
    test = TextDataset(base.tokenizer, task.test_texts, task.test_labels, args.max_length)
    training = TrainingArguments(
        output_dir=args.out, max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64, learning_rate=args.lr, warmup_steps=5, weight_decay=0.0,
        report_to=[], save_strategy="no", eval_strategy="no", logging_steps=20,
        remove_unused_columns=False, label_names=["labels"], use_cpu=args.use_cpu, seed=0)
    trainer = QGOFTTrainer(model=model, args=training, train_dataset=train, eval_dataset=test,
                           data_collator=DataCollatorWithPadding(base.tokenizer),
                           compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1)
                                                                         == p.label_ids).mean())})
    trainer.train()
    metrics = trainer.evaluate()
    if trainer.is_world_process_zero():
        model.save_pretrained(Path(args.out) / "adapter")
        print(f"held-out accuracy {100 * metrics['eval_accuracy']:.1f}%; adapter in {Path(args.out) / 'adapter'}")


if __name__ == "__main__":
    main()
