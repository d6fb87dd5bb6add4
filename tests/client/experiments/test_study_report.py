"""The study's tables, findings and report from records whose numbers are known, written through the store."""

import base64
import csv
import re
from pathlib import Path

import pytest

from builder.precision.fidelity import OutputMetrics
from client.experiments.study_config import default_config
from client.experiments.study_records import Latency, StudyRecord, VariantMemory, study_store
from client.experiments.study_report import findings, report_tables, seed_table, write_study_report
from client.experiments.study_tables import StudyData, fidelity_table, memory_table, precision_table, speedup_tables
from client.records import PointRecord

SHAPES = [(1, 32), (8, 32), (1, 128), (8, 128)]
SETTINGS = default_config().report  # reference length 128, budgets 1, 2, 5, 10 ms, FP16 pays at 1.1×


def fp32_ms(batch: int, seq: int) -> float:
    return 1 + batch * seq / 64


def p50_of(precision: str, batch: int, seq: int) -> float:
    if precision == "fp16":  # no gain at 128 tokens per call or fewer, 1.9× above
        return fp32_ms(batch, seq) * 0.98 if batch * seq <= 128 else fp32_ms(batch, seq) / 1.9
    return fp32_ms(batch, seq) / (1.8 if precision == "hybrid" else 1.0)


def latency(p50: float) -> Latency:
    return Latency(p50 * 1.05, p50, p50 * 1.1, p50 * 1.15, p50 * 1.2, p50 * 1.5)


def record(kind, precision, batch=None, seq=None, concurrency=None, **parts) -> StudyRecord:
    return StudyRecord(kind, "enc", "python-torch", precision, batch, seq, concurrency, "test device", **parts)


def metrics(inputs: str, cosine: float, nan: float) -> tuple[OutputMetrics, ...]:
    return (
        OutputMetrics("last_hidden_state", inputs, 64, cosine, 0.99999, 0.01, nan, None),
        OutputMetrics("EMBEDDING", inputs, 4, cosine + 0.00005, 0.99999, 0.001, nan, 1.0, "nearest neighbour"),
        OutputMetrics("logits", inputs, 4, 0.999999, 0.9999995, 0.001, 0.0, 0.75, "label"),
    )


def served_point(precision: str, batch: int) -> PointRecord:
    p50 = 2 + p50_of(precision, batch, 128)
    return PointRecord(
        model=f"enc_{precision}", protocol="grpc", generator="tritonbench", mode="concurrency", batch_size=batch,
        seq_len=128, concurrency=1, request_rate=None, arrival=None, variant=precision, requests=100, errors=0,
        duration_s=1.0, throughput_infer_per_s=1000 / p50, throughput_seq_per_s=1000 * batch / p50,
        throughput_tokens_per_s=128000 * batch / p50, latency_avg_ms=p50, latency_p50_ms=p50, latency_p90_ms=p50,
        latency_p95_ms=p50, latency_p99_ms=p50 * 1.2, latency_max_ms=p50 * 2, stable=True, trials=3,
        gpu={"memory_used_mb": 5000.0},
    )  # fmt: skip


def study_records() -> list[StudyRecord]:
    records = [record("cpu", "fp32", b, s, latency=latency(100 * b * s / 32), throughput_seq_per_s=1.0)
               for b, s in SHAPES]  # fmt: skip
    nan = {"fp32": (0.0, 0.0), "fp16": (0.006, 0.001), "hybrid": (0.0, 0.0)}
    cos = {"fp32": (1.0, 1.0), "fp16": (0.9999, 0.99995), "hybrid": (0.99999, 0.999995)}
    weights = {"fp32": 400.0, "fp16": 200.0, "hybrid": 201.0}
    peak = {"fp32": 1000.0, "fp16": 370.0, "hybrid": 380.0}
    served = {"fp32": 2000.0, "fp16": 1200.0, "hybrid": 1210.0}
    for p in ("fp32", "fp16", "hybrid"):
        for seq in (32, 128):
            real, rand = metrics("real text", cos[p][0], nan[p][0]), metrics("random ids", cos[p][1], nan[p][1])
            records.append(record("fidelity", p, None, seq, fidelity=real + rand, fidelity_texts=8))
        records.append(record("memory", p, memory=VariantMemory(weights[p] * 1.1, weights[p], weights[p] * 3, 8)))
        for b, s in SHAPES:
            ms = p50_of(p, b, s)
            records.append(record("inprocess", p, b, s, latency=latency(ms), calls=100,
                                  throughput_seq_per_s=1000 * b / ms,
                                  peak_allocated_mb=peak[p] * b * s / 1024))  # fmt: skip
        for b in (1, 8):
            point = served_point(p, b)
            records.append(record("served", p, b, 128, 1, latency=latency(point.latency_p50_ms), served=point,
                                  throughput_seq_per_s=point.throughput_seq_per_s,
                                  served_gpu_mb=served[p]))  # fmt: skip
    return records


