"""The inference benchmark: its sentences, its FLOP count and a --quick run of the script."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from benchmarking import news_like_sentences, peak_matmul_gflops, useful_flops
from conftest import load_script

REPO = Path(__file__).resolve().parents[1]


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
    with pytest.raises(ValueError):
        news_like_sentences(["", "  "], 3)


def test_useful_flops_counts_matrix_products_and_attention(tiny_checkpoint_dir):
    from negstance.model.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_checkpoint_dir)
    config = model.config.encoder_config()
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = 4 * hidden * hidden + 4 * hidden + 2 * hidden * inner + inner + hidden + 4 * hidden
    head = hidden * 3 + 3
    non_embedding = layers * per_layer + head
    expected = 2 * non_embedding * (10 + 20) + 4 * layers * hidden * (10**2 + 20**2)
    assert useful_flops(model, [10, 20]) == pytest.approx(expected)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_peak_matmul_is_a_positive_rate_in_each_arithmetic(precision):
    assert peak_matmul_gflops(size=128, repeats=1, precision=precision) > 0


def test_peak_matmul_refuses_an_unknown_arithmetic():
    with pytest.raises(ValueError, match="fp32, bf16 or int8"):
        peak_matmul_gflops(size=8, repeats=1, precision="fp16")


def test_quick_run_writes_a_complete_table(tmp_path, capsys):
    output = tmp_path / "bench.json"
    assert load_script("bench_inference").main(["--quick", "--output", str(output)]) == 0
    report = json.loads(output.read_text(encoding="utf-8"))
    methods = [(row["method"], row["precision"]) for row in report["rows"]]
    assert methods[0] == ("transformers pipeline", "fp32")
    for precision in ("fp32", "bf16", "int8", "auto"):
        assert ("negstance", precision) in methods
    by_method = dict(zip(methods, report["rows"], strict=True))
    assert by_method[("negstance", "fp32")]["agreement_with_fp32"] == 1.0
    assert by_method[("negstance", "fp32")]["max_probability_difference"] == 0.0
    assert by_method[("transformers pipeline", "fp32")]["ratio_to_pipeline"] == 1.0
    for row in report["rows"]:
        assert row["sentences_per_second"] > 0 and row["utilisation"] > 0
        assert len(row["round_seconds"]) == 1
        # Each row's utilisation is against the peak of the arithmetic it ran in.
        peak = report["peak_gflops"][row["arithmetic"]]
        assert row["utilisation"] == pytest.approx(row["gflops_per_second"] / peak)
    assert by_method[("negstance", "int8")]["arithmetic"] == "int8"
    assert by_method[("negstance", "bf16")]["arithmetic"] == "bf16"
    assert by_method[("transformers pipeline", "fp32")]["arithmetic"] == "fp32"
    assert set(report["peak_gflops"]) == {"fp32", "bf16", "int8"}
    assert report["sentences"] == 64
    printed = capsys.readouterr().out
    assert "| transformers pipeline | fp32 |" in printed
    assert "default precision (auto" in printed

    markdown = tmp_path / "bench.md"
    assert (
        load_script("bench_inference").main(
            ["--quick", "--output", str(markdown), "--precisions", "fp32"]
        )
        == 0
    )
    assert markdown.read_text(encoding="utf-8").startswith("| method | precision |")


def test_unknown_precision_is_a_clean_error(capsys):
    assert load_script("bench_inference").main(["--quick", "--precisions", "fp16"]) == 2
    assert "precision must be one of" in capsys.readouterr().err


def test_a_bad_output_path_is_refused_before_any_timing(tmp_path, capsys, monkeypatch):
    script = load_script("bench_inference")

    def fail_if_called(*args, **kwargs):
        raise AssertionError("the benchmark ran before --output was checked")

    monkeypatch.setattr(script, "run_benchmark", fail_if_called)
    assert script.main(["--quick", "--output", str(tmp_path / "nodir" / "x.md")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --output: directory {tmp_path / 'nodir'} does not exist (create it first)"
    )
    assert script.main(["--quick", "--output", str(tmp_path / "x.txt")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --output must end in .json or .md, not {str(tmp_path / 'x.txt')!r}"
    )


def test_memory_benchmark_quick_run_reports_each_size(tmp_path, capsys):
    output = tmp_path / "memory.json"
    assert load_script("bench_memory").main(["--quick", "--output", str(output)]) == 0
    report = json.loads(output.read_text(encoding="utf-8"))
    assert [result["lines"] for result in report["results"]] == [500, 5000]
    for result in report["results"]:
        # predict.py loads torch and transformers: well over 100 MB.
        assert 100 < result["peak_rss_mb"] < 4000
        assert result["summary"].startswith("wrote ")
    assert "5000 lines: peak RSS" in capsys.readouterr().out


def test_memory_benchmark_reports_a_failing_predict_in_one_line(tmp_path, capsys):
    missing = tmp_path / "no-such-checkpoint"
    assert load_script("bench_memory").main(["--lines", "3", "--model", str(missing)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: predict.py failed (exit 2): error: ")
    assert "\n" not in error


def test_peak_rss_is_the_commands_own_not_this_processs(tmp_path):
    import sys

    peak_rss_of = load_script("bench_memory").peak_rss_of
    # This test process has torch loaded (hundreds of MB); a bare interpreter does not,
    # and one that allocates 300 MB must show them.
    exit_code, bare_mb, _ = peak_rss_of([sys.executable, "-c", "print('hi')"])
    assert exit_code == 0 and bare_mb < 60
    allocate = "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); raise SystemExit(3)"
    exit_code, big_mb, _ = peak_rss_of([sys.executable, "-c", allocate])
    assert exit_code == 3 and big_mb > 300
