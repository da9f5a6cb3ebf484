"""``summarize.py`` (``negstance-summarize``): stance shares per group and period of a prediction
file with 95 % bootstrap intervals, by CC, PCC, or ACC/PACC (which invert the confusion matrix of a
labelled random sample: Forman 2008; Bella et al. 2010). Usage: see ``summarize_main``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from negstance.model.errors import NegstanceError
from negstance.model.io import check_input_file, check_writable_directory, write_text_atomic
from negstance.model.labels import LABELS
from negstance.model.options import option, parse_options, script_main

PROBS = [f"prob_{label}" for label in LABELS]
HARD = [f"hard_{label}" for label in LABELS]
SHARES, ENDS = [*LABELS, "net"], ("", "_low", "_high")


@dataclass
class SummarizeOptions:
    """Stance shares per group and period of a prediction file, with 95 % intervals."""

    input: str = option(help="prediction file written by predict.py (.jsonl, .csv or .tsv)")
    output: str = option(help="table to write: .csv, .tsv, .jsonl or .md, by extension")
    by: str | None = option(None, help="field to group by, e.g. outlet")
    time: str | None = option(None, help="date field: ISO dates or datetimes (binned in UTC)")
    freq: str = option("month", help="period of --time", choices=("day", "week", "month"))
    unit: str = option("sentence", help="what n counts", choices=("sentence", "document"))
    document_key: str = option("doc_row", help="field naming a sentence's document")
    # cc even with rates: no method beat it on the dev set (bench_summarize.py, EXPERIMENTS.md)
    method: str = option(
        "cc",
        help="cc: count predicted labels; pcc: mean probabilities; acc/pacc: correct them by "
        "the error rates of --rates",
        choices=("cc", "pcc", "acc", "pacc"),
    )
    rates: str | None = option(None, help="label.py annotate file of a RANDOM sample of the input")
    text_column: str = option("text", help="text field, to match --rates by text")
    min_units: int = option(30, help="cells with fewer units are marked few", minimum=1)
    bootstrap: int = option(1000, help="bootstrap replicates of the 95 %% intervals", minimum=100)
    plot: str | None = option(None, help="also draw net stance with 95 %% bands (.png)")
    skip_bad_dates: bool = option(False, help="skip and count rows whose date does not parse")
    overwrite: bool = option(False, help="replace existing outputs")


def read_rows(path: str | Path) -> pd.DataFrame:
    """A ``.csv``/``.tsv`` or JSON Lines file as a table, each row's line number in ``_line``."""
    location, rows, number = check_input_file(path), [], 1
    try:
        with open(location, encoding="utf-8", newline="") as handle:
            if (suffix := location.suffix.lower()) in (".csv", ".tsv"):
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                for row in reader:
                    rows.append({**row, "_line": reader.line_num})
                    number = reader.line_num + 1
            else:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        rows.append({**json.loads(line), "_line": number})
    except (ValueError, TypeError, csv.Error) as error:  # a bad byte, bad JSON, not an object
        raise NegstanceError(f"{location}, line {number}: {str(error)[:100]}") from None
    if not rows:
        raise NegstanceError(f"{location}: no rows")
    return pd.DataFrame(rows)


def read_predictions(options: SummarizeOptions) -> tuple[pd.DataFrame, int]:
    """The input's sentence rows with ``_group`` and ``_period``, and how many were undated."""
    frame, path = read_rows(options.input), options.input
    if missing := [column for column in ("label", *PROBS) if column not in frame]:
        raise NegstanceError(f"{path}: not a prediction file of predict.py (no {missing[0]})")
    if "kind" in frame:  # --documents output: its summary rows repeat their sentences
        frame = frame[frame["kind"] == "sentence"]
    key = options.document_key if options.unit == "document" else None
    for name, field in {"--by": options.by, "--time": options.time, "--document_key": key}.items():
        if field and field not in frame:
            fields = ", ".join(frame.columns.drop("_line"))
            raise NegstanceError(f"{path}: no field {field!r} for {name} (fields: {fields})")
    frame = frame.assign(**{p: pd.to_numeric(frame[p], errors="coerce") for p in PROBS})
    by = frame[options.by].fillna("").astype(str).replace("", "(missing)") if options.by else "all"
    frame = frame.assign(_group=by, _period="")
    if not options.time:
        return frame, 0
    text = frame[options.time].astype("string")
    when = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None)
    if when.isna().any() and not options.skip_bad_dates:
        line, value = frame.loc[when.isna(), ["_line", options.time]].iloc[0]
        raise NegstanceError(
            f"{path}, line {line}: {options.time} {value!r} is not an ISO date "
            "(--skip_bad_dates skips such rows)"
        )
    start = when.dt.to_period(options.freq[0].upper()).dt.start_time  # weeks start on Monday
    frame["_period"] = start.dt.strftime("%Y-%m" if options.freq == "month" else "%Y-%m-%d")
    return frame[when.notna()], int(when.isna().sum())


