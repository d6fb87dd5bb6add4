"""Planning a cluster deployment from a repository's facts: the numbers it decides and what it refuses."""

from __future__ import annotations

import json

import pytest
from built_repos import MODEL_BYTES, write_repo

from builder.common.errors import DeployError
from builder.contract.manifest import MANIFEST
from builder.deploy.autoscaling import QUEUE_HEADROOM_US
from builder.deploy.deploy_facts import read_repository
from builder.deploy.deploy_plan import (
    BASE_MEMORY_BYTES,
    GIB,
    MODELS_MOUNT,
    SHM_BYTES,
    DeployOptions,
    RepositorySource,
    plan_deploy,
)
from builder.gpus import get_profile
from builder.repository.options import ServingOptions
from builder.tensorrt.ngc import ORT_GPU, READY_ORT_TRT_S, READY_S, STUB_NUMPY, TORCH_PACKAGES, TRITON_IMAGE

S3 = RepositorySource.parse(None, "s3://bucket/repo")


def _plan(repo, target="kubernetes", source=S3, **options):
    return plan_deploy(read_repository(repo, TRITON_IMAGE), DeployOptions(target, source, **options))


def test_gpu_repository_gets_one_gpu_and_the_profile_s_boards(tmp_path):
    plan = _plan(write_repo(tmp_path / "r", "python-onnxruntime", "h100"))
    assert plan.resources.gpus == 1  # the manifest lists no GPUs: Triton's choice, one per pod
    assert plan.node_products == get_profile("h100").node_products
    assert plan.image == TRITON_IMAGE
    assert plan.packages == ("tokenizers", STUB_NUMPY, ORT_GPU)  # what the NGC serve plan installs
    assert plan.startup_failures * 10 >= READY_S


def test_the_manifest_s_gpu_list_sets_the_gpu_count(tmp_path):
    plan = _plan(write_repo(tmp_path / "r", "python-onnxruntime", "h100", serving=ServingOptions(gpus=(0, 1))))
    assert plan.resources.gpus == 2
    # h100: 2 model instances on each of the 2 GPUs, 4 tokenizers and 2 post-processors per GPU: 16 stubs
    assert plan.resources.cpus == 2 * 2 + 4 * 2 + 2 * 2


def test_memory_counts_shared_memory_and_each_instance_s_copy_of_the_model(tmp_path):
    plan = _plan(write_repo(tmp_path / "r", "python-onnxruntime", "h100"))
    assert plan.resources.memory_bytes >= BASE_MEMORY_BYTES + SHM_BYTES + 2 * MODEL_BYTES  # 2 model instances
    assert plan.resources.memory == f"{-(-plan.resources.memory_bytes // GIB)}Gi"


def test_cpu_repository_deploys_without_gpus(tmp_path):
    plan = _plan(write_repo(tmp_path / "r", "python-onnxruntime", "cpu"), gpu="cpu")
    assert plan.resources.gpus == 0 and plan.node_products == ()
    assert plan.resources.cpus >= 2


def test_python_torch_gets_torch_and_transformers_unless_the_image_has_them(tmp_path):
    repo = write_repo(tmp_path / "r", "python-torch", "h100")
    assert set(TORCH_PACKAGES) <= set(_plan(repo).packages)
    assert _plan(repo, packages_in_image=True, image="registry.example/triton-torch:1").packages == ()


def test_onnxruntime_trt_waits_for_engine_builds_and_caches_them(tmp_path):
    plan = _plan(write_repo(tmp_path / "r", "onnxruntime-trt", "a100", "hybrid"))
    assert plan.ort_trt_cache and plan.startup_failures * 10 >= READY_ORT_TRT_S


def test_the_queue_target_sits_above_the_batching_delay(tmp_path):
    repo = write_repo(tmp_path / "r", "python-onnxruntime", "h100")
    assert _plan(repo).queue_target_us == get_profile("h100").max_queue_delay_us + QUEUE_HEADROOM_US
    assert _plan(repo, queue_target_us=5000).queue_target_us == 5000
    with pytest.raises(DeployError, match="batching delay"):
        _plan(repo, queue_target_us=get_profile("h100").max_queue_delay_us)


