"""How close does any dev sentence come to a seed sentence? (data/dev/README.md quotes it.)

``python scripts/dev_overlap.py`` prints, for the closest pairs, the character-level
similarity (difflib ratio) and the cosine of the frozen all-mpnet-base-v2 sentence
vectors, so a paraphrase that shares few characters is caught too.
"""

# No `from __future__ import annotations`: the options dataclass needs real types, since
# tests load this file without registering it in sys.modules (dataclasses look it up).

import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from negstance.model.options import option, parse_options, script_main


@dataclass
class OverlapOptions:
    dev: str = option("data/dev/dev.jsonl", help="the dev sentences (.jsonl)")
    seed_data: str = option(
        "data/seed_sentences.jsonl", help="the seed (training) sentences (.jsonl)"
    )
    backbone: str = option(
        "sentence-transformers/all-mpnet-base-v2",
        help="sentence encoder whose frozen vectors give the cosine",
    )
    top: int = option(5, help="closest pairs to print", minimum=1)


@script_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(
        OverlapOptions, argv, prog="dev_overlap.py", description=__doc__.splitlines()[0]
    )
    import numpy as np

    from negstance.train.baselines import frozen_embeddings
    from negstance.train.data import read_labelled_records

    dev = [row["text"] for row in read_labelled_records(args.dev)]
    seed = [row["text"] for row in read_labelled_records(args.seed_data)]
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
