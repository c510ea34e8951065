"""Tiny models built on the fly (no downloads): a detoxify checkpoint and a BERT classifier.

The BERT weights are random except the classifier bias, which is set so that the outputs are
predictable enough to check the label mapping end to end.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ("you are an idiot stupid kill hate love the a cat dog nice day hello world this is "
         "good bad fine and i will hurt your family people very much thank").split()


def _base(d: Path, num_labels: int, id2label: dict[int, str] | None = None,
          problem_type: str | None = None):  # type: ignore[no-untyped-def]
    from transformers import BertConfig, BertTokenizer

    d.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    kw = {}
    if id2label:
        kw = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, num_labels=num_labels,
                     max_position_embeddings=128, problem_type=problem_type, **kw)
    cfg.save_pretrained(d)
    BertTokenizer(str(d / "vocab.txt")).save_pretrained(d)
    return cfg


def _biased_model(cfg, biases: list[float]):  # type: ignore[no-untyped-def]
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    with torch.no_grad():
        model.classifier.weight.mul_(0.01)
        model.classifier.bias.copy_(torch.tensor(biases))
    return model


DETOX_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
# sigmoid(4) ~ 0.98 for threat and insult, sigmoid(-4) ~ 0.02 for the rest
DETOX_BIAS = [-4.0, -4.0, -4.0, 4.0, 4.0, -4.0]


def build_detoxify(root: Path) -> tuple[Path, Path]:
    """(checkpoint path, config dir). ``model_type`` is a hub id, as in the published
    checkpoints, so loading only works offline through ``huggingface_config_path``."""
    import torch

    d = root / "detox-config"
    cfg = _base(d, len(DETOX_CLASSES))
    model = _biased_model(cfg, DETOX_BIAS)
    ckpt = root / "tiny-detox.ckpt"
    torch.save({
        "config": {
            "arch": {"args": {"model_type": "bert-base-uncased",
                              "model_name": "BertForSequenceClassification",
                              "tokenizer_name": "BertTokenizer",
                              "num_classes": len(DETOX_CLASSES)}},
            "dataset": {"args": {"classes": DETOX_CLASSES}},
        },
        "state_dict": model.state_dict(),
    }, ckpt)
    return ckpt, d


HF_LABELS = {0: "neutral", 1: "Insult", 2: "self-harm"}
HF_BIAS = [0.0, 3.0, 1.0]  # softmax ~ [0.04, 0.84, 0.11]


def build_transformers(root: Path) -> Path:
    d = root / "tiny-bert-cls"
    cfg = _base(d, 3, HF_LABELS, problem_type="single_label_classification")
    _biased_model(cfg, HF_BIAS).save_pretrained(d)
    return d
