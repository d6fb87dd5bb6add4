import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg
from PIL import Image

from builder.common.errors import OutputError, UserError
from client.records import ModelTimes, PointRecord, ResultStore, load_records
from client.report.charts import wants_log
from client.report.report import write_report
from client.report.sweep_charts import plot_memory, plot_speedup
from client.report.tables import SCALAR_COLUMNS, compare_table, markdown_table, speedups, write_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COST = {"fp32": 1.0, "fp16": 0.55}  # relative compute time of one request
BATCHES, LENGTHS, CONCURRENCY = (1, 8), (32, 128), (1, 2, 4)
CHARTS = {
    "throughput_vs_concurrency.png",
    "latency_vs_batch.png",
    "latency_vs_seq_len.png",
    "latency_throughput_p99.png",
    "latency_throughput_p50.png",
    "speedup.png",
    "memory.png",
}


def make_record(variant: str, batch: int, seq_len: int, concurrency: int) -> PointRecord:
    """A point shaped like a real sweep: latency grows with work and queueing, Little's law for throughput."""
    service_ms = COST[variant] * (2.0 + 0.04 * batch * seq_len)
    p50 = service_ms * (1 + 0.6 * (concurrency - 1))
    infer_per_s = concurrency * 1000.0 / (p50 * 1.1)
    duration_s = 2.0
    gpu = {"utilization": 35.0 + 10 * concurrency, "memory_used_mb": 900 * COST[variant] + 2.5 * batch * seq_len}
    server = {
        "minilm_tokenizer": ModelTimes(
            int(infer_per_s * duration_s * batch), int(infer_per_s * duration_s), 12.5, 3, 210.0, 4
        ),
        "minilm_model": ModelTimes(
            int(infer_per_s * duration_s * batch), int(infer_per_s * duration_s / 2), 80.25, 10.0, service_ms * 700, 7.5
        ),
    }
    return PointRecord(
        model="minilm",
        protocol="grpc",
        generator="tritonbench",
        mode="concurrency",
        batch_size=batch,
        seq_len=seq_len,
        concurrency=concurrency,
        request_rate=None,
        arrival=None,
        variant=variant,
        requests=int(infer_per_s * duration_s),
        errors=1 if (variant, batch, seq_len, concurrency) == ("fp32", 8, 128, 4) else 0,
        duration_s=duration_s,
        throughput_infer_per_s=infer_per_s,
        throughput_seq_per_s=infer_per_s * batch,
        throughput_tokens_per_s=infer_per_s * batch * seq_len,
        latency_avg_ms=p50 * 1.1,
        latency_p50_ms=p50,
        latency_p90_ms=p50 * 1.3,
        latency_p95_ms=p50 * 1.45,
        latency_p99_ms=p50 * 1.8 + 0.123456789,
        latency_max_ms=p50 * 2.2,
        stable=concurrency != 4 or batch != 1,
        trials=3,
        server=server,
        gpu=gpu if batch == 8 else {},  # only some points carry GPU numbers
        host="bench-1",
        timestamp=f"2026-11-22T10:{batch:02d}:{concurrency:02d}",
        versions={"tritonserver": "2.51.0", "onnxruntime": "1.31.1"},
        settings={"duration_s": duration_s, "batch_sizes": list(BATCHES)},
    )


@pytest.fixture
def records(tmp_path: Path) -> list[PointRecord]:
    """The grid written through the store and read back, as a report would get it."""
    store = ResultStore(tmp_path / "sweep")
    store.ensure_writable()
    for variant in COST:
        for batch in BATCHES:
            for seq_len in LENGTHS:
                for concurrency in CONCURRENCY:
                    store.append(make_record(variant, batch, seq_len, concurrency))
    loaded = load_records([tmp_path / "sweep"])
    assert len(loaded) == 24
    return loaded


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 600 and image.height >= 400, (path, image.size)
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] >= 400
    assert float(np.std(pixels[..., :3])) > 0.05, f"{path} looks blank"


