"""Research script: recipes built around the strongest baseline, in leave-one-article-out CV.

Not part of the package. It answers one question from issue #4: can fine-tuning
improve on "frozen MiniLM vectors, L2-normalised, + scikit-learn's default
logistic regression" (the baseline the shipped model does not clearly beat)
if it *starts from exactly that classifier*? Each recipe:

1. optionally trains the encoder with a SetFit-style contrastive stage
   (``--contrastive_epochs``): in every batch, all sentence pairs; ``pairs`` is
   SetFit's cosine-similarity loss (cos → 1 for the same label, → 0 otherwise),
   ``supcon`` the supervised contrastive loss of Khosla et al. (2020);
2. fits the baseline's classifier (LogisticRegression(C=1), or C=``--probe_c``)
   on the L2-normalised mean-pooled vectors of the training articles;
3. optionally fine-tunes encoder and that head end to end with cross-entropy
   (``--finetune_epochs``), all layers, only the top ``--trainable_layers``
   or only the biases (``--bitfit``),
   or the encoder alone under the fixed probe (``--freeze_head``);
   ``--reinit_layers N`` re-draws the top N encoder layers before step 2;
4. optionally scores WiSE-FT interpolations (``--wise_alphas``) between the
   weights before fine-tuning (encoder after steps 1-2, probe as head) and after.

With no stage switched on it *is* the baseline (and reproduces its numbers).
The folds, metrics and data are the package's; the output is one JSON line.

Example (run from the repository root, ~3 min per seed at 1 thread):
    python reports/experiments/recipes.py --contrastive_epochs 8 --contrastive_loss supcon
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

from negstance.model.modeling import DEFAULT_BACKBONE, mean_pool, resolve_model_path
from negstance.train.data import load_seed_dataset
from negstance.train.evaluate import grouped_folds, summarize
from negstance.train.metrics import classification_metrics


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--contrastive_epochs", type=int, default=0)
    parser.add_argument("--contrastive_loss", choices=("pairs", "supcon"), default="pairs")
    parser.add_argument("--contrastive_learning_rate", type=float, default=2e-5)
    parser.add_argument("--temperature", type=float, default=0.1, help="supcon only")
    parser.add_argument("--finetune_epochs", type=int, default=0)
    parser.add_argument("--learning_rate", type=float, default=1e-5)
    parser.add_argument("--head_learning_rate", type=float, default=None)
    parser.add_argument("--class_weighting", choices=("none", "balanced"), default="none")
    parser.add_argument("--trainable_layers", type=int, default=0, help="0: all")
    parser.add_argument(
        "--bitfit",
        action="store_true",
        help="train only the encoder's biases (BitFit, Ben Zaken et al., 2022) and the head",
    )
    parser.add_argument(
        "--probe_c", type=float, default=1.0, help="the probe's C (scikit-learn's default: 1)"
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument(
        "--reinit_layers",
        type=int,
        default=0,
        help="re-initialise the top N encoder layers before the probe (Zhang et al., 2021)",
    )
    parser.add_argument(
        "--freeze_head", action="store_true", help="fine-tune the encoder under the fixed probe"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--wise_alphas",
        type=float,
        nargs="*",
        default=[],
        help="WiSE-FT (Wortsman et al., 2022): also score the weights "
        "(1 - a) * start + a * fine-tuned for each a",
    )
    return parser.parse_args(argv)


def sentence_vectors(encoder, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    hidden = encoder(**batch).last_hidden_state
    return torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)


def contrastive_loss(vectors: torch.Tensor, labels: torch.Tensor, args) -> torch.Tensor:
    same = (labels[:, None] == labels[None, :]).float()
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    similarity = vectors @ vectors.T
    if args.contrastive_loss == "pairs":
        return ((similarity - same) ** 2)[off_diagonal].mean()
    log_probabilities = (
        (similarity / args.temperature).masked_fill(~off_diagonal, -1e9).log_softmax(dim=-1)
    )
    positives = same * off_diagonal
    anchors = positives.sum(dim=1) > 0
    per_anchor = (log_probabilities * positives).sum(dim=1)[anchors] / positives.sum(dim=1)[anchors]
    return -per_anchor.mean()


def run_fold(texts, labels, train_rows, test_rows, seed: int, args) -> dict[float, np.ndarray]:
    """Predicted label ids for ``test_rows``: ``{1.0: ...}``, plus one per WiSE-FT alpha."""
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    path = resolve_model_path(DEFAULT_BACKBONE)
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path)

    def batches():
        order = generator.permutation(train_rows)
        for start in range(0, len(order), args.batch_size):
            rows = order[start : start + args.batch_size]
            if len(rows) > 1:
                yield [texts[i] for i in rows], torch.tensor(labels[rows])

    if args.contrastive_epochs:
        optimizer = torch.optim.AdamW(
            encoder.parameters(), lr=args.contrastive_learning_rate, weight_decay=0.01
        )
        encoder.train()
        for _ in range(args.contrastive_epochs):
            for batch_texts, batch_labels in batches():
                loss = contrastive_loss(
                    sentence_vectors(encoder, tokenizer, batch_texts), batch_labels, args
                )
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()

    if args.reinit_layers:
        top = encoder.config.num_hidden_layers
        # By hand: transformers 5's _init_weights skips modules it marks as loaded.
        for layer in encoder.encoder.layer[top - args.reinit_layers :]:
            for module in layer.modules():
                if isinstance(module, torch.nn.Linear):
                    torch.nn.init.normal_(module.weight, std=encoder.config.initializer_range)
                    torch.nn.init.zeros_(module.bias)
                elif isinstance(module, torch.nn.LayerNorm):
                    torch.nn.init.ones_(module.weight)
                    torch.nn.init.zeros_(module.bias)
    encoder.eval()
    with torch.no_grad():
        vectors = torch.cat(
            [
                sentence_vectors(encoder, tokenizer, texts[i : i + 64])
                for i in range(0, len(texts), 64)
            ]
        ).numpy()
    probe = LogisticRegression(C=args.probe_c, max_iter=5000, random_state=seed)
    probe.fit(vectors[train_rows], labels[train_rows])
    if not args.finetune_epochs:
        return {1.0: probe.predict(vectors[test_rows])}

    head = torch.nn.Linear(vectors.shape[1], len(probe.classes_))
    with torch.no_grad():
        head.weight.copy_(torch.tensor(probe.coef_, dtype=torch.float32))
        head.bias.copy_(torch.tensor(probe.intercept_, dtype=torch.float32))
    if args.trainable_layers:
        top = encoder.config.num_hidden_layers
        names = tuple(f"layer.{top - k}." for k in range(1, args.trainable_layers + 1))
        for name, parameter in encoder.named_parameters():
            parameter.requires_grad = any(part in name for part in names)
    if args.bitfit:
        for name, parameter in encoder.named_parameters():
            parameter.requires_grad = name.endswith("bias")
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in encoder.parameters() if p.requires_grad]},
            {
                "params": [] if args.freeze_head else list(head.parameters()),
                "lr": args.head_learning_rate or args.learning_rate,
            },
        ],
        lr=args.learning_rate,
        weight_decay=0.01,
    )
    weights = None
    if args.class_weighting == "balanced":
        counts = np.bincount(labels[train_rows], minlength=3)
        weights = torch.tensor(len(train_rows) / (3 * counts), dtype=torch.float32)
    loss_function = torch.nn.CrossEntropyLoss(weight=weights)

    def snapshot() -> list[dict[str, torch.Tensor]]:
        return [{k: v.clone() for k, v in m.state_dict().items()} for m in (encoder, head)]

    initial = snapshot() if args.wise_alphas else []  # copies only when WiSE-FT needs them
    encoder.train()
    for _ in range(args.finetune_epochs):
        for batch_texts, batch_labels in batches():
            loss = loss_function(
                head(sentence_vectors(encoder, tokenizer, batch_texts)), batch_labels
            )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    encoder.eval()
    test_texts = [texts[i] for i in test_rows]
    with torch.no_grad():
        predictions = {1.0: head(sentence_vectors(encoder, tokenizer, test_texts)).argmax(-1)}
        tuned = snapshot() if args.wise_alphas else []
        for alpha in args.wise_alphas:
            for module, start, end in zip((encoder, head), initial, tuned, strict=True):
                module.load_state_dict(
                    {
                        k: (1 - alpha) * start[k] + alpha * end[k]
                        if end[k].is_floating_point()
                        else end[k]
                        for k in end
                    }
                )
            vectors = sentence_vectors(encoder, tokenizer, test_texts)
            predictions[alpha] = head(vectors).argmax(-1)
    return {alpha: p.numpy() for alpha, p in predictions.items()}


def main(argv: list[str] | None = None) -> dict:
    args = parse_arguments(argv)
    if (args.wise_alphas or args.freeze_head) and not args.finetune_epochs:
        raise SystemExit("--wise_alphas and --freeze_head need --finetune_epochs")
    if args.bitfit and args.trainable_layers:
        raise SystemExit("--bitfit and --trainable_layers choose different parameters: pick one")
    if not 0 <= args.reinit_layers <= 6:
        raise SystemExit("--reinit_layers must be 0 to 6 (MiniLM has 6 layers)")
    torch.set_num_threads(args.threads)
    dataset = load_seed_dataset("data/seed_sentences.jsonl")
    texts, labels = list(dataset["text"]), np.asarray(dataset["label"])
    folds = grouped_folds(list(dataset["doc"]))
    started = time.perf_counter()
    systems: dict[float, dict] = {}
    for seed in range(42, 42 + args.seeds):
        predictions: dict[float, np.ndarray] = {}
        for fold in folds:
            test = np.asarray(fold.test_indices)
            for alpha, predicted in run_fold(
                texts, labels, np.asarray(fold.train_indices), test, seed, args
            ).items():
                predictions.setdefault(alpha, np.full(len(labels), -1))[test] = predicted
                scores = classification_metrics(labels[test].tolist(), predicted.tolist())
                entry = systems.setdefault(alpha, {"folds": {}, "pooled": {}})
                for name in ("macro_f1", "f_avg"):
                    entry["folds"].setdefault(name, []).append(scores[name])
        for alpha, predicted in predictions.items():
            pooled = classification_metrics(labels.tolist(), predicted.tolist())
            for name in ("macro_f1", "f_avg"):
                systems[alpha]["pooled"].setdefault(name, []).append(pooled[name])
    summaries = {
        str(alpha): {
            part: {name: summarize(values) for name, values in entry[part].items()}
            for part in ("folds", "pooled")
        }
        for alpha, entry in sorted(systems.items())
    }
    result = {
        "arguments": {key: value for key, value in vars(args).items() if key != "threads"},
        "folds": summaries["1.0"]["folds"],
        "pooled": summaries["1.0"]["pooled"],
        "weight_interpolation": summaries,
        "seconds": round(time.perf_counter() - started, 1),
        "environment": {
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": args.threads,
        },
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
