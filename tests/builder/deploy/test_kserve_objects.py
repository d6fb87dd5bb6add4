"""The KServe InferenceService `tritonbuild deploy --target kserve` renders, checked against KServe's own models."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from built_repos import write_repo
from k8s_validation import kserve_errors, kserve_models, yamllint_problems

from builder.deploy.deploy_facts import read_repository
from builder.deploy.deploy_plan import PIP_TARGET, DeployOptions, RepositorySource, plan_deploy
from builder.deploy.k8s_objects import GPU_PRODUCT_LABEL, GPU_RESOURCE
from builder.deploy.kserve_objects import DEPLOYMENT_MODE, RUNTIME_GRPC, RUNTIME_HTTP, kserve_objects
from builder.deploy.yaml_text import dump
from builder.gpus import get_profile
from builder.repository.options import ServingOptions
from builder.tensorrt.ngc import NGC_RELEASE, TRITON_IMAGE

GOLDEN = Path(__file__).parents[2] / "golden" / "deploy"


def _isvc(tmp_path, engine="python-onnxruntime", gpu="h100", precision="fp32", gpus=(), **options):
    repo = write_repo(tmp_path / "r", engine, gpu, precision, serving=ServingOptions(gpus=gpus))
    options = {"source": RepositorySource.parse(None, "s3://bucket/minilm"), **options}
    plan = plan_deploy(read_repository(repo, TRITON_IMAGE), DeployOptions("kserve", **options))
    (obj,) = kserve_objects(plan).values()
    return plan, obj


@pytest.mark.parametrize(
    ("engine", "gpu", "precision", "gpus", "options"),
    [
        ("python-onnxruntime", "h100", "fp32", (0, 1), {}),
        ("python-onnxruntime", "cpu", "fp32", (), {"source": RepositorySource.parse("models/minilm", None)}),
        ("python-torch", "h100", "fp16", (), {"service_account": "kserve-s3", "namespace": "serving"}),
        ("tensorrt", "t4", "hybrid", (), {"image": "registry.example/triton:derived", "packages_in_image": True}),
        ("onnxruntime-trt", "a100", "hybrid", (), {}),
    ],
)
def test_the_inference_service_is_valid_for_kserve_and_kubernetes(tmp_path, engine, gpu, precision, gpus, options):
    _, obj = _isvc(tmp_path, engine, gpu, precision, gpus, **options)
    assert kserve_errors(obj) == []
    assert yamllint_problems(dump(obj, start=True)) == []


def test_the_kserve_check_catches_what_kserve_would_refuse(tmp_path):
    _, obj = _isvc(tmp_path)
    assert kserve_models().V1beta1InferenceService  # the SDK's generated model is what is checked against
    broken = copy.deepcopy(obj)
    broken["spec"]["predictor"]["model"]["storageURI"] = "s3://x"  # KServe spells it storageUri
    broken["spec"]["predictor"]["minReplicas"] = "1"
    del broken["spec"]["predictor"]["initContainers"][0]["name"]  # a Kubernetes Container inside KServe's spec
    errors = kserve_errors(broken)
    assert "InferenceService.spec.predictor.model.storageURI: V1beta1ModelSpec has no such field" in errors
    assert "InferenceService.spec.predictor.minReplicas: '1' is not a int" in errors
    assert any("initContainers[0]: 'name' is a required property" in e for e in errors)
    no_predictor = copy.deepcopy(obj)
    del no_predictor["spec"]["predictor"]
    assert any("predictor" in e for e in kserve_errors(no_predictor))  # required by V1beta1InferenceServiceSpec


def test_triton_runtime_storage_gpus_and_ports(tmp_path):
    plan, obj = _isvc(tmp_path, gpus=(0, 1))
    assert obj["apiVersion"] == "serving.kserve.io/v1beta1" and obj["kind"] == "InferenceService"
    assert obj["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": DEPLOYMENT_MODE}
    predictor = obj["spec"]["predictor"]
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "triton"} and model["protocolVersion"] == "v2"
    assert model["runtimeVersion"] == f"{NGC_RELEASE}-py3"  # the runtime's image is nvcr.io/nvidia/tritonserver
    assert model["storageUri"] == "s3://bucket/minilm"
    assert "args" not in model  # KServe < 0.20 would replace the runtime's tritonserver command line with them
    ports = {p["name"]: p["containerPort"] for p in model["ports"]}
    assert ports == {RUNTIME_HTTP.name: 8080, RUNTIME_GRPC.name: 9000}  # kserve-tritonserver's --http/--grpc-port
    assert model["resources"]["limits"][GPU_RESOURCE] == "2"
    (term,) = predictor["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"][0]["key"] == GPU_PRODUCT_LABEL
    assert term["matchExpressions"][0]["values"] == list(get_profile("h100").node_products)
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (plan.min_replicas, plan.max_replicas)
    (init,) = predictor["initContainers"]
    assert init["command"][-len(plan.packages) :] == list(plan.packages)
    assert model["env"] == [{"name": "TRITONBUILD_SITE_PACKAGES", "value": PIP_TARGET}]
    mounted = {m["mountPath"] for m in model["volumeMounts"]}
    assert {"/dev/shm", PIP_TARGET} <= mounted
    assert {m["name"] for m in model["volumeMounts"]} <= {v["name"] for v in predictor["volumes"]}


def test_a_claim_becomes_a_pvc_uri_and_is_not_mounted_twice(tmp_path):
    _, obj = _isvc(tmp_path, gpu="cpu", source=RepositorySource.parse("models/minilm", None))
    predictor = obj["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == "pvc://models/minilm"
    assert not any("persistentVolumeClaim" in v for v in predictor["volumes"])  # KServe mounts storageUri itself
    assert GPU_RESOURCE not in predictor["model"]["resources"]["limits"] and "affinity" not in predictor


def test_a_derived_image_replaces_the_runtime_s_image(tmp_path):
    _, obj = _isvc(tmp_path, image="registry.example/triton:derived", packages_in_image=True)
    model, predictor = obj["spec"]["predictor"]["model"], obj["spec"]["predictor"]
    assert model["image"] == "registry.example/triton:derived" and "runtimeVersion" not in model
    assert "initContainers" not in predictor and "env" not in model


def test_rendered_file_matches_golden_file(tmp_path):
    _, obj = _isvc(tmp_path, engine="python-torch", precision="fp16", namespace="serving")
    golden = GOLDEN / "kserve-h100-torch" / "inferenceservice.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(dump(obj, start=True))
    assert dump(obj, start=True) == golden.read_text()
