"""Which correction estimates stance shares best, given a labelled sample? ``bench_summarize.py``.

On a prediction file with gold labels (``input_label``; default: the dev set's predictions),
draw ``--labelled`` random sentences as the labelled sample the error rates come from, estimate
the shares of the other sentences per ``--groups`` field (each cell a group value) with CC, PCC,
ACC and PACC, and compare with their gold shares: the mean absolute error of the three shares
per cell, and how often the 95 % interval holds the gold share. Repeated over ``--samples``
seeds (0, 1, ...). Prints a Markdown table; writes nothing.
"""

# No `from __future__ import annotations`: the options dataclass needs real types.

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from negstance.model.options import option, parse_options, script_main

METHODS = ("cc", "pcc", "acc", "pacc")


@dataclass
class BenchSummarizeOptions:
    input: str = option(help="prediction file with gold labels in input_label (dev set)")
    groups: list[str] = option(["period", "outlet_style"], help="fields that define the cells")
    labelled: int = option(100, help="sentences in each labelled sample", minimum=10)
    samples: int = option(5, help="labelled samples drawn (seeds 0, 1, ...)", minimum=1)
    bootstrap: int = option(1000, help="bootstrap replicates per interval", minimum=100)


def score(table, frame, field):
    """Per cell of ``table``: the absolute errors of the shares and whether each interval holds
    the gold share, against the gold labels of ``frame``'s rows."""
    import numpy as np

    from negstance.model.labels import LABELS

    gold = frame.groupby(field)["input_label"].value_counts(normalize=True).unstack(fill_value=0)
    errors, covered = [], []
    for _, row in table.iterrows():
        truth = gold.loc[row["group"]].reindex(LABELS, fill_value=0).to_numpy()
        errors.append(np.abs(row[list(LABELS)].to_numpy(float) - truth).mean())
        if row["n"] > 1:
            low = row[[f"{label}_low" for label in LABELS]].to_numpy(float)
            high = row[[f"{label}_high" for label in LABELS]].to_numpy(float)
            covered.extend((low - 1e-9 <= truth) & (truth <= high + 1e-9))
    return errors, covered


@script_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_options(
        BenchSummarizeOptions, argv, prog="bench_summarize.py", description=__doc__.split("\n")[0]
    )
    import numpy as np

    from negstance.model.labels import LABELS
    from negstance.train.coverage import PROBS, SummarizeOptions, read_rows, summarize

    rows = read_rows(args.input)
    rows = rows[rows["input_label"].isin(LABELS)].reset_index(drop=True)
    results = {(field, method): ([], [], []) for field in args.groups for method in METHODS}
    for seed in range(args.samples):
        order = np.random.default_rng(seed).permutation(len(rows))
        sample, rest = rows.iloc[order[: args.labelled]], rows.iloc[order[args.labelled :]]
        gold = sample["input_label"].map(LABELS.index).to_numpy()
        rates = (gold, sample[PROBS].to_numpy(float))
        for field in args.groups:
            frame = rest.assign(_group=rest[field].astype(str), _period="")
            for method in METHODS:
                options = SummarizeOptions(args.input, "", method=method, bootstrap=args.bootstrap)
                table = summarize(frame, options, rates)
                errors, covered = score(table, frame.assign(**{field: frame["_group"]}), field)
                results[field, method][0].extend(errors)
                results[field, method][1].extend(covered)
                results[field, method][2].extend(table["n"])
    print(
        f"{len(rows)} sentences; {args.samples} samples of {args.labelled} labelled, "
        f"shares estimated on the other {len(rows) - args.labelled}\n"
    )
    print("| cells | mean n | method | MAE (3 shares) | 95 % interval coverage |")
    print("|---|---:|---|---:|---:|")
    for field in [*args.groups, "all"]:
        for method in METHODS:
            chosen = args.groups if field == "all" else [field]
            errors = [e for f in chosen for e in results[f, method][0]]
            covered = [c for f in chosen for c in results[f, method][1]]
            sizes = [n for f in chosen for n in results[f, method][2]]
            print(
                f"| {field} ({len(errors) // args.samples}) | {np.mean(sizes):.0f} "
                f"| {method.upper()} | {np.mean(errors):.4f} | {np.mean(covered):.1%} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
