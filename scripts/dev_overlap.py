"""How close does any dev sentence come to a seed sentence? (data/dev/README.md quotes it.)

``python scripts/dev_overlap.py`` prints, for the closest pairs, the character-level
similarity (difflib ratio) and the cosine of the frozen all-mpnet-base-v2 sentence
vectors, so a paraphrase that shares few characters is caught too.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence

import numpy as np

from negstance.model.cli import ArgumentParser, user_errors_exit_cleanly
from negstance.train.data import read_labelled_records


@user_errors_exit_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="dev_overlap.py", description=__doc__.splitlines()[0])
    parser.add_argument("--dev", default="data/dev/dev.jsonl")
    parser.add_argument("--seed", default="data/seed_sentences.jsonl")
    parser.add_argument("--backbone", default="sentence-transformers/all-mpnet-base-v2")
    parser.add_argument("--top", type=int, default=5, help="closest pairs to print")
    args = parser.parse_args(argv)
    from negstance.train.baselines import frozen_embeddings

    dev = [row["text"] for row in read_labelled_records(args.dev)]
    seed = [row["text"] for row in read_labelled_records(args.seed)]
    vectors = frozen_embeddings(dev + seed, args.backbone)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = vectors[: len(dev)] @ vectors[len(dev) :].T
    characters = np.array(
        [[difflib.SequenceMatcher(None, d.lower(), s.lower()).ratio() for s in seed] for d in dev]
    )
    for name, scores in (("embedding cosine", cosine), ("character ratio", characters)):
        print(f"highest {name}: {scores.max():.3f}")
        for flat in np.argsort(scores, axis=None)[::-1][: args.top]:
            row, column = np.unravel_index(flat, scores.shape)
            print(f"  {scores[row, column]:.3f}  dev: {dev[row]}\n         seed: {seed[column]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
