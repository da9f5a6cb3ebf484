"""Do suggest's picks hold more of the model's errors than random ones? ``bench_suggest.py``.

For each of the five seed articles: train the config (default: ``configs/minilm.yaml``)
on the other four (``--validation_docs=<article>`` holds it out of training), build
suggest's candidates from the held-out article's raw text (``data/raw/<article>.txt``,
with the other four articles' sentences as the labelled data), rank them with each
strategy, and count how many of the top ``-n`` the model mislabels, against the gold
label in ``data/seed_sentences.jsonl`` (matched by text). ``random`` is averaged over
``--random_seeds`` seeds. Prints a Markdown table; writes nothing. Extra
``--key=value`` arguments override the training config.
"""

# No `from __future__ import annotations`: the options dataclass needs real types, since
# tests load this file without registering it in sys.modules (dataclasses look it up).

import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from negstance.model.options import option, script_main
from negstance.train.config import parse_options_and_config

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "minilm.yaml"


@dataclass
class BenchSuggestOptions:
    number: int = option(
        10, help="suggestions per held-out article to check", minimum=1, short="-n"
    )
    random_seeds: int = option(
        20, help="seeds that the random strategy is averaged over", minimum=1
    )
    uncertainty: str = option(
        "margin", help="uncertainty score of the ranking", choices=("margin", "entropy")
    )


@script_main
def main(argv: Sequence[str] | None = None) -> int:
    # Mistakes in the options or the config are reported here, before torch loads.
    args, config = parse_options_and_config(
        BenchSuggestOptions,
        list(argv or []),
        prog="bench_suggest.py",
        description=__doc__.splitlines()[0] + " --config defaults to configs/minilm.yaml.",
        default_config=DEFAULT_CONFIG,
    )

    import numpy as np

    from negstance.train.data import read_labelled_records

    seed_rows = read_labelled_records(REPO / "data" / "seed_sentences.jsonl")
    header = (
        f"| held-out article | candidates | model errors | uncertainty | diverse "
        f"| random (mean of {args.random_seeds}) | train s |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    totals = np.zeros(5)
    for document in sorted({row["doc"] for row in seed_rows}):
        started = time.perf_counter()
        row = held_out_counts(config, args, document, seed_rows)
        totals += row
        lines.append(
            f"| {document} | {row[0]:.0f} | {row[1]:.0f} | {row[2]:.0f} | {row[3]:.0f} "
            f"| {row[4]:.1f} | {time.perf_counter() - started:.0f} |"
        )
        print(lines[-1], flush=True)
    lines.append(
        f"| **total** | {totals[0]:.0f} | {totals[1]:.0f} | **{totals[2]:.0f}** "
        f"| **{totals[3]:.0f}** | {totals[4]:.1f} | |"
    )
    print(
        f"\nModel errors among the top {args.number} suggestions of each held-out article "
        f"({args.uncertainty} uncertainty):\n"
    )
    print("\n".join(lines))
    return 0


def held_out_counts(
    config: Any, args: BenchSuggestOptions, document: str, seed_rows: list[dict]
) -> "np.ndarray":
    """Train without ``document``; count its candidates, the model's errors among them, and
    the errors among the top picks of uncertainty, diverse and random (mean)."""
    import numpy as np

    from negstance.model.classifier import StanceClassifier
    from negstance.train import suggest, train

    run = dataclasses.replace(config, validation_docs=[document], no_progress=True)
    result = train(run, save=False)
    classifier = StanceClassifier(result.model, result.tokenizer, device="cpu")
    labelled = [row["text"] for row in seed_rows if row["doc"] != document]
    text = (REPO / "data" / "raw" / f"{document}.txt").read_text(encoding="utf-8")
    article = suggest.sentence_rows([suggest.Document(document, text)])  # one whole article
    texts = [row["text"] for row in suggest.candidate_pool(article, labelled).rows]
    probabilities = classifier.predict_proba(texts)
    gold = {row["text"]: row["label"] for row in seed_rows}
    predicted = [classifier.labels[index] for index in probabilities.argmax(axis=1)]
    wrong = np.array([predicted[i] != gold[text] for i, text in enumerate(texts)])
    scored = (classifier, texts, probabilities, wrong, args)
    random = [errors_in_top(*scored, "random", seed) for seed in range(args.random_seeds)]
    picked = [errors_in_top(*scored, strategy) for strategy in ("uncertainty", "diverse")]
    return np.array([len(texts), wrong.sum(), *picked, np.mean(random)])


def errors_in_top(
    classifier: Any,
    texts: list[str],
    probabilities: "np.ndarray",
    wrong: "np.ndarray",
    args: BenchSuggestOptions,
    strategy: str,
    seed: int = 0,
) -> int:
    """How many of the model's errors are among the ``args.number`` picks of ``strategy``."""
    from negstance.train.suggest import rank_for_labelling

    picks = rank_for_labelling(
        probabilities,
        args.number,
        strategy,
        args.uncertainty,
        vectors_of=lambda indices: classifier.embed([texts[index] for index in indices]),
        seed=seed,
    )
    return int(wrong[picks].sum())


if __name__ == "__main__":
    sys.exit(main())
