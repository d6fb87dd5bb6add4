"""`tritonbuild deploy` end to end: files on disk, and clear refusals."""

from __future__ import annotations

import pytest
import yaml
from built_repos import write_repo
from click.testing import CliRunner
from k8s_validation import K8S_VERSIONS, kserve_errors, kubernetes_errors, service_monitor_errors, yamllint_problems

from builder.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_kubernetes_manifests_are_written_and_valid(tmp_path):
    repo = write_repo(tmp_path / "repo", "python-onnxruntime", "h100")
    out = tmp_path / "k8s"
    result = run(
        "deploy",
        "--repo",
        str(repo),
        "--target",
        "kubernetes",
        "--gpu",
        "h100",
        "--output",
        str(out),
        "--storage-uri",
        "s3://bucket/repo",
        "--namespace",
        "serving",
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert written == [
        "deployment.yaml",
        "hpa.yaml",
        "prometheus-adapter/adapter-rules.yaml",
        "service.yaml",
        "servicemonitor.yaml",
    ]
    for path in out.rglob("*.yaml"):
        text = path.read_text()
        assert yamllint_problems(text) == [], path
        obj = yaml.safe_load(text)
        if obj["kind"] == "ServiceMonitor":
            assert service_monitor_errors(obj) == []
        else:
            assert all(kubernetes_errors(obj, version) == [] for version in K8S_VERSIONS), path
    assert f"kubectl apply -n serving -f {out}" in result.output
    assert "rules.existing" in result.output and "onnxruntime-gpu" in result.output


def test_kserve_manifest_is_written_and_valid(tmp_path):
    repo = write_repo(tmp_path / "repo", "python-onnxruntime", "cpu")
    out = tmp_path / "kserve"
    result = run("deploy", "--repo", str(repo), "--target", "kserve", "--output", str(out), "--pvc", "models/minilm")
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["inferenceservice.yaml"]
    obj = yaml.safe_load((out / "inferenceservice.yaml").read_text())
    assert kserve_errors(obj) == [] and obj["spec"]["predictor"]["model"]["storageUri"] == "pvc://models/minilm"


def test_rendering_again_needs_force(tmp_path):
    repo = write_repo(tmp_path / "repo")
    args = ("deploy", "--repo", str(repo), "--target", "kubernetes", "--output", str(tmp_path / "o"), "--pvc", "m")
    assert run(*args).exit_code == 0
    again = run(*args)
    assert again.exit_code == 1 and "exists" in again.output and "--force" in again.output
    assert run(*args, "--force").exit_code == 0


@pytest.mark.parametrize(
    ("repo_kwargs", "args", "message"),
    [
        ({"manifest": False}, ["--pvc", "m"], "has no tritonbuild.json"),
        ({}, ["--pvc", "m", "--storage-uri", "s3://b/r"], "--pvc or --storage-uri, not both"),
        ({}, [], "--pvc or --storage-uri"),
        ({"gpu": "h100"}, ["--pvc", "m", "--gpu", "cpu"], "CPU-only"),
        ({"gpu": "t4"}, ["--pvc", "m", "--gpu", "h100"], "built for the t4 profile, not h100"),
    ],
)
def test_refusals_exit_1_with_a_hint(tmp_path, repo_kwargs, args, message):
    repo = write_repo(tmp_path / "repo", **repo_kwargs)
    result = run("deploy", "--repo", str(repo), "--target", "kubernetes", "--output", str(tmp_path / "o"), *args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "hint:" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()  # nothing is written before every check passed


def test_an_unknown_target_is_refused(tmp_path):
    result = run("deploy", "--repo", str(tmp_path), "--target", "nomad", "--output", str(tmp_path / "o"), "--pvc", "m")
    assert result.exit_code == 2 and "'nomad' is not one of 'kubernetes', 'kserve'" in result.output


def test_deploy_is_listed():
    assert "deploy" in run("--help").output
