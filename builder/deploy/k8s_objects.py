"""Kubernetes objects of a DeployPlan, as plain dicts: Deployment, Service, HPA, ServiceMonitor, adapter rules.

Nothing is decided here that deploy_plan.py, builder/serving/endpoints.py or autoscaling.py did not
decide; the pod parts that KServe's InferenceService reuses (kserve_objects.py) are public.
"""

from __future__ import annotations

from typing import Any

from builder.deploy.autoscaling import QUEUE_METRIC, SCRAPE_INTERVAL_S, adapter_rule
from builder.deploy.deploy_plan import MODELS_MOUNT, PIP_TARGET, PROBE_PERIOD_S, SHM_BYTES, DeployPlan
from builder.deploy.yaml_text import dump
from builder.engines.onnxruntime_trt import ORT_TRT_CACHE
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

Object = dict[str, Any]
GPU_RESOURCE = "nvidia.com/gpu"  # the NVIDIA device plugin's extended resource
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # set on GPU nodes by NVIDIA GPU feature discovery
SERVER_CONTAINER = "tritonserver"
# The NGC image's own non-root user (triton-server); the init container writes PIP_TARGET as the same user.
IMAGE_UID = 1000
# Time to finish in-flight requests on scale-in or rollout: more than the server's own exit timeout.
TERMINATION_GRACE_S = EXIT_TIMEOUT_S + 20
ADAPTER_FOLDER = "prometheus-adapter"  # rendered apart: it belongs in the adapter's namespace, not the app's


def _metadata(plan: DeployPlan, name: str) -> Object:
    meta: Object = {"name": name, "labels": dict(plan.labels)}
    if plan.namespace:
        meta["namespace"] = plan.namespace
    return meta


def _volume(
    name: str, mount: str, source: Object, read_only: bool = False, sub_path: str = ""
) -> tuple[Object, Object]:
    mount_spec: Object = {"name": name, "mountPath": mount}
    if read_only:
        mount_spec["readOnly"] = True
    if sub_path:
        mount_spec["subPath"] = sub_path
    return {"name": name, **source}, mount_spec


def pod_volumes(plan: DeployPlan, repository: bool = True) -> list[tuple[Object, Object]]:
    """(volume, the server container's mount) pairs; `repository` adds the PersistentVolumeClaim, if any."""
    pairs = [_volume("dshm", "/dev/shm", {"emptyDir": {"medium": "Memory", "sizeLimit": f"{SHM_BYTES >> 20}Mi"}})]
    if plan.packages:
        pairs.append(_volume("python-packages", PIP_TARGET, {"emptyDir": {}}, read_only=True))
    if plan.ort_trt_cache:
        pairs.append(_volume("ort-trt-cache", ORT_TRT_CACHE, {"emptyDir": {}}))
    if repository and plan.source.pvc:
        claim = {"persistentVolumeClaim": {"claimName": plan.source.pvc, "readOnly": True}}
        pairs.append(_volume("model-repository", MODELS_MOUNT, claim, read_only=True, sub_path=plan.source.pvc_path))
    return pairs


def init_containers(plan: DeployPlan) -> list[Object]:
    """The Python backend's packages, pip-installed into an emptyDir before the server starts (none: [])."""
    if not plan.packages:
        return []
    command = ["python3", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    return [
        {
            "name": "python-packages",
            "image": plan.image,
            "command": [*command, "--target", PIP_TARGET, *plan.packages],
            "volumeMounts": [{"name": "python-packages", "mountPath": PIP_TARGET}],
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
        }
    ]


def server_env(plan: DeployPlan) -> list[Object]:
    """The stubs find the installed packages through TRITONBUILD_SITE_PACKAGES (templates/python)."""
    return [{"name": "TRITONBUILD_SITE_PACKAGES", "value": PIP_TARGET}] if plan.packages else []


def resources(plan: DeployPlan) -> Object:
    """Requests, and limits for memory (shared memory included) and GPUs; no CPU limit, which throttles."""
    limits: Object = {"memory": plan.resources.memory}
    if plan.resources.gpus:
        limits[GPU_RESOURCE] = str(plan.resources.gpus)
    return {"requests": {"cpu": str(plan.resources.cpus), "memory": plan.resources.memory}, "limits": limits}


def placement(plan: DeployPlan) -> Object:
    """Pod-spec fields that put GPU pods on nodes with one of the profile's boards ({} on the CPU).

    A node selector matches one label value; a profile covers several boards, so this is a node affinity.
    """
    if not plan.node_products:
        return {}
    term = {"matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": list(plan.node_products)}]}
    return {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }


