"""summarize.py: stance shares per group and period, the corrections, intervals, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from negstance.model.labels import LABELS
from negstance.train.coverage import summarize_main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Rows: true stance; columns: P(predicted stance | true), in LABELS order.
CONFUSION = np.array([[0.70, 0.05, 0.25], [0.10, 0.60, 0.30], [0.10, 0.10, 0.80]])
TRUE_SHARES = np.array([0.6, 0.1, 0.3])


def prediction(label: str, **fields: object) -> dict:
    probs = {f"prob_{name}": 0.8 if name == label else 0.1 for name in LABELS}
    return {**fields, "label": label, "score": 0.8, **probs}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_table(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def synthetic(count: int, shares: np.ndarray, prefix: str) -> tuple[list[dict], list[int]]:
    """``count`` units whose true stances have ``shares``, predicted with CONFUSION's rates."""
    gold, predicted = [], []
    for true, share in enumerate(shares):
        made = np.round(CONFUSION[true] * round(share * count)).astype(int)
        gold += [true] * int(made.sum())
        predicted += [label for label, times in enumerate(made) for _ in range(times)]
    rows = [prediction(LABELS[label], text=f"{prefix} {i}") for i, label in enumerate(predicted)]
    return rows, gold


def test_acc_recovers_the_true_shares_where_cc_does_not(tmp_path: Path) -> None:
    corpus, corpus_gold = synthetic(3000, TRUE_SHARES, "corpus")
    # The labelled random sample: part of the corpus, its own mix, the same error rates.
    sample, gold = synthetic(600, np.array([1, 1, 1]) / 3, "sample")
    truth = np.bincount(corpus_gold + gold) / len(corpus_gold + gold)
    answers = [{"text": r["text"], "label": LABELS[t]} for r, t in zip(sample, gold, strict=True)]
    predictions = write_jsonl(tmp_path / "pred.jsonl", corpus + sample)
    labelled = write_jsonl(tmp_path / "labelled.jsonl", [*answers, {"id": "x", "label": None}])
    for method, error in [("cc", (0.08, 1)), ("acc", (0, 0.01)), ("pacc", (0, 0.01))]:
        output = tmp_path / f"{method}.jsonl"
        argv = ["--input", str(predictions), "--output", str(output), "--method", method]
        assert summarize_main([*argv, "--rates", str(labelled), "--bootstrap", "200"]) == 0
        (row,) = read_table(output)
        estimate = np.array([row[label] for label in LABELS])
        assert error[0] < np.abs(estimate - truth).max() < error[1], (method, estimate, truth)
        low, high = ([row[f"{label}_{end}"] for label in LABELS] for end in ("low", "high"))
        assert np.all((low <= truth) & (truth <= high)) == (method != "cc"), (method, row)


DATED = [
    ("2025-03-03", "A", "favor"),  # a Monday
    ("2025-03-09T23:30:00", "A", "against"),  # the Sunday of the same week
    ("2025-03-10", "A", "favor"),
    ("2025-04-01T10:00:00+02:00", "B", "none"),
    ("2025-04-01", "B", "favor"),
]


@pytest.mark.parametrize(
    ("freq", "cells"),
    [  # outlet, period, n; in order
        ("day", "A 2025-03-03 1, A 2025-03-09 1, A 2025-03-10 1, B 2025-04-01 2"),
        ("week", "A 2025-03-03 2, A 2025-03-10 1, B 2025-03-31 2"),
        ("month", "A 2025-03 3, B 2025-04 2"),
    ],
)
def test_groups_and_bins_dates(tmp_path: Path, freq: str, cells: str) -> None:
    rows = [prediction(label, date=date, outlet=outlet) for date, outlet, label in DATED]
    predictions, output = write_jsonl(tmp_path / "pred.jsonl", rows), tmp_path / "out.csv"
    argv = ["--input", str(predictions), "--output", str(output), "--by", "outlet"]
    assert summarize_main([*argv, "--time", "date", "--freq", freq, "--bootstrap", "100"]) == 0
    table = list(csv.DictReader(output.read_text(encoding="utf-8").splitlines()))
    assert ", ".join(f"{row['outlet']} {row['period']} {row['n']}" for row in table) == cells
    assert all(row["few"] == "True" for row in table)
    if freq == "month":  # A: favor, against, favor
        assert float(table[0]["favor"]) == pytest.approx(2 / 3, abs=1e-3)
        assert float(table[0]["net"]) == pytest.approx(1 / 3, abs=1e-3)


