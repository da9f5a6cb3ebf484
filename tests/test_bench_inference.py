"""The benchmarks: their sentences, FLOP count, a --quick inference run and a small memory run."""

from __future__ import annotations

import json
import statistics
import sys

import pytest
from benchmarking import news_like_sentences, peak_matmul_gflops, useful_flops
from conftest import error_line, load_script


def test_news_like_sentences_are_deterministic_with_a_long_tail(seed_sentences):
    seeds = [row["text"] for row in seed_sentences]
    sentences = news_like_sentences(seeds, 2000, seed=3)
    assert sentences == news_like_sentences(seeds, 2000, seed=3)
    assert sentences != news_like_sentences(seeds, 2000, seed=4)
    words = [len(sentence.split()) for sentence in sentences]
    seed_words = [len(text.split()) for text in seeds]
    # Joined sentences lengthen the tail past any seed; fragments shorten the head.
    assert max(words) > max(seed_words) + 10
    assert statistics.mean(seed_words) < statistics.mean(words) < 1.5 * statistics.mean(seed_words)
    assert sum(sentence not in seeds for sentence in sentences) > 400


def test_useful_flops_counts_matrix_products_and_attention(tiny_checkpoint_dir):
    from negstance.model.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_checkpoint_dir)
    config = model.config.encoder_config()
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = 4 * hidden * hidden + 4 * hidden + 2 * hidden * inner + inner + hidden + 4 * hidden
    non_embedding = layers * per_layer + hidden * 3 + 3
    expected = 2 * non_embedding * (10 + 20) + 4 * layers * hidden * (10**2 + 20**2)
    assert useful_flops(model, [10, 20]) == pytest.approx(expected)
    with pytest.raises(ValueError):
        peak_matmul_gflops(size=8, repeats=1, precision="fp16")


def test_quick_run_writes_a_complete_table(tmp_path):
    output = tmp_path / "bench.json"
    assert load_script("bench_inference").main(["--quick", "--output", str(output)]) == 0
    report = json.loads(output.read_text(encoding="utf-8"))
    rows = {(row["method"], row["precision"]): row for row in report["rows"]}
    assert report["rows"][0]["method"] == "transformers pipeline"
    assert {("negstance", precision) for precision in ("fp32", "bf16", "int8", "auto")} <= set(rows)
    assert rows["negstance", "fp32"]["agreement_with_fp32"] == 1.0
    assert rows["negstance", "fp32"]["max_probability_difference"] == 0.0
    assert rows["negstance", "int8"]["arithmetic"] == "int8"
    assert rows["negstance", "bf16"]["max_probability_difference"] < 0.05
    for row in report["rows"]:
        # Each row's utilisation is against the peak of the arithmetic it ran in.
        peak = report["peak_gflops"][row["arithmetic"]]
        assert row["utilisation"] == pytest.approx(row["gflops_per_second"] / peak)


def test_bad_options_are_refused_before_any_timing(tmp_path, capsys, monkeypatch):
    script = load_script("bench_inference")
    monkeypatch.setattr(script, "run_benchmark", lambda *args, **kwargs: pytest.fail("it ran"))
    for options, noun in (
        (["--precisions", "fp16"], "--precisions"),
        (["--output", str(tmp_path / "nodir" / "x.md")], "nodir"),
        (["--output", str(tmp_path / "x.txt")], "x.txt"),
    ):
        assert noun in error_line(script.main, ["--quick", *options], capsys)


def test_memory_benchmark_measures_predict_in_its_own_process(tmp_path, capsys):
    script = load_script("bench_memory")
    output = tmp_path / "memory.json"
    assert script.main(["--lines", "300", "--chunk_size", "64", "--output", str(output)]) == 0
    (result,) = json.loads(output.read_text(encoding="utf-8"))["results"]
    # Every line classified, by a process that loaded torch: well over 100 MB.
    assert result["lines"] == 300 and result["summary"].startswith("wrote ")
    assert 100 < result["peak_rss_mb"] < 4000
    line = error_line(script.main, ["--lines", "3", "--chunk_size", "0"], capsys)
    assert "predict.py failed" in line and "chunk_size" in line


def test_peak_rss_is_the_commands_own_not_this_processs():
    peak_rss_of = load_script("bench_memory").peak_rss_of
    # This test process has torch loaded (hundreds of MB); a bare interpreter does not,
    # and one that allocates 300 MB must show them.
    exit_code, bare_mb, _ = peak_rss_of([sys.executable, "-c", "print('hi')"])
    assert exit_code == 0 and bare_mb < 60
    allocate = "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); raise SystemExit(3)"
    exit_code, big_mb, _ = peak_rss_of([sys.executable, "-c", allocate])
    assert exit_code == 3 and big_mb > 300