def read_rates(path: str, frame: pd.DataFrame, text_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Gold stance ids and predicted probabilities of an annotate file's labelled sentences."""
    answers = read_rows(path)
    key, column = ("text", text_column) if "text" in answers else ("id", "id")
    if "label" not in answers or key not in answers or column not in frame:
        raise NegstanceError(f"{path}: needs 'label', and a text or id to match input {column!r}")
    answers = answers[answers["label"].notna()]  # skipped sentences
    if len(wrong := answers[~answers["label"].isin(LABELS)]):
        line, label = wrong[["_line", "label"]].iloc[0]
        raise NegstanceError(f"{path}, line {line}: label {label!r} is not one of {LABELS}")
    probs = frame.dropna(subset=PROBS).drop_duplicates(column).set_index(column)[PROBS]
    found = answers[answers[key].isin(probs.index)]
    gold = found["label"].map(LABELS.index).to_numpy()
    if absent := [label for index, label in enumerate(LABELS) if index not in gold]:
        raise NegstanceError(
            f"{path}: {len(found)} of its {len(answers)} labelled sentences are in the input, "
            f"none of them {absent[0]!r}; the error rates need every stance"
        )
    if len(found) < len(answers):
        print(f"{len(answers) - len(found)} labelled sentences of {path} are not in the input")
    return gold, probs.loc[found[key]].to_numpy(float)


def bootstrap_means(units: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """The row mean of ``units``, then those of ``replicates`` resamples (in ~2M-row chunks)."""
    n, step = len(units), max(1, 2_000_000 // len(units))
    sizes = [min(step, replicates - start) for start in range(0, replicates, step)]
    draws = [rng.multinomial(n, np.full(n, 1 / n), size) @ units / n for size in sizes]
    return np.concatenate([units.mean(0, keepdims=True), *draws])


def summarize(frame: pd.DataFrame, options: SummarizeOptions, rates: tuple | None) -> pd.DataFrame:
    """Per ``_group`` x ``_period`` of ``frame``: n, each stance's share and net stance (favor -
    against), each with a seeded 95 % interval (``_low``, ``_high``); acc/pacc need ``rates``."""
    rng, soft, correct = np.random.default_rng(0), options.method in ("pcc", "pacc"), None
    hard = np.eye(3)[frame[PROBS].fillna(0).to_numpy().argmax(1)]
    frame = frame.assign(**dict(zip(HARD, hard.T, strict=True)))
    if options.method in ("acc", "pacc"):  # P(predicted | true) on the sample and its resamples
        gold, probs = rates
        predicted = probs if soft else np.eye(3)[probs.argmax(1)]
        pairs = (np.eye(3)[gold][:, :, None] * predicted[:, None, :]).reshape(-1, 9)
        totals = bootstrap_means(pairs, options.bootstrap, rng).reshape(-1, 3, 3)
        rows_sum = np.maximum(totals.sum(-1, keepdims=True), 1e-12)  # a class a resample lacks
        correct = np.linalg.pinv(np.swapaxes(totals / rows_sum, 1, 2))
    key, rows = options.document_key if options.unit == "document" else None, []
    for (group, period), cell in frame.groupby(["_group", "_period"], sort=True):
        cell = cell.dropna(subset=PROBS)
        cell = cell.groupby(key)[PROBS + HARD].mean() if key else cell
        units, n = cell[PROBS if soft else HARD].to_numpy(float), len(cell)
        row = {"group": group, "period": period, "n": n, "few": n < options.min_units}
        if n:
            shares = bootstrap_means(units, options.bootstrap, rng)
            if correct is not None:  # invert each draw's confusion, then clip to the simplex
                shares = np.clip((correct @ shares[..., None])[..., 0], 0, None)
                shares /= shares.sum(-1, keepdims=True)
            shares = np.c_[shares, shares[:, 0] - shares[:, 1]]
            low, high = np.percentile(shares[1:], [2.5, 97.5], 0) if n > 1 else [[None] * 4] * 2
            for name, point, lower, upper in zip(SHARES, shares[0], low, high, strict=True):
                row |= {name: point, f"{name}_low": lower, f"{name}_high": upper}
        rows.append(row)
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame, path: str, by: str | None, time: str | None) -> str:
    """``table`` as a ``.csv``/``.tsv``/``.jsonl``/``.md`` file's text, by ``path``'s extension."""
    dropped = [name for name, given in [("group", by), ("period", time)] if not given]
    table = table.drop(columns=dropped).rename(columns={"group": by}).round(4)
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return table.to_json(orient="records", lines=True, force_ascii=False)
    if suffix in (".csv", ".tsv"):
        return table.to_csv(index=False, sep="\t" if suffix == ".tsv" else ",")
    for name in SHARES:  # .md, to read: "share [low, high]", blank without units
        p, lo, hi = (table.pop(name + end).astype(float).map("{:.2f}".format) for end in ENDS)
        text = p + (" [" + lo + ", " + hi + "]").where(lo != "nan", "")
        table[name] = text.where(p != "nan", "")
    lines = [list(table.columns), ["---"] * len(table.columns), *table.astype(str).to_numpy()]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


def draw(table: pd.DataFrame, method: str, by: str | None, time: str | None) -> bytes:
    """A PNG of net stance: over time a line per group with its 95 % band, else error bars."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.8), layout="constrained")
    axes, shown = figure.subplots(), table.dropna(subset=["net"])
    low, high = shown["net_low"].astype(float), shown["net_high"].astype(float)
    for group, rows in shown.groupby("group", sort=True) if time else []:
        x = pd.to_datetime(rows["period"], format="ISO8601")
        (line,) = axes.plot(x, rows["net"], marker="o", label=group)
        axes.fill_between(x, low[rows.index], high[rows.index], color=line.get_color(), alpha=0.2)
        axes.plot(x[rows.few], rows.net[rows.few], "o", color="white", markersize=3)  # few: hollow
    if time and by:
        figure.legend(title=by, loc="outside right upper", fontsize="small")
    if not time:
        names = shown["group"] + "\n(n=" + shown["n"].astype(str) + ")"
        error = [shown["net"] - low, high - shown["net"]]
        axes.errorbar(names, shown["net"], yerr=error, fmt="o", capsize=4)
        axes.plot(names[shown.few], shown.net[shown.few], "o", color="white", ms=3, zorder=3)
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set(ylim=(-1, 1), xlabel=time or by or "", ylabel="net stance (favor − against)")
    axes.set_title(f"Stance toward negotiation, {method.upper()} (95 % intervals; ○: few units)")
    figure.savefig(buffer := io.BytesIO(), format="png", dpi=110)
    return buffer.getvalue()


@script_main
def summarize_main(argv: Sequence[str] | None = None) -> int:
    """``summarize.py --input PREDICTIONS --output TABLE [--by F] [--time F] [--rates L]``."""
    options = parse_options(SummarizeOptions, argv, "summarize.py", SummarizeOptions.__doc__)
    method, corrected = options.method, options.method in ("acc", "pacc")
    outputs = {options.output: (".csv", ".tsv", ".jsonl", ".md"), options.plot: (".png",)}
    for path, suffixes in outputs.items():
        if path and Path(path).suffix.lower() not in suffixes:
            raise NegstanceError(f"{path}: name the output {' or '.join(suffixes)}")
        if path and Path(path).exists() and not options.overwrite:
            raise NegstanceError(f"output exists: {path} (pass --overwrite to replace it)")
        check_writable_directory(Path(path or ".").parent, f"cannot write {path}")
    if corrected and not options.rates:
        raise NegstanceError(f"--method {method} needs --rates LABELLED.jsonl")
    frame, skipped = read_predictions(options)
    rates = read_rates(options.rates, frame, options.text_column) if options.rates else None
    table = summarize(frame, options, rates)
    text = format_table(table, options.output, options.by, options.time)
    image = draw(table, method, options.by, options.time) if options.plot else None
    write_text_atomic(options.output, text)
    if image is not None:
        write_text_atomic(options.plot, image)
    print(f"wrote {options.output}: {len(table)} cells, {table['n'].sum()} {options.unit}s")
    labelled = f"{len(rates[0])} labelled sentences" if rates else "--rates LABELLED.jsonl"
    if corrected:
        print(f"{method.upper()}: corrected by the error rates of {labelled}, in the intervals too")
    else:
        print(f"{method.upper()}: not corrected (--method acc/pacc would use {labelled})")
    if table["few"].any():
        print(f"marked few (under {options.min_units} units): {table['few'].sum()} cells")
    if skipped:
        print(f"skipped {skipped} rows whose {options.time} is no ISO date (--skip_bad_dates)")
    return 0
