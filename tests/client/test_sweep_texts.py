"""A sweep over given texts against the real server: their own lengths, in their real proportions."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from builder.common.tokenizer import load_tokenizer
from client.cli import main
from client.generators.measure import MeasurementConfig
from client.points import MIXED
from client.records import ResultStore
from client.sweep import SweepConfig, run_sweep
from client.targets.texts import builtin_mix, texts_digest, token_lengths
from client.transport.text_client import ClientConfig

pytestmark = pytest.mark.slow
FAST = MeasurementConfig(window_s=0.5, stability_pct=50, stable_windows=2, max_trials=4, warmup_s=0.2)


def test_a_sweep_over_texts_reports_their_mean_length(server, served_repo, tmp_path):
    texts = builtin_mix(0.75, 40, seed=2)
    config = SweepConfig(ClientConfig(server.grpc_url, "minilm"), (1, 4), (MIXED,), concurrency=(2,),
                         measurement=FAST, texts=texts)  # fmt: skip
    records = run_sweep(config, ResultStore(tmp_path), echo=lambda _: None, repo=served_repo, progress=False)
    lengths = token_lengths(load_tokenizer(served_repo / "minilm_tokenizer/1/tokenizer.json"), texts, 256)
    assert max(lengths) > 4 * min(lengths)  # short and long texts in one request stream
    for record in records:
        assert record.seq_len == MIXED and record.errors == 0 and record.requests > 0
        assert record.throughput_tokens_per_s == pytest.approx(record.throughput_seq_per_s * sum(lengths) / 40)
        assert record.settings["texts"] == 40 and record.settings["texts_digest"] == texts_digest(texts)
    assert [r.batch_size for r in records] == [1, 4]


def test_sweep_cli_takes_a_texts_file_and_refuses_an_empty_one(server, served_repo, tmp_path):
    base = ["sweep", "--url", server.grpc_url, "--model", "minilm", "--repo", str(served_repo), "--no-progress",
            "--measurement-interval", "400", "--stability-percentage", "50", "--stable-windows", "2",
            "--warmup", "0.2"]  # fmt: skip
    texts = tmp_path / "texts.txt"
    texts.write_text("a short one\n" + " ".join(["long"] * 150) + "\nanother short text\n")
    result = CliRunner().invoke(main, [*base, "--texts", str(texts), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    (record,) = ResultStore(tmp_path / "a").load()
    assert record.seq_len == MIXED and record.settings["texts"] == 3
    both = CliRunner().invoke(main, [*base, "--texts", str(texts), "--seq-lens", "32", "--out", str(tmp_path / "b")])
    assert both.exit_code == 2 and "leave out --seq-lens" in both.output
    texts.write_text("\n\n")
    empty = CliRunner().invoke(main, [*base, "--texts", str(texts), "--out", str(tmp_path / "c")])
    assert empty.exit_code == 1 and "all blank" in empty.output and "Traceback" not in empty.output
