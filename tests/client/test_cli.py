import pytest
from click.testing import CliRunner

from builder.serving.server import free_port
from client.cli import main


def test_sweep_against_nothing_is_a_clear_error(tmp_path):
    url = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        main, ["sweep", "--url", url, "--model", "m", "--out", str(tmp_path), "--measurement-interval", "500"]
    )
    assert result.exit_code == 1
    assert "cannot reach Triton" in result.output and "Traceback" not in result.output


def test_sweep_with_unwritable_output(tmp_path):
    result = CliRunner().invoke(main, ["sweep", "--model", "m", "--out", "/proc/nope"])
    assert result.exit_code == 1 and "cannot write results" in result.output


def test_bad_lists_are_usage_errors():
    result = CliRunner().invoke(main, ["sweep", "--model", "m", "--batch-sizes", "1,x"])
    assert result.exit_code == 2 and "comma-separated" in result.output


def test_report_and_compare_commands_on_stored_records(tmp_path):
    from client.records import ModelTimes, PointRecord, ResultStore

    store = ResultStore(tmp_path / "results")
    store.ensure_writable()
    for variant, speed in (("fp32", 100.0), ("fp16", 180.0)):
        for concurrency in (1, 2, 4):
            store.append(
                PointRecord(
                    model="m",
                    protocol="grpc",
                    generator="tritonbench",
                    mode="concurrency",
                    batch_size=1,
                    seq_len=32,
                    concurrency=concurrency,
                    request_rate=None,
                    arrival=None,
                    variant=variant,
                    requests=100,
                    errors=0,
                    duration_s=1.0,
                    throughput_infer_per_s=speed * concurrency,
                    throughput_seq_per_s=speed * concurrency,
                    throughput_tokens_per_s=speed * concurrency * 32,
                    latency_avg_ms=10.0,
                    latency_p50_ms=9.0,
                    latency_p90_ms=12.0,
                    latency_p95_ms=13.0,
                    latency_p99_ms=15.0 * concurrency,
                    latency_max_ms=40.0,
                    stable=True,
                    trials=3,
                    server={"m": ModelTimes(100, 50, 10.0, 1.0, 900.0, 2.0)},
                )
            )
    result = CliRunner().invoke(
        main, ["report", str(tmp_path / "results"), "--out", str(tmp_path / "report"), "--baseline", "fp32"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "report.md").is_file() and list((tmp_path / "report").glob("*.png"))
    compared = CliRunner().invoke(main, ["compare", str(tmp_path / "results"), "--baseline", "fp32"])
    assert compared.exit_code == 0 and "1.80" in compared.output
    by_engine = CliRunner().invoke(main, ["compare", str(tmp_path / "results"), "--by", "engine"])  # users' scripts
    assert by_engine.exit_code == 0 and "Baseline generator: **tritonbench**" in by_engine.output
    assert "--by engine is deprecated. use --by generator" in by_engine.output
    missing = CliRunner().invoke(main, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "no results.jsonl" in missing.output


def test_study_prints_its_example_and_refuses_what_it_cannot_do_here(tmp_path):
    from pathlib import Path

    from client.experiments.study_config import default_config, parse_config

    example = CliRunner().invoke(main, ["study", "--example"])
    assert example.exit_code == 0 and parse_config(example.output, Path.cwd()) == default_config()
    assert CliRunner().invoke(main, ["study"]).exit_code == 2  # no CONFIG
    config = tmp_path / "study.toml"
    config.write_text(example.output)
    # the default serves on the h200 profile's GPU: on this CPU machine the plan refuses before anything runs
    planned = CliRunner().invoke(main, ["study", str(config), "--dry-run", "--out", str(tmp_path / "out")])
    assert planned.exit_code == 1 and "this host has none" in planned.output and "Traceback" not in planned.output
    report = CliRunner().invoke(main, ["study", str(config), "--report-only", "--out", str(tmp_path / "out")])
    assert report.exit_code == 1 and "no points yet" in report.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:99999", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("127.0.0.1", "is not host:port"),
        ("http://127.0.0.1:8001", "is not host:port"),
        (":8001", "is not host:port"),
    ],
)
def test_a_url_without_a_valid_port_is_a_usage_error(tmp_path, url, message):
    result = CliRunner().invoke(main, ["sweep", "--url", url, "--model", "m", "--out", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "results.jsonl").exists()  # refused before anything was dialled or written


def test_engine_still_names_the_load_generator_with_a_deprecation_message(tmp_path):
    url = f"127.0.0.1:{free_port()}"
    old = CliRunner().invoke(main, ["sweep", "--url", url, "--model", "m", "--out", str(tmp_path), "--engine",
                                    "perf_analyzer", "--measurement-interval", "500"])  # fmt: skip
    assert old.exit_code == 1 and "cannot reach Triton" in old.output  # accepted, then dialled
    assert "The option 'engine' is deprecated. use --generator" in old.output
    both = CliRunner().invoke(
        main, ["sweep", "--model", "m", "--generator", "tritonbench", "--engine", "perf_analyzer"]
    )
    assert both.exit_code == 2 and "disagree" in both.output
    same = CliRunner().invoke(main, ["sweep", "--url", url, "--model", "m", "--out", str(tmp_path),
                                     "--generator", "perf_analyzer", "--engine", "perf_analyzer"])  # fmt: skip
    assert same.exit_code == 1 and "cannot reach Triton" in same.output
    assert "perf_analyzer" in CliRunner().invoke(main, ["sweep", "--help"]).output


def test_perf_analyzer_is_refused_behind_a_balancer_and_over_several_urls(tmp_path):
    from balancers import idle_balancer

    with idle_balancer(tmp_path / "nginx") as (http_port, _, _):
        balancer = f"127.0.0.1:{http_port}"
        common = ["--model", "m", "--protocol", "http", "--generator", "perf_analyzer", "--out", str(tmp_path)]
        behind = CliRunner().invoke(main, ["sweep", "--url", balancer, *common])
        also = balancer.replace("127.0.0.1", "localhost")
        several = CliRunner().invoke(main, ["sweep", "--url", balancer, "--url", also, *common])
    assert behind.exit_code == 1 and f"but {balancer} is a balancer" in behind.output, behind.output
    assert several.exit_code == 1 and "but several URLs are given" in several.output, several.output
    assert "use --generator tritonbench" in behind.output and "Traceback" not in behind.output + several.output


def test_every_repeated_url_is_checked(tmp_path):
    result = CliRunner().invoke(main, ["sweep", "--url", "127.0.0.1:8001", "--url", "127.0.0.1:0", "--model", "m"])
    assert result.exit_code == 2 and "'127.0.0.1:0': the port must be a number from 1 to 65535" in result.output
    twice = CliRunner().invoke(main, ["sweep", "--url", "127.0.0.1:1", "--url", "127.0.0.1:1", "--model", "m",
                                      "--out", str(tmp_path)])  # fmt: skip
    assert twice.exit_code == 1 and "a URL is given twice" in twice.output