def test_report_writes_csv_markdown_and_every_chart(records, tmp_path):
    files = write_report(records, tmp_path / "report", baseline="fp32")
    assert files.skipped == {}
    assert {p.name for p in files.charts} == CHARTS
    for chart in files.charts:
        assert chart.parent == tmp_path / "report"
        assert_png(chart)
    text = files.markdown.read_text()
    for name in CHARTS:
        assert f"]({name})" in text
    assert "[results.csv](results.csv)" in text and files.csv.is_file()
    assert "24 points" in text and "Baseline variant: **fp32**" in text
    assert "of 24 points, 4 not stable across trials, 1 with errors" in text


def test_csv_has_every_column_and_round_trips_numbers(records, tmp_path):
    path = write_csv(records, tmp_path / "results.csv")
    with path.open(newline="") as source:
        reader = csv.DictReader(source)
        rows = list(reader)
        header = reader.fieldnames
    assert header[: len(SCALAR_COLUMNS)] == list(SCALAR_COLUMNS)
    assert "server" not in header and "gpu" not in header
    for name in ("compute_infer_us", "queue_us", "inference_count"):
        assert f"server.minilm_model.{name}" in header and f"server.minilm_tokenizer.{name}" in header
    assert {"gpu.memory_used_mb", "gpu.utilization", "versions.tritonserver", "settings.batch_sizes"} <= set(header)
    assert len(rows) == len(records) == 24
    for row, record in zip(rows, records, strict=True):
        assert (row["model"], row["variant"], int(row["batch_size"])) == (
            record.model,
            record.variant,
            record.batch_size,
        )
        assert float(row["throughput_seq_per_s"]) == record.throughput_seq_per_s
        assert float(row["latency_p99_ms"]) == record.latency_p99_ms
        assert int(row["concurrency"]) == record.concurrency and row["request_rate"] == ""
        infer_us = record.server["minilm_model"].compute_infer_us
        assert float(row["server.minilm_model.compute_infer_us"]) == infer_us
        memory = record.gpu.get("memory_used_mb")
        assert row["gpu.memory_used_mb"] == ("" if memory is None else repr(memory))
        assert row["settings.batch_sizes"] == "[1, 8]" and row["stable"] == str(record.stable)


def test_markdown_table_has_one_sorted_row_per_record(records):
    lines = markdown_table(records).splitlines()
    assert lines[0].startswith("| model | variant | generator | protocol | mode | batch | seq_len | concurrency |")
    assert "| tokens/s | p50 ms | p90 ms | p95 ms | p99 ms | errors | stable |" in lines[0]
    body = [line.split(" | ") for line in lines[2:]]
    assert len(body) == len(records)
    order = [(cells[1], int(cells[5]), int(cells[6]), int(cells[7])) for cells in body]
    assert order == sorted(order)
    record = next(r for r in records if (r.variant, r.batch_size, r.seq_len, r.concurrency) == ("fp32", 8, 128, 4))
    row = f"| minilm | fp32 | tritonbench | grpc | concurrency | 8 | 128 | 4 | {record.throughput_infer_per_s:.1f} |"
    assert any(line.startswith(row) for line in lines)
    assert any(line.endswith(f"| {record.latency_p99_ms:.2f} | 1 | yes |") for line in lines)


