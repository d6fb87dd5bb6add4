"""The tune store's records and the report written from them alone (no server)."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from client.experiments.tune_records import CANDIDATE, CONFIRM, FINISH, SEARCH, TuneRecord, settings_digest, tune_store
from client.experiments.tune_report import write_tune_report
from client.experiments.tune_search import FAILED, OK, OVER, Budget, LoadPoint
from client.experiments.tune_settings import TuneSettings
from client.experiments.tune_space import Candidate
from client.report.charts import ChartSpec, draw

DEFAULT = Candidate(False, 2, 500, 32, "ladder", (16, 32, 64, 128, 256), 2)
BETTER = dataclasses.replace(DEFAULT, max_queue_delay_us=100)
SLOW = dataclasses.replace(DEFAULT, model_instances=1)
BROKEN = dataclasses.replace(DEFAULT, max_batch_size=64)
SETTINGS = TuneSettings("minilm", "feature-extraction", "cpu", "python-torch", ("a", "bb"), "test", 20.0)
DIGEST = settings_digest(SETTINGS.measured())


def _point(c: int, throughput: float, p99: float, **kw) -> dict:
    return dataclasses.asdict(LoadPoint(c, throughput, p99 / 2, p99, 0.0, **kw))


def _records() -> list[TuneRecord]:
    search = {**SETTINGS.describe(), "default": DEFAULT.to_dict(), "token_lengths": {"min": 3, "p50": 9, "p90": 120,
              "max": 256, "mean": 30.0}}  # fmt: skip
    return [
        TuneRecord(SEARCH, DIGEST, search, round=1, host="box"),
        TuneRecord(CANDIDATE, DIGEST, candidate=DEFAULT.to_dict(), name=DEFAULT.name, requests=300, errors=0,
                   points=[_point(1, 50, 8), _point(2, 90, 15), _point(4, 95, 30)], build_s=2, load_s=5, measure_s=9),
        TuneRecord(CANDIDATE, DIGEST, candidate=BETTER.to_dict(), name=BETTER.name, requests=400, errors=2,
                   points=[_point(2, 120, 12), _point(4, 130, 25), _point(3, 125, 18)]),
        TuneRecord(CANDIDATE, DIGEST, candidate=SLOW.to_dict(), name=SLOW.name,
                   points=[_point(2, 0, 0, failed="no request finished"), _point(1, 20, 40)]),
        TuneRecord(CANDIDATE, DIGEST, candidate=BROKEN.to_dict(), name=BROKEN.name,
                   failure="load: the server could not load tune-x: out of memory\nmore"),
        TuneRecord(CONFIRM, DIGEST, {"role": "default"}, DEFAULT.to_dict(), points=[_point(2, 85, 16)]),
        TuneRecord(CONFIRM, DIGEST, {"role": "chosen"}, BETTER.to_dict(), points=[_point(3, 118, 19)]),
        TuneRecord(FINISH, DIGEST, {"stopped": "converged", "seconds": 120.0, "command": "tritonbuild make-repo ..."}),
    ]  # fmt: skip


def test_records_round_trip_through_the_store_and_give_outcomes(tmp_path):
    store = tune_store(tmp_path)
    store.ensure_writable()
    for record in _records():
        store.append(record)
    loaded = store.load()
    assert [r.to_json() for r in loaded] == [r.to_json() for r in _records()]
    assert len({r.key for r in loaded}) == len(loaded)  # every record its own key
    budget = Budget(20.0)
    outcomes = {r.the_candidate(): r.outcome(budget) for r in loaded if r.kind == CANDIDATE}
    assert outcomes[BETTER].status == OK and (outcomes[BETTER].throughput, outcomes[BETTER].concurrency) == (125, 3)
    assert outcomes[SLOW].status == OVER and outcomes[SLOW].p99_ms == 40  # the level without numbers is left out
    assert outcomes[BROKEN].status == FAILED
    assert loaded[2].error_rate == pytest.approx(2 / 402) and loaded[1].seconds == 16


def test_the_report_lists_every_candidate_best_first_with_the_gain_and_why_one_failed(tmp_path):
    report = write_tune_report(_records(), tmp_path)
    text = report.markdown.read_text()
    assert "p99 ≤ 20 ms" in text and "median 9" in text and "converged" in text and "2.0 min" in text
    assert "Gain over the default profile: **1.39×** in the search, 1.39× when both were measured again" in text
    assert "tritonbuild make-repo ..." in text
    rows = list(csv.DictReader(report.csv.open()))
    assert [r["name"] for r in rows] == [BETTER.name, DEFAULT.name, SLOW.name, BROKEN.name]
    assert rows[0]["status"] == "within (chosen)" and rows[1]["status"] == "within (default)"
    assert rows[2]["status"] == "over budget" and rows[3]["status"] == "failed"
    assert "out of memory" in rows[3]["failure"] and "out of memory more" in text  # one table line per candidate
    assert rows[2]["levels"] == "2 1" and float(rows[2]["p99_ms"]) == 40
    assert report.chart.drawn and report.chart.path.name == "frontier.png"


def test_a_report_without_any_candidate_within_the_budget_says_the_best_p99(tmp_path):
    records = [r for r in _records() if r.kind not in (CONFIRM, FINISH) and r.name not in (DEFAULT.name, BETTER.name)]
    records.insert(1, dataclasses.replace(_records()[1], points=[_point(1, 50, 33)]))
    text = write_tune_report(records, tmp_path).markdown.read_text()
    assert "No candidate kept p99 within 20 ms; the best p99 seen was 33.00 ms" in text
    assert "not finished (rerun to resume)" in text


def test_a_marked_row_is_ringed_in_the_chart(tmp_path):
    rows = [{"x": 1.0, "y": 2.0, "pick": False}, {"x": 2.0, "y": 1.0, "pick": True}]
    plain = ChartSpec("plain", "t", "scatter", x="x", y="y", xlabel="x", ylabel="y")
    ringed = dataclasses.replace(plain, name="ringed", mark="pick")
    assert draw(plain, rows, tmp_path).drawn and draw(ringed, rows, tmp_path).drawn
    assert (tmp_path / "plain.png").read_bytes() != (tmp_path / "ringed.png").read_bytes()