def _probe(path: str, period_s: int, failures: int) -> Object:
    return {"httpGet": {"path": path, "port": HTTP.name}, "periodSeconds": period_s, "failureThreshold": failures}


def _server_container(plan: DeployPlan, mounts: list[Object]) -> Object:
    container: Object = {
        "name": SERVER_CONTAINER,
        "image": plan.image,
        "args": list(plan.server_args),
        "ports": [{"name": e.name, "containerPort": e.port, "protocol": "TCP"} for e in ENDPOINTS],
        "resources": resources(plan),
        # Loading is bounded by the startup probe; afterwards a hung server restarts and a busy one stops
        # getting new requests.
        "startupProbe": _probe(READY_PATH, PROBE_PERIOD_S, plan.startup_failures),
        "livenessProbe": _probe(LIVE_PATH, PROBE_PERIOD_S, 3),
        "readinessProbe": _probe(READY_PATH, 5, 3),
        "volumeMounts": mounts,
    }
    if plan.packages:
        container["env"] = server_env(plan)
    if plan.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": plan.storage_secret}}]
    return container


def deployment(plan: DeployPlan) -> Object:
    """The Deployment: min_replicas pods of tritonserver; rollouts add a pod before removing one."""
    pairs = pod_volumes(plan)
    pod: Object = {
        "securityContext": {
            "runAsUser": IMAGE_UID,
            "runAsGroup": IMAGE_UID,
            "fsGroup": IMAGE_UID,
            "runAsNonRoot": True,
        },
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        **placement(plan),
    }
    if plan.service_account:
        pod["serviceAccountName"] = plan.service_account
    if plan.packages:
        pod["initContainers"] = init_containers(plan)
    pod["containers"] = [_server_container(plan, [mount for _, mount in pairs])]
    pod["volumes"] = [volume for volume, _ in pairs]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(plan, plan.name),
        "spec": {
            "replicas": plan.min_replicas,
            "selector": {"matchLabels": dict(plan.selector)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": dict(plan.labels)}, "spec": pod},
        },
    }


def service(plan: DeployPlan) -> Object:
    """HTTP, gRPC and metrics on the server's own port numbers, to the Deployment's pods."""
    app_protocols = {HTTP.name: "http", GRPC.name: "kubernetes.io/h2c", METRICS.name: "http"}
    ports = [
        {"name": e.name, "port": e.port, "targetPort": e.name, "protocol": "TCP", "appProtocol": app_protocols[e.name]}
        for e in ENDPOINTS
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(plan, plan.name),
        "spec": {"type": "ClusterIP", "selector": dict(plan.selector), "ports": ports},
    }


def service_monitor(plan: DeployPlan) -> Object:
    """Prometheus Operator scrapes the Service's metrics port, which labels each series with its pod."""
    endpoint = {"port": METRICS.name, "path": METRICS_PATH, "interval": f"{SCRAPE_INTERVAL_S}s"}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(plan, plan.name),
        "spec": {"selector": {"matchLabels": dict(plan.selector)}, "endpoints": [endpoint]},
    }


def autoscaler(plan: DeployPlan) -> Object:
    """autoscaling/v2 on the adapter's queue-time Pods metric, averaged over the Deployment's pods."""
    metric = {
        "type": "Pods",
        "pods": {
            "metric": {"name": QUEUE_METRIC},
            "target": {"type": "AverageValue", "averageValue": str(plan.queue_target_us)},
        },
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(plan, plan.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": plan.name},
            "minReplicas": plan.min_replicas,
            "maxReplicas": plan.max_replicas,
            "metrics": [metric],
        },
    }


def adapter_rules(plan: DeployPlan) -> Object:
    """prometheus-adapter's configuration file (config.yaml) with the queue-time rule, as a ConfigMap.

    Not namespaced here: it goes where the adapter runs (with the Helm chart: `rules.existing` names it).
    """
    config = dump({"rules": [adapter_rule()]}, start=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{plan.name}-adapter-rules", "labels": dict(plan.labels)},
        "data": {"config.yaml": config},
    }


def kubernetes_objects(plan: DeployPlan) -> dict[str, Object]:
    """File name → object, for `--target kubernetes`."""
    return {
        "deployment.yaml": deployment(plan),
        "service.yaml": service(plan),
        "hpa.yaml": autoscaler(plan),
        "servicemonitor.yaml": service_monitor(plan),
        f"{ADAPTER_FOLDER}/adapter-rules.yaml": adapter_rules(plan),
    }
