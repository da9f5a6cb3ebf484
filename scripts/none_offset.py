"""Research: would a threshold on `none` help? Rescores an evaluate.py run's saved model
probabilities (its predictions.jsonl) with log p(none) raised by an offset, per dev set.

Each dev set is scored at every offset; the first is also split by documents in halves, an
offset picked on one half and scored on the other (both ways), so that the gain shown is
not only the dev set fitting itself.

    python scripts/none_offset.py runs/rn-lr5e-5/predictions.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

from negstance.model.labels import LABELS
from negstance.train.metrics import classification_metrics

OFFSETS = np.round(np.arange(-1.0, 2.01, 0.25), 2)


def load(path: str) -> dict[str, dict[int, dict]]:
    """{dataset: {seed: {"truth", "log_p", "doc"}}} of the model's dev-set rows."""
    rows = defaultdict(lambda: defaultdict(list))
    with open(path, encoding="utf-8") as lines:
        for row in map(json.loads, lines):
            if row["protocol"] == "dev":
                rows[row["dataset"]][row["seed"]].append(row)
    return {
        dataset: {
            seed: {
                "truth": np.array([LABELS.index(r["label"]) for r in seed_rows]),
                "log_p": np.log(
                    np.array([[r["probabilities"][k] for k in LABELS] for r in seed_rows]) + 1e-12
                ),
                "doc": np.array([r["doc"] for r in seed_rows]),
            }
            for seed, seed_rows in by_seed.items()
        }
        for dataset, by_seed in rows.items()
    }


def macro_f1(run: dict, offset: float, rows: np.ndarray | None = None) -> float:
    rows = np.arange(len(run["truth"])) if rows is None else rows
    predicted = (run["log_p"][rows] + np.array([0.0, 0.0, offset])).argmax(1)
    return classification_metrics(run["truth"][rows], predicted)["macro_f1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", help="predictions.jsonl of scripts/evaluate.py")
    args = parser.parse_args(argv)
    data = load(args.predictions)
    print("| offset | " + " | ".join(f"`{d}` macro-F1" for d in data) + " |")
    print("|---:|" + "---:|" * len(data))
    for offset in OFFSETS:
        cells = []
        for runs in data.values():
            scores = [macro_f1(run, offset) for run in runs.values()]
            cells.append(f"{np.mean(scores):.3f} ± {np.std(scores, ddof=1):.3f}")
        print(f"| {offset:+.2f} | " + " | ".join(cells) + " |")
    first = next(iter(data.values()))
    held_out = []
    for run in first.values():
        documents = np.unique(run["doc"])
        order = np.random.default_rng(0).permutation(len(documents))
        half = np.isin(run["doc"], documents[order[: len(documents) // 2]])
        for pick, score in ((half, ~half), (~half, half)):
            rows_pick, rows_score = np.flatnonzero(pick), np.flatnonzero(score)
            best = max(sorted(OFFSETS, key=abs), key=lambda o: macro_f1(run, o, rows_pick))
            held_out.append(
                (float(best), macro_f1(run, best, rows_score) - macro_f1(run, 0.0, rows_score))
            )
    offsets, gains = zip(*held_out, strict=True)
    print(
        f"\nfirst dev set, offset picked on half its documents: {list(offsets)}; gain on the "
        f"other half over offset 0: {np.mean(gains):+.3f} ± {np.std(gains, ddof=1):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