def test_speedups_are_the_throughput_ratios_at_matching_points(records):
    found = speedups(records, baseline="fp32")
    assert len(found) == 12
    fp32 = {(r.batch_size, r.seq_len, r.concurrency): r for r in records if r.variant == "fp32"}
    for speedup in found:
        point = (speedup.record.batch_size, speedup.record.seq_len, speedup.record.concurrency)
        assert speedup.record.variant == "fp16" and speedup.reference is not None
        assert speedup.reference.key == fp32[point].key
        assert speedup.ratio == pytest.approx(speedup.record.throughput_seq_per_s / fp32[point].throughput_seq_per_s)
        assert speedup.ratio == pytest.approx(1 / COST["fp16"])  # the grid's cost model, checked independently

    table = compare_table(records, baseline="fp32")
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    header = lines[0].strip("| ").split(" | ")
    assert "fp16 speedup" in header and "fp32 speedup" not in header
    rows = [line.strip("| ").split(" | ") for line in lines[1:] if not line.startswith("|---")]
    assert len(rows) == 12
    for cells in rows:
        point = (int(cells[0]), int(cells[1]), int(cells[2]))
        fp16 = next(s for s in found if (s.record.batch_size, s.record.seq_len, s.record.concurrency) == point)
        assert cells[header.index("fp16 speedup")] == f"{fp16.ratio:.2f}×"
        p99 = fp16.record.latency_p99_ms / fp16.reference.latency_p99_ms
        assert cells[header.index("fp16 p99 ratio")] == f"{p99:.2f}×"
        assert cells[header.index("fp32 seq/s")] == f"{fp32[point].throughput_seq_per_s:.1f}"


def test_compare_matches_variants_deployed_under_their_own_model_names(records):
    renamed = [dataclasses.replace(r, model=f"minilm_{r.variant}") for r in records]
    found = speedups(renamed, baseline="fp16")
    assert len(found) == 12 and all(s.record.variant == "fp32" for s in found)
    assert all(s.ratio == pytest.approx(COST["fp16"]) for s in found)


def test_memory_chart_is_skipped_with_a_reason_without_gpu_memory(records, tmp_path):
    cpu_only = [dataclasses.replace(r, gpu={}) for r in records]
    chart = plot_memory(cpu_only, tmp_path / "memory.png")
    assert not chart.drawn and "GPU memory" in chart.reason and not chart.path.exists()

    files = write_report(cpu_only, tmp_path / "report")
    assert set(files.skipped) == {"memory.png"} and "no record has GPU memory" in files.skipped["memory.png"]
    assert not (tmp_path / "report" / "memory.png").exists()
    assert {p.name for p in files.charts} == CHARTS - {"memory.png"}
    text = files.markdown.read_text()
    assert "](memory.png)" not in text and "memory.png (GPU memory per variant): no record has GPU memory" in text


def test_one_variant_has_nothing_to_compare(records, tmp_path):
    fp32 = [r for r in records if r.variant == "fp32"]
    chart = plot_speedup(fp32, tmp_path / "speedup.png")
    assert not chart.drawn and "only one variant (fp32)" in chart.reason
    files = write_report(fp32, tmp_path / "report")
    assert "speedup.png" in files.skipped and "Variants compared" not in files.markdown.read_text()


def test_errors_are_user_errors_with_what_to_do(records, tmp_path):
    with pytest.raises(UserError, match="no records"):
        write_report([], tmp_path / "empty")
    with pytest.raises(UserError, match="no records"):
        compare_table([])
    with pytest.raises(UserError, match=r"no variant named 'int8'.*fp16, fp32"):
        write_report(records, tmp_path / "bad-baseline", baseline="int8")
    assert not (tmp_path / "bad-baseline").exists()
    with pytest.raises(UserError, match=r"no variant named 'int8'.*fp16, fp32"):
        compare_table(records, baseline="int8")
    with pytest.raises(UserError, match="cannot compare by"):
        compare_table(records, by="colour")
    with pytest.raises(OutputError, match="cannot write the report to /proc/"):
        write_report(records, Path("/proc/tritonbuild-report"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        write_report(records, blocker)
    with pytest.raises(OutputError, match="cannot write"):
        write_csv(records, Path("/proc/tritonbuild-report/results.csv"))


def test_log_scale_only_for_wide_ranges():
    assert not wants_log([1, 2, 4, 8, 16])
    assert wants_log([1, 2, 4, 8, 16, 32])
    assert not wants_log([0.0, 5.0, 50.0]) and not wants_log([])
