"""Research script: average the fine-tuned default's probabilities with the frozen probe's.

Not part of the package. The shipped model (LP-FT) is a little better than the
frozen-embedding baseline on pooled scores and worse per article; this asks
whether averaging the two classifiers' probabilities gets the best of both. Same
folds, data, seeds and metrics as ``scripts/evaluate.py``: the ``model`` and
``probe`` rows reproduce its figures. Prints one JSON line.

Example (run from the repository root; 15 trainings, ~8 min on 2 cores):
    python reports/experiments/model_probe_ensemble.py --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from negstance.model.modeling import StanceClassifier
from negstance.train.baselines import frozen_embeddings
from negstance.train.config import load_config
from negstance.train.data import load_seed_dataset
from negstance.train.evaluate import grouped_folds, summarize
from negstance.train.metrics import classification_metrics
from negstance.train.training import train

SYSTEMS = ("model", "probe", "average")
METRICS = ("macro_f1", "f_avg")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config, {})
    dataset = load_seed_dataset(config.data_path)
    texts, labels = list(dataset["text"]), np.asarray(dataset["label"])
    folds = grouped_folds(list(dataset["doc"]))
    # The baseline's exact input: L2-normalised mean-pooled vectors of the frozen backbone.
    vectors = frozen_embeddings(
        texts, config.model_name_or_path, config.max_length, head=config.head
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    per_fold = {system: {metric: [] for metric in METRICS} for system in SYSTEMS}
    pooled = {system: {metric: [] for metric in METRICS} for system in SYSTEMS}
    for seed in range(config.seed, config.seed + args.seeds):
        probabilities = {system: np.zeros((len(labels), 3)) for system in SYSTEMS}
        run_config = dataclasses.replace(config, seed=seed, show_progress=False)
        for fold in folds:
            train_rows, test_rows = fold.train_indices, fold.test_indices
            result = train(run_config, train_dataset=dataset.select(train_rows), save=False)
            classifier = StanceClassifier(result.model, result.tokenizer, device="cpu")
            probabilities["model"][test_rows] = classifier.predict_proba(
                [texts[index] for index in test_rows]
            )
            probe = LogisticRegression(max_iter=5000, random_state=seed)
            probe.fit(vectors[train_rows], labels[train_rows])
            probabilities["probe"][test_rows] = probe.predict_proba(vectors[test_rows])
            probabilities["average"][test_rows] = (
                probabilities["model"][test_rows] + probabilities["probe"][test_rows]
            ) / 2
            for system in SYSTEMS:
                scores = classification_metrics(
                    labels[test_rows].tolist(),
                    probabilities[system][test_rows].argmax(axis=1).tolist(),
                )
                for metric in METRICS:
                    per_fold[system][metric].append(scores[metric])
        for system in SYSTEMS:
            scores = classification_metrics(
                labels.tolist(), probabilities[system].argmax(axis=1).tolist()
            )
            for metric in METRICS:
                pooled[system][metric].append(scores[metric])
    result = {
        system: {
            "folds": {metric: summarize(values) for metric, values in per_fold[system].items()},
            "pooled": {metric: summarize(values) for metric, values in pooled[system].items()},
        }
        for system in SYSTEMS
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