@pytest.fixture
def records(tmp_path: Path) -> list[StudyRecord]:
    """Written through the study's store and read back, as the report gets them."""
    store = study_store(tmp_path / "study")
    store.ensure_writable()
    for r in study_records():
        store.append(r)
    loaded = store.load()
    assert loaded == study_records()  # every nested part survives its JSON form
    return loaded


def rows_of(table) -> dict[tuple[str, ...], tuple[str, ...]]:
    return {row[: table.left]: row[table.left :] for row in table.rows}


def test_speedup_over_the_cpu_is_cpu_p50_over_the_best_precisions_p50(records):
    (table,) = speedup_tables(StudyData(records))
    assert table.header == ("", "length 32", "length 128")
    cells = rows_of(table)
    assert cells[("batch 8",)][1] == f"{3200 / (17 / 1.9):.1f}× fp16"  # 357.6×
    assert cells[("batch 1",)][0] == f"{100 / (1.5 / 1.8):.1f}× hybrid"


def test_reduced_precision_against_fp32(records):
    cells = rows_of(precision_table(StudyData(records), SETTINGS))
    assert cells[("enc", "fp16")] == ("4", "1.02×", "1.46×", "1.90×", "1.02×", "1.90×", "2 of 4")
    assert cells[("enc", "hybrid")][1:4] == ("1.80×", "1.80×", "1.80×")
    assert cells[("paper (arXiv:2603.28708)", "fp16 (A100)")][1::2][:2] == ("1.84×", "2.00×")


def test_memory_against_fp32(records):
    cells = rows_of(memory_table(StudyData(records)))
    assert cells[("enc", "fp16")] == ("200", "−50 %", "370 (b8·s128)", "−63 %", "1,200", "−40 %", "220")


def test_fidelity_puts_real_text_beside_random_ids(records):
    cells = rows_of(fidelity_table(StudyData(records)))
    assert cells[("enc", "fp16")] == (
        "0.9999000", "0.9999500", "0.9999500", "1.0000000", "0.7500", "0.7500", "label", "0.006", "0.001",
    )  # fmt: skip
    assert cells[("enc", "hybrid")][-2:] == ("0", "0")


def test_the_seeds_figures_beside_this_runs(records):
    cells = {row[0]: row[1:] for row in seed_table(StudyData(records), SETTINGS).rows}
    assert cells["speedup over the CPU baseline"] == ("up to 64.4×", f"{3200 / (17 / 1.9):.1f}× (enc fp16, b8·s128)")
    assert cells["NaN rate, real text ÷ random ids"][1] == "enc fp16 6.00×"
    assert cells["memory, FP16 against FP32"][1] == (
        "enc −50 % weights, −63 % peak in process (b8·s128), −40 % served GPU memory"
    )


def test_what_the_run_shows_is_written_from_the_numbers(records):
    lines = findings(StudyData(records), SETTINGS)
    assert any(
        "enc: FP16 gains less than 1.1× at 2 of 4 shapes, all at ≤ 128 tokens per call (e.g. b1·s32: 1.02×); "
        "above 128 tokens per call it gives 1.90×–1.90×" in line
        for line in lines
    )
    # p99 budgets at length 128: 1 ms fits nothing; 5 ms fits hybrid at batch 1 (3 / 1.8 × 1.2 = 2.0 ms)
    assert "Best in process within p99 ≤ 1 ms: nothing fits" in lines
    assert any(line.startswith("Best in process within p99 ≤ 5 ms: enc hybrid at batch 1") for line in lines)
    assert any("NaN/Inf, real text against random ids: enc fp16 6.00×" in line for line in lines)


def test_the_report_prints_the_tables_it_regenerates_and_embeds_its_charts(records, tmp_path):
    report = write_study_report(records, tmp_path / "report", SETTINGS, "synthetic", planned=len(records))
    markdown, page = report.markdown.read_text(), report.html.read_text()
    for table in report_tables(StudyData(study_store(tmp_path / "study").load()), SETTINGS):
        assert table.markdown() in markdown, table.key
        assert table.html() in page, table.key
    assert [c.path.name for c in report.charts if c.drawn] == [
        "speedup.png", "throughput.png", "latency.png", "memory.png", "tradeoff.png",
    ]  # fmt: skip
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 5 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "<img" in page and "charts/" not in page  # self-contained: nothing to fetch beside it
    with report.csv.open() as source:
        rows = list(csv.DictReader(source))
    assert len(rows) == len(records)
    big = next(
        r
        for r in rows
        if (r["kind"], r["precision"], r["batch_size"], r["seq_len"]) == ("inprocess", "fp16", "8", "128")
    )
    assert float(big["speedup_over_cpu"]) == pytest.approx(3200 / (17 / 1.9))
    assert float(big["speedup_over_fp32"]) == pytest.approx(1.9)


def test_an_empty_store_is_a_clear_error(tmp_path):
    from builder.common.errors import OutputError

    with pytest.raises(OutputError, match="no points yet"):
        write_study_report([], tmp_path, SETTINGS, "empty")