def test_a_document_counts_once_and_one_unit_cells_have_no_interval(tmp_path: Path) -> None:
    rows = [prediction("favor", kind="sentence", doc_row=0) for _ in range(9)]
    rows += [prediction("favor", kind="document", doc_row=0)]  # a summary row: not counted
    rows += [prediction("against", kind="sentence", doc_row=1)]
    predictions = write_jsonl(tmp_path / "pred.jsonl", rows)
    shares = {}
    for unit in ("sentence", "document"):
        output = tmp_path / f"{unit}.jsonl"
        argv = ["--input", str(predictions), "--output", str(output), "--unit", unit]
        assert summarize_main([*argv, "--by", "doc_row", "--bootstrap", "100"]) == 0
        *_, last = read_table(output)
        assert last["n"] == 1 and last["few"] and last["favor_low"] is None
        assert summarize_main([*argv, "--overwrite", "--bootstrap", "100"]) == 0
        (row,) = read_table(output)
        shares[unit] = row["favor"]
    assert shares == {"sentence": pytest.approx(0.9), "document": pytest.approx(0.5)}


@pytest.mark.parametrize("time", [None, "date"])
def test_the_chart_is_a_png(tmp_path: Path, time: str | None) -> None:
    rows = [prediction(label, date=date, outlet=outlet) for date, outlet, label in DATED * 3]
    predictions, chart = write_jsonl(tmp_path / "pred.jsonl", rows), tmp_path / "stance.png"
    argv = ["--input", str(predictions), "--output", str(tmp_path / "t.md"), "--by", "outlet"]
    argv += ["--plot", str(chart), "--bootstrap", "100"] + (["--time", time] if time else [])
    assert summarize_main(argv) == 0
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert (tmp_path / "t.md").read_text(encoding="utf-8").startswith("| outlet |")


BAD_DATES = [prediction("none", date=day) for day in ("2025-03-01", "next week")]
BAD = {
    "not_predictions": ([{"text": "Talks resumed.", "date": "2025-03-01"}], [], "pred.jsonl"),
    "missing_by": ([prediction("none", date="2025-03-01")], ["--by", "outlet"], "outlet"),
    "missing_time": ([prediction("none")], ["--time", "date"], "date"),
    "bad_date": (BAD_DATES, ["--time", "date"], "line 2"),
    "acc_without_rates": ([prediction("none")], ["--method", "acc"], "--rates"),
    "bad_rates_label": ([prediction("none", text="a")], ["--rates", "{rates}"], "line 2"),
    "existing_output": ([prediction("none")], ["--output", "{pred}"], "pred.jsonl"),
    "bad_json": (None, [], "line 2"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    rows, extra, noun = BAD[case]
    predictions = tmp_path / "pred.jsonl"
    if rows is None:
        predictions.write_text(json.dumps(prediction("none")) + "\n{oops\n", encoding="utf-8")
    else:
        write_jsonl(predictions, rows)
    rates = write_jsonl(tmp_path / "r.jsonl", [{"text": "a", "label": "none"}, {"label": "pro"}])
    extra = [item.format(rates=rates, pred=predictions) for item in extra]
    output, chart = tmp_path / "out.csv", tmp_path / "out.png"
    before = predictions.read_bytes()
    argv = ["--input", str(predictions), "--output", str(output), "--plot", str(chart), *extra]
    assert summarize_main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and noun in message, message
    assert not output.exists() and not chart.exists() and predictions.read_bytes() == before
    if case == "bad_date":  # skipped and counted instead, on request
        assert summarize_main([*argv, "--skip_bad_dates", "--bootstrap", "100"]) == 0
        assert "skipped 1 " in capsys.readouterr().out and output.exists()


def test_reads_what_predict_writes_in_documents_mode(tmp_path: Path, tiny_checkpoint_dir) -> None:
    from negstance.model.cli import predict_main

    articles = [  # two articles of outlet A in March, one of B
        {"text": " ".join(f"Talk {o}{n}-{i} resumed." for i in range(n)), "date": d, "outlet": o}
        for d, o, n in [("2025-03-03", "A", 3), ("2025-03-04", "A", 1), ("2025-03-20", "B", 2)]
    ]
    articles, predictions = write_jsonl(tmp_path / "articles.jsonl", articles), tmp_path / "p.csv"
    argv = ["--model", str(tiny_checkpoint_dir), "--input", str(articles), "--documents"]
    assert predict_main([*argv, "--output", str(predictions), "--device", "cpu"]) == 0
    rows = csv.DictReader(predictions.read_text(encoding="utf-8").splitlines())
    sentences = [row for row in rows if row["kind"] == "sentence"]
    answers = [{"text": row["text"], "label": LABELS[i % 3]} for i, row in enumerate(sentences)]
    rates, output = write_jsonl(tmp_path / "a.jsonl", answers), tmp_path / "out.jsonl"
    argv = ["--input", str(predictions), "--output", str(output), "--by", "outlet", "--time"]
    argv += ["date", "--unit", "document", "--rates", str(rates), "--method", "acc"]
    assert summarize_main([*argv, "--bootstrap", "100"]) == 0
    table = read_table(output)
    assert [(row["outlet"], row["period"], row["n"]) for row in table] == [
        ("A", "2025-03", 2),
        ("B", "2025-03", 1),
    ]