def test_repository_sources():
    assert S3.server_uri == S3.kserve_uri == "s3://bucket/repo"
    assert RepositorySource.parse(None, "gs://b/r/").uri == "gs://b/r"
    claim = RepositorySource.parse("models/minilm/v1", None)
    assert (claim.pvc, claim.pvc_path, claim.server_uri) == ("models", "minilm/v1", MODELS_MOUNT)
    assert claim.kserve_uri == "pvc://models/minilm/v1"
    assert RepositorySource.parse("models", None).kserve_uri == "pvc://models"


@pytest.mark.parametrize(
    ("pvc", "uri", "message"),
    [
        ("models", "s3://b/r", "not both"),
        (None, None, "--pvc or --storage-uri"),
        (None, "https://b/r", "not an s3:// or gs://"),
        (None, "s3://", "not an s3:// or gs://"),
        ("Models_1", None, "not a claim name"),
        ("models/../etc", None, "not a claim name"),
    ],
)
def test_repository_source_refusals(pvc, uri, message):
    with pytest.raises(DeployError, match=message) as err:
        RepositorySource.parse(pvc, uri)
    assert err.value.hint


def test_a_folder_without_a_manifest_is_refused(tmp_path):
    with pytest.raises(DeployError, match=MANIFEST) as err:
        _plan(write_repo(tmp_path / "r", manifest=False))
    assert "make-repo" in err.value.hint
    with pytest.raises(DeployError, match="does not exist"):
        _plan(tmp_path / "nowhere")


def test_a_gpu_repository_is_not_deployed_cpu_only(tmp_path):
    with pytest.raises(DeployError, match="CPU-only") as err:
        _plan(write_repo(tmp_path / "r", "python-onnxruntime", "h100"), gpu="cpu")
    assert "--gpu h100" in err.value.hint


def test_a_repository_is_deployed_for_the_profile_it_was_built_for(tmp_path):
    with pytest.raises(DeployError, match="built for the t4 profile, not h100") as err:
        _plan(write_repo(tmp_path / "r", "python-onnxruntime", "t4"), gpu="h100")
    assert "make-repo --gpu h100" in err.value.hint
    with pytest.raises(DeployError, match="built for the cpu profile"):
        _plan(write_repo(tmp_path / "c", "python-onnxruntime", "cpu"), gpu="t4")


def test_gpus_a_pod_cannot_number_are_refused(tmp_path):
    repo = write_repo(tmp_path / "r", "python-onnxruntime", "h100", serving=ServingOptions(gpus=(1, 3)))
    with pytest.raises(DeployError, match="numbers its GPUs from 0") as err:
        _plan(repo)
    assert "--gpus 0,1" in err.value.hint


def test_ensembles_of_different_profiles_are_refused(tmp_path):
    repo = write_repo(tmp_path / "r", "python-onnxruntime", "t4", name="a")
    write_repo(repo, "python-onnxruntime", "h100", name="b")
    with pytest.raises(DeployError, match="different GPU profiles: h100, t4"):
        _plan(repo)


def test_several_ensembles_need_a_name(tmp_path):
    repo = write_repo(tmp_path / "r", "python-onnxruntime", "h100", name="a")
    write_repo(repo, "python-onnxruntime", "h100", name="b")
    with pytest.raises(DeployError, match="2 ensembles: a, b"):
        _plan(repo)
    assert _plan(repo, name="both").name == "both"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "My_Model"}, "not a valid Kubernetes name"),
        ({"namespace": "-x"}, "not a valid Kubernetes name"),
        ({"min_replicas": 3, "max_replicas": 2}, "min-replicas"),
        ({"target": "nomad"}, "unknown target"),
        ({"target": "kserve", "storage_secret": "aws"}, "--storage-secret is for --target kubernetes"),
    ],
)
def test_option_refusals(tmp_path, options, message):
    repo = write_repo(tmp_path / "r", "python-onnxruntime", "h100")
    target = options.pop("target", "kubernetes")
    with pytest.raises(DeployError, match=message):
        _plan(repo, target, **options)


def test_an_ensemble_name_that_is_no_kubernetes_name_asks_for_one(tmp_path):
    repo = write_repo(tmp_path / "r", "python-onnxruntime", "cpu", name="mini_lm")
    with pytest.raises(DeployError, match="'mini_lm'") as err:
        _plan(repo)
    assert "--name" in err.value.hint
    manifest = json.loads((repo / "mini_lm" / MANIFEST).read_text())
    assert manifest["name"] == "mini_lm"
