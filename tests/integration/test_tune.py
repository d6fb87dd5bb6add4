"""`tritonbench tune` end to end on this CPU: the bundled MiniLM, a mixed-length texts file, the real server.

A tiny quick search (three candidates, short windows), interrupted by --max-candidates after two and resumed:
the default profile is measured first and in the same run as the rest, the chosen configuration's throughput
within the budget is at least the default's, no finished candidate is measured again, the repository it writes
holds the chosen configuration alone and serves, and the report lists every candidate.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from builder.serving.server import TritonServer
from client.experiments.tune_records import CANDIDATE, tune_store
from client.targets.texts import builtin_mix
from client.transport.text_client import ClientConfig, TextClient

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TUNE_TIMEOUT_S = 1200  # one run takes 1-3 min on 2 cores
TINY = [
    "--engine", "python-torch", "--p99-ms", "5000", "--max-concurrency", "4", "--window-s", "0.5", "--warmup-s", "0.3",
    "--dimension", "single_model=ensemble,single", "--dimension", "model_instances=1,2",
    "--dimension", "max_batch_size=32", "--dimension", "max_queue_delay_us=500", "--dimension", "preferred=ladder",
    "--dimension", "buckets=profile", "--dimension", "tokenizer_instances=2",
]  # fmt: skip


def _logs(out: Path) -> str:
    """The ends of the search's make-repo/measure log and of the server's log, for a failure's message."""
    tails = []
    for name in ("measure.log", "tritonserver.log"):
        path = out / name
        lines = path.read_text(errors="replace").splitlines()[-40:] if path.is_file() else ["(none)"]
        tails.append(f"--- {name}:\n" + "\n".join(lines))
    return "\n".join(tails)


def tune(*args: str) -> subprocess.CompletedProcess[str]:
    """`tritonbench tune ARGS`; past its time, every thread's stack (faulthandler on SIGABRT) and the logs raised."""
    command = [sys.executable, "-X", "faulthandler", "-m", "client", "tune", *args]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=TUNE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            try:
                stdout, stderr = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            logs = _logs(Path(args[args.index("--out") + 1]))
            stacks = stderr[-12000:]  # faulthandler's: where each thread waited
            raise AssertionError(f"tune ran past {TUNE_TIMEOUT_S} s:\n{stdout[-3000:]}\n{stacks}\n{logs}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _candidate_lines(out: Path) -> list[bytes]:
    return [line for line in (out / "tune.jsonl").read_bytes().splitlines() if b'"kind": "candidate"' in line]


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Path, str]:
    """A search stopped after two candidates, then resumed to three."""
    out = tmp_path_factory.mktemp("tune")
    texts = out / "texts.txt"
    texts.write_text("\n".join(builtin_mix(0.75, 120, seed=5)) + "\n")
    first = tune("--texts", str(texts), "--out", str(out), "--max-candidates", "2", "--no-confirm", *TINY)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:] + _logs(out)
    before = _candidate_lines(out)
    assert len(before) == 2
    second = tune("--texts", str(texts), "--out", str(out), "--max-candidates", "3", *TINY)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:] + _logs(out)
    assert "2 candidate(s) already in" in second.stdout
    after = _candidate_lines(out)
    assert after[:2] == before and len(after) == 3  # resumed: the finished two untouched, one more measured
    return out, texts, second.stdout


def test_the_default_is_measured_first_and_the_choice_is_at_least_as_fast(searched):
    out, _, stdout = searched
    records = [r for r in tune_store(out).load() if r.kind == CANDIDATE]
    manifest = json.loads((out / "repo/tuned/tritonbuild.json").read_text())
    tuning = manifest["tuning"]
    default = json.loads((out / "tune.jsonl").read_text().splitlines()[0])["settings"]["default"]
    assert records[0].candidate == default  # the GPU profile's own configuration, measured in this search
    assert tuning["default"]["throughput_texts_per_s"] > 0
    assert tuning["measured"]["throughput_texts_per_s"] >= tuning["default"]["throughput_texts_per_s"]
    assert tuning["measured"]["p99_ms"] <= 5000 and tuning["candidates"] == 3
    assert set(tuning["confirmed"]) <= {"default", "chosen"} and "default" in tuning["confirmed"]
    assert f"rebuild: {tuning['command']}" in stdout


def test_the_repository_holds_the_chosen_configuration_and_serves(searched):
    out, texts, _ = searched
    repo = out / "repo"
    tuning = json.loads((repo / "tuned/tritonbuild.json").read_text())["tuning"]
    assert sorted(p.name for p in repo.iterdir() if not p.name.startswith(".")) == sorted(
        ["tuned", "tuned_model", *([] if tuning["candidate"]["single_model"] else ["tuned_tokenizer", "tuned_post"])]
    )  # no candidate's folders left
    model = text_format.Parse((repo / "tuned_model/config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert model.instance_group[0].count == tuning["candidate"]["model_instances"]
    assert model.max_batch_size == tuning["candidate"]["max_batch_size"]
    sample = texts.read_text().splitlines()[:6]
    with TritonServer(repo) as server, TextClient(ClientConfig(server.grpc_url, "tuned")) as client:
        embeddings = client.embed(sample)
    assert embeddings.shape == (6, 384) and np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)


def test_the_report_lists_every_candidate_and_draws_the_frontier(searched):
    out, _, _ = searched
    text = (out / "report/report.md").read_text()
    names = {r.name for r in tune_store(out).load() if r.kind == CANDIDATE}
    table = [line for line in text.splitlines() if line.startswith("| ") and "tune-" in line]
    assert len(table) == 3 and all(any(n in line for line in table) for n in names)
    assert "(default)" in text and "(chosen)" in text
    assert "Gain over the default profile" in text or "was the best measured" in text
    assert (out / "report/frontier.png").stat().st_size > 10_000


def test_a_budget_no_candidate_meets_is_refused_with_the_best_p99_seen(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("one short text\nand a second, slightly longer one\n")
    result = tune("--texts", str(texts), "--out", str(tmp_path / "out"), "--max-candidates", "1",
                  *[a if a != "5000" else "0.001" for a in TINY])  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no candidate kept p99 within 0.001 ms" in result.stderr and "the best p99 seen was" in result.stderr
    assert "tune-" in (tmp_path / "out/report/report.md").read_text()
