import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("export", "make-repo", "serve", "gpus", "demo"):
        assert command in result.output


def test_gpus_table():
    lines = run("gpus").output.splitlines()
    t4 = next(line for line in lines if line.startswith("t4"))
    assert t4.split()[1:6] == ["7.5", "16", "yes", "no", "yes"]  # cc, GiB, fp16, bf16 (none on Turing), int8
    assert len(lines) == 7


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "tritonbuild"
    out = subprocess.run([str(exe), "gpus"], capture_output=True, text=True, check=True).stdout
    assert "h100" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/model"], "model folder not found"),
        (["--output", "/proc/x/repo"], "cannot write to /proc"),
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


@pytest.mark.slow
def test_serve_runs_until_ctrl_c(served_repo):
    import signal
    import time
    import urllib.request

    from builder.server import free_port

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
