import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli import main
from builder.gpus import PROFILES
from builder.sources.source import inspect_model


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("export", "make-repo", "validate", "serve", "gpus", "demo"):
        assert command in result.output


def test_gpus_table():
    lines = run("gpus").output.splitlines()
    t4 = next(line for line in lines if line.startswith("t4"))
    assert t4.split()[1:6] == ["7.5", "16", "yes", "no", "yes"]  # cc, GiB, fp16, bf16 (none on Turing), int8
    assert len(lines) == 1 + len(PROFILES)


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "tritonbuild"
    out = subprocess.run([str(exe), "gpus"], capture_output=True, text=True, check=True).stdout
    assert "h100" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/model"], "model folder not found"),
        (["--output", "/proc/x/repo"], "cannot write /proc/x/repo in /proc"),
    ],
)
def test_user_errors_exit_1_without_traceback(args, message):
    result = run("make-repo", *args)
    assert result.exit_code == 1
    assert f"error: {message}" in result.output and "Traceback" not in result.output


def test_unsupported_architecture_and_task(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    result = run("make-repo", "--model", str(tmp_path), "--output", str(tmp_path / "repo"))
    assert result.exit_code == 1 and "unsupported architecture 't5'" in result.output
    assert run("make-repo", "--task", "translation").exit_code == 2  # click rejects it with the choices


def test_existing_repository_needs_force(tmp_path):
    (tmp_path / "repo" / "minilm_tokenizer").mkdir(parents=True)
    result = run("make-repo", "--output", str(tmp_path / "repo"))
    assert result.exit_code == 1 and "already has minilm_tokenizer" in result.output and "--force" in result.output


def test_serve_missing_repository(tmp_path):
    result = run("serve", "--repo", str(tmp_path / "none"))
    assert result.exit_code == 1 and "does not exist" in result.output


@pytest.mark.slow
def test_export_writes_onnx_tokenizer_and_parity(tiny_models, tmp_path):
    result = run(
        "export", "--model", str(tiny_models["distilbert"]), "--task", "text-classification", "--output", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    parity = json.loads((tmp_path / "parity.json").read_text())
    assert parity["worst"] <= 1e-4 and len(parity["shapes"]) >= 3
    assert (tmp_path / "model.onnx").stat().st_size > 100_000 and (tmp_path / "tokenizer.json").is_file()
    info = inspect_model(str(tiny_models["distilbert"]), "text-classification")
    assert json.loads((tmp_path / "export.json").read_text())["max_length"] == info.max_length  # make-repo's


@pytest.mark.slow
def test_serve_runs_until_ctrl_c(served_repo):
    import signal
    import time
    import urllib.request

    from builder.serving.server import free_port

    ports = [str(free_port()) for _ in range(3)]
    exe = Path(sys.executable).parent / "tritonbuild"
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--repo",
            str(served_repo),
            "--http-port",
            ports[0],
            "--grpc-port",
            ports[1],
            "--metrics-port",
            ports[2],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "ready" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/health/ready", timeout=5) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        time.sleep(0.5)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/health/ready", timeout=2)
    finally:
        proc.kill()


# --- precision variants and the fidelity gate ---------------------------------------------------------------


def test_validate_refuses_bf16_on_the_cpu_before_exporting(tmp_path):
    result = run("validate", "--precision", "fp32,bf16", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "bf16 cannot be validated here" in result.output
    assert "has no BF16 kernels" in result.output and "--skip-bf16" in result.output
    assert not (tmp_path / "out").exists()
    assert "unknown precision 'fp4'" in run("validate", "--precision", "fp4").output


def test_make_repo_refuses_to_gate_bf16_and_names_the_way_out(tmp_path):
    args = ("make-repo", "--gpu", "a100", "--precision", "bf16", "--output", str(tmp_path / "repo"))
    result = run(*args)
    assert (
        result.exit_code == 1 and "cannot gate the bf16 variant" in result.output and "--no-validate" in result.output
    )
    assert "GPU profile cpu has no BF16" in run(*args[:2], "cpu", *args[3:]).output


def test_make_repo_refuses_to_gate_python_torch_bf16_without_a_gpu(tmp_path):
    result = run("make-repo", "--engine", "python-torch", "--gpu", "h200", "--precision", "bf16",
                 "--output", str(tmp_path / "repo"))  # fmt: skip
    assert result.exit_code == 1 and "cannot gate python-torch bf16 without a GPU" in result.output
    assert "0.9998" in result.output and "--no-validate" in result.output
    assert not (tmp_path / "repo").exists()


@pytest.mark.slow
def test_make_repo_gates_python_torch_precisions_on_the_engines_own_forward(tiny_models, tmp_path):
    repo = tmp_path / "repo"
    args = ("make-repo", *_distilbert(tiny_models), "--name", "dbert", "--engine", "python-torch", "--gpu", "h200",
            "--precision")  # fmt: skip
    result = run(*args, "hybrid", "--output", str(repo))
    assert result.exit_code == 0, result.output
    assert "fidelity gate on hybrid on the cpu (min cosine 0.9998" in result.output
    fidelity = json.loads((repo / "dbert" / "tritonbuild.json").read_text())["fidelity"]
    assert fidelity["passed"] and fidelity["variants"][0]["precision"] == "hybrid (fused, cpu)"
    assert [m["inputs"] for m in fidelity["variants"][0]["metrics"]] == ["real text", "random ids"]
    refused = run(*args, "fp16", "--min-cosine", "1.0", "--output", str(tmp_path / "other"))
    assert refused.exit_code == 1 and "the fidelity gate refuses fp16 (fused, cpu)" in refused.output
    assert "logits on random ids: min cosine 0.99999" in refused.output  # the measured number beside the bar
    assert not (tmp_path / "other").exists()  # a failed build leaves no empty output folder


def _distilbert(tiny_models):
    return ("--model", str(tiny_models["distilbert"]), "--task", "text-classification", "--texts", "8")


@pytest.mark.slow
def test_validate_writes_reports_and_exits_0_when_every_variant_passes(tiny_models, tmp_path):
    result = run("validate", *_distilbert(tiny_models), "--precision", "fp32,hybrid,bf16", "--skip-bf16",
                 "--out", str(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "fidelity.json").read_text())
    assert report["passed"] and [v["precision"] for v in report["variants"]] == ["fp32", "hybrid", "bf16"]
    fp32, hybrid, bf16 = report["variants"]
    assert [(m["inputs"], m["output"]) for m in hybrid["metrics"]] == [
        ("real text", "logits"),
        ("random ids", "logits"),
    ]
    assert hybrid["size_bytes"] < fp32["size_bytes"] and bf16["skipped"] and not bf16["metrics"]
    assert "| hybrid |" in result.output and "| random ids | logits |" in (tmp_path / "fidelity.md").read_text()


@pytest.mark.slow
def test_validate_exits_1_listing_the_failing_variant_after_writing_reports(tiny_models, tmp_path):
    result = run("validate", *_distilbert(tiny_models), "--precision", "fp16", "--min-cosine", "1.0",
                 "--out", str(tmp_path))  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        "error: the fidelity gate refuses fp16 of" in result.output
        and "fp16: logits on real text: min cosine" in result.output
    )
    assert json.loads((tmp_path / "fidelity.json").read_text())["failed"] == ["fp16"]


@pytest.mark.slow
def test_make_repo_refuses_a_variant_that_misses_the_gate_and_writes_nothing(tiny_models, tmp_path):
    repo = tmp_path / "repo"
    result = run("make-repo", *_distilbert(tiny_models), "--precision", "fp16", "--min-cosine", "1.0",
                 "--output", str(repo))  # fmt: skip
    assert result.exit_code == 1 and "fidelity gate on fp16 (min cosine 1.0, NaN/Inf rate ≤ 0.0): FAIL" in result.output
    assert "the fidelity gate refuses fp16" in result.output
    assert f"{repo} is unchanged: nothing was published" in result.output
    assert not repo.exists()  # no empty output folder left behind


@pytest.mark.slow
def test_make_repo_no_validate_serves_the_variant_ungated(tiny_models, tmp_path):
    import onnx

    repo = tmp_path / "repo"
    args = ("--model", str(tiny_models["gpt2"]), "--task", "causal-lm", "--name", "g", "--precision", "int8")
    result = run("make-repo", *args, "--no-validate", "--output", str(repo))
    assert result.exit_code == 0, result.output
    assert "fidelity gate" not in result.output
    served = repo / "g_model" / "1" / "model.onnx"
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(served)).graph.node}
    manifest = json.loads((repo / "g" / "tritonbuild.json").read_text())
    assert manifest["precision"] == "int8" and manifest["fidelity"] is None
    assert manifest["onnx_bytes"] == served.stat().st_size


