"""The Kubernetes objects `tritonbuild deploy` renders: valid for every claimed version, lint-clean, and consistent
with each other and with the server's own flags."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from built_repos import write_repo
from k8s_validation import K8S_VERSIONS, kubernetes_errors, service_monitor_errors, yamllint_problems

from builder.deploy.autoscaling import QUEUE_METRIC, QUEUE_SERIES, SCRAPE_INTERVAL_S, WINDOW_S
from builder.deploy.deploy_facts import read_repository
from builder.deploy.deploy_plan import MODELS_MOUNT, PIP_TARGET, DeployOptions, RepositorySource, plan_deploy
from builder.deploy.k8s_objects import GPU_PRODUCT_LABEL, GPU_RESOURCE, kubernetes_objects
from builder.deploy.yaml_text import dump
from builder.gpus import get_profile
from builder.repository.options import ServingOptions
from builder.serving.endpoints import (
    ENDPOINTS,
    EXIT_TIMEOUT_S,
    GRPC,
    HTTP,
    LIVE_PATH,
    METRICS,
    METRICS_PATH,
    READY_PATH,
)
from builder.tensorrt.ngc import TRITON_IMAGE

GOLDEN = Path(__file__).parents[2] / "golden" / "deploy"
# The issue's formula, as NVIDIA's Helm chart writes it, for one pod.
NVIDIA_QUERY = (
    "avg(delta(nv_inference_queue_duration_us[30s]) / (1 + delta(nv_inference_request_success[30s]))) by (pod)"
)
# case → (engine, GPU profile, precision, make-repo GPUs, deploy options)
CASES = {
    "cpu-pvc": ("python-onnxruntime", "cpu", "fp32", (), {"source": RepositorySource.parse("models", None)}),
    "h100-s3-two-gpus": ("python-onnxruntime", "h100", "fp32", (0, 1), {}),
    "h100-torch-gs": ("python-torch", "h100", "fp16", (), {"source": RepositorySource.parse(None, "gs://b/minilm")}),
    "a100-ort-trt-pvc-folder": (
        "onnxruntime-trt",
        "a100",
        "hybrid",
        (),
        {"source": RepositorySource.parse("models/minilm", None), "namespace": "serving"},
    ),
    "t4-tensorrt-s3-credentials": (
        "tensorrt",
        "t4",
        "hybrid",
        (),
        {"service_account": "triton", "storage_secret": "aws-credentials", "min_replicas": 2, "max_replicas": 8},
    ),
}


def _render(tmp_path, case):
    engine, gpu, precision, gpus, options = CASES[case]
    repo = write_repo(tmp_path / case, engine, gpu, precision, serving=ServingOptions(gpus=gpus))
    options = {"source": RepositorySource.parse(None, "s3://bucket/minilm"), **options}
    plan = plan_deploy(read_repository(repo, TRITON_IMAGE), DeployOptions("kubernetes", **options))
    return plan, kubernetes_objects(plan)


@pytest.fixture(params=CASES)
def rendered(request, tmp_path):
    return _render(tmp_path, request.param)


def _by_kind(objects):
    return {obj["kind"]: obj for obj in objects.values()}


def _server(objects):
    (container,) = _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _flag(container, flag):
    (value,) = [arg.split("=", 1)[1] for arg in container["args"] if arg.startswith(f"{flag}=")]
    return value


def _container_port(container, name_or_number):
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name_or_number]
    return port


def test_every_object_passes_the_strict_schemas_of_every_claimed_version(rendered):
    _, objects = rendered
    for name, obj in objects.items():
        if obj["kind"] == "ServiceMonitor":
            assert service_monitor_errors(obj) == [], name
            for version in K8S_VERSIONS:  # its metadata is a Kubernetes ObjectMeta
                assert (
                    kubernetes_errors({"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}, version)
                    == []
                )
            continue
        for version in K8S_VERSIONS:
            assert kubernetes_errors(obj, version) == [], f"{name} on Kubernetes {version}"


def test_the_validators_catch_what_a_cluster_would_refuse(rendered):
    _, objects = rendered
    deployment = copy.deepcopy(_by_kind(objects)["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = READY_PATH
    deployment["spec"]["replicas"] = "1"
    errors = kubernetes_errors(deployment, K8S_VERSIONS[0])
    assert len(errors) == 2 and "'paht' was unexpected" in " ".join(errors)
    hpa = copy.deepcopy(_by_kind(objects)["HorizontalPodAutoscaler"])
    hpa["apiVersion"] = "autoscaling/v2beta2"  # what NVIDIA's chart still renders: removed in Kubernetes 1.26
    with pytest.raises(LookupError, match="no schema"):
        kubernetes_errors(hpa, "1.29")
    monitor = copy.deepcopy(_by_kind(objects)["ServiceMonitor"])
    monitor["spec"]["endpoints"][0]["intreval"] = "5s"
    assert service_monitor_errors(monitor) == [
        "not in the ServiceMonitor schema (dropped or changed by it): spec.endpoints[0].intreval='5s'"
    ]
    monitor["spec"]["endpoints"][0] = {"port": METRICS.name, "scheme": "ftp"}
    assert "scheme" in service_monitor_errors(monitor)[0]


def test_the_yaml_is_lint_clean_and_reads_back_as_the_objects(rendered):
    _, objects = rendered
    for name, obj in objects.items():
        text = f"# header\n{dump(obj, start=True)}"
        assert yamllint_problems(text) == [], name
        assert yaml.safe_load(text) == obj
    config = _by_kind(objects)["ConfigMap"]["data"]["config.yaml"]
    assert yamllint_problems(config) == []  # the adapter's own configuration file, too
    assert yamllint_problems("key: value\nkey: other\n")  # and the linter does complain


def test_ports_follow_the_server_flags(rendered):
    _, objects = rendered
    container = _server(objects)
    for endpoint in ENDPOINTS:
        assert int(_flag(container, endpoint.flag)) == _container_port(container, endpoint.name) == endpoint.port
    service_ports = {p["name"]: p for p in _by_kind(objects)["Service"]["spec"]["ports"]}
    assert set(service_ports) == {e.name for e in ENDPOINTS}
    for endpoint in ENDPOINTS:
        port = service_ports[endpoint.name]
        assert _container_port(container, port["targetPort"]) == port["port"] == int(_flag(container, endpoint.flag))
    assert service_ports[GRPC.name]["appProtocol"] == "kubernetes.io/h2c"


def test_probes_hit_the_health_endpoints_on_the_http_port(rendered):
    _, objects = rendered
    container = _server(objects)
    paths = {kind: container[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths == {"startupProbe": READY_PATH, "livenessProbe": LIVE_PATH, "readinessProbe": READY_PATH}
    for kind in paths:
        assert _container_port(container, container[kind]["httpGet"]["port"]) == int(_flag(container, HTTP.flag))
    assert "--strict-readiness=true" in container["args"]  # ready means every model is loaded


def test_the_service_monitor_and_hpa_find_the_deployment_s_pods(rendered):
    plan, objects = rendered
    kinds = _by_kind(objects)
    deployment, service, monitor, hpa = (
        kinds[k] for k in ("Deployment", "Service", "ServiceMonitor", "HorizontalPodAutoscaler")
    )
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    (scraped,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert scraped["port"] == int(_flag(_server(objects), METRICS.flag)) and endpoint["path"] == METRICS_PATH
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (plan.min_replicas, plan.max_replicas)
    assert deployment["spec"]["replicas"] == plan.min_replicas
    namespaces = {obj["metadata"].get("namespace") for obj in (deployment, service, monitor, hpa)}
    assert namespaces == {plan.namespace}


def test_the_hpa_asks_for_the_metric_the_adapter_rule_makes(rendered):
    plan, objects = rendered
    kinds = _by_kind(objects)
    (metric,) = kinds["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"] == {
        "type": "AverageValue",
        "averageValue": str(plan.queue_target_us),
    }
    (rule,) = yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"])["rules"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"] == QUEUE_METRIC
    assert re.fullmatch(rule["name"]["matches"], QUEUE_SERIES) and rule["seriesQuery"].startswith(QUEUE_SERIES)
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}  # a Pods metric: one value per pod
    query = rule["metricsQuery"].replace("{<<.LabelMatchers>>}", "").replace("<<.GroupBy>>", "pod")
    assert " ".join(query.split()) == NVIDIA_QUERY
    assert WINDOW_S >= 2 * SCRAPE_INTERVAL_S  # delta() needs two samples in the window
    assert kinds["ServiceMonitor"]["spec"]["endpoints"][0]["interval"] == f"{SCRAPE_INTERVAL_S}s"


def test_gpus_and_placement_follow_the_manifest_and_profile(tmp_path):
    for case, gpus in (("h100-s3-two-gpus", 2), ("h100-torch-gs", 1), ("t4-tensorrt-s3-credentials", 1)):
        _, objects = _render(tmp_path, case)
        pod = _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
        assert _server(objects)["resources"]["limits"][GPU_RESOURCE] == str(gpus)
        (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        (expression,) = term["matchExpressions"]
        assert expression == {
            "key": GPU_PRODUCT_LABEL,
            "operator": "In",
            "values": list(get_profile(CASES[case][1]).node_products),
        }
        assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    _, objects = _render(tmp_path, "cpu-pvc")
    pod = _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    assert GPU_RESOURCE not in _server(objects)["resources"]["limits"]
    assert "affinity" not in pod and "tolerations" not in pod


def test_the_repository_comes_from_the_claim_or_the_uri(tmp_path):
    _, objects = _render(tmp_path, "a100-ort-trt-pvc-folder")
    container, pod = _server(objects), _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    assert _flag(container, "--model-repository") == MODELS_MOUNT
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == MODELS_MOUNT]
    assert mount["readOnly"] and mount["subPath"] == "minilm"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    _, objects = _render(tmp_path, "t4-tensorrt-s3-credentials")
    container, pod = _server(objects), _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    assert _flag(container, "--model-repository") == "s3://bucket/minilm"
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    assert container["envFrom"] == [{"secretRef": {"name": "aws-credentials"}}]
    assert pod["serviceAccountName"] == "triton"


def test_the_python_backend_gets_its_packages_and_shared_memory(tmp_path):
    plan, objects = _render(tmp_path, "h100-torch-gs")
    pod = _by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"][-len(plan.packages) :] == list(plan.packages) and init["image"] == plan.image
    assert "torch>=2.5,<2.11" in init["command"]
    container = _server(objects)
    assert container["env"] == [{"name": "TRITONBUILD_SITE_PACKAGES", "value": PIP_TARGET}]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    (written,) = init["volumeMounts"]
    assert written["mountPath"] == PIP_TARGET and mounts[PIP_TARGET]["readOnly"]
    assert written["name"] == mounts[PIP_TARGET]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"]["medium"] == "Memory"
    assert pod["terminationGracePeriodSeconds"] > EXIT_TIMEOUT_S
    assert pod["securityContext"]["runAsNonRoot"]


def test_requests_are_valid_quantities(rendered):
    _, objects = rendered
    quantity = re.compile(r"\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?")
    resources = _server(objects)["resources"]
    for value in [*resources["requests"].values(), *resources["limits"].values()]:
        assert quantity.fullmatch(value), value
    assert resources["requests"]["memory"] == resources["limits"]["memory"]  # shared memory counts against it


@pytest.mark.parametrize("case", ["h100-s3-two-gpus", "cpu-pvc"])
def test_rendered_files_match_golden_files(tmp_path, case):
    # Regenerate after an intended change with UPDATE_GOLDEN=1, then review the diff.
    _, objects = _render(tmp_path, case)
    for name, obj in objects.items():
        golden = GOLDEN / case / name
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(dump(obj, start=True))
        assert dump(obj, start=True) == golden.read_text(), f"{golden} differs"