def test_make_repo_single_model_options_reach_the_config(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    result = run(
        "make-repo", "--engine", "python-torch", "--single-model", "--kernels", "hf",
        "--max-queue-delay-us", "0", "--output", str(tmp_path / "repo"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "repo").glob("[!.]*")) == ["minilm", "minilm_model"]
    config = text_format.Parse(
        (tmp_path / "repo/minilm_model/config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert [i.name for i in config.input] == ["TEXT"] and config.parameters["kernels"].string_value == "hf"
    assert config.dynamic_batching.max_queue_delay_microseconds == 0
    assert (tmp_path / "repo/minilm_model/1/tokenizer.json").is_file()
    refused = run("make-repo", "--single-model", "--output", str(tmp_path / "other"))
    assert refused.exit_code == 1 and "--single-model goes with --engine python-torch" in refused.output


def test_make_repo_gpus_reach_the_model_config_and_the_manifest(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    repo = tmp_path / "repo"
    result = run("make-repo", "--engine", "python-torch", "--gpu", "h200", "--gpus", "0,1", "--output", str(repo))
    assert result.exit_code == 0, result.output
    config = text_format.Parse((repo / "minilm_model/config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert (
        list(config.instance_group[0].gpus) == [0, 1]
        and config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    )
    assert json.loads((repo / "minilm/tritonbuild.json").read_text())["gpus"] == [0, 1]
    refused = run("make-repo", "--gpus", "0", "--output", str(tmp_path / "cpu"))
    assert refused.exit_code == 1 and "GPU profile cpu has none" in refused.output
