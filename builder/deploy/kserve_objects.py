"""KServe's InferenceService of a DeployPlan, on the kserve-tritonserver runtime (`modelFormat: triton`).

The runtime (KServe's config/runtimes/kserve-tritonserver.yaml) runs `tritonserver --model-store=/mnt/models`
on its own ports and takes the image tag from `runtimeVersion`; KServe's storage initializer fetches the
storage URI into /mnt/models. No args are added: KServe before 0.20 replaces the runtime's arguments with the
InferenceService's instead of appending them, and Triton's defaults already give strict readiness and metrics.
"""

from __future__ import annotations

from builder.deploy.deploy_plan import DeployPlan
from builder.deploy.k8s_objects import Object, init_containers, placement, pod_volumes, resources, server_env
from builder.serving.endpoints import Endpoint
from builder.tensorrt.ngc import TRITON_IMAGE

# KServe 0.16 and later: a plain Deployment and Service (the older name, RawDeployment, is deprecated). Knative,
# the other mode, allows one port per container.
DEPLOYMENT_MODE = "Standard"
RUNTIME_HTTP = Endpoint("http", 8080, "--http-port")  # set by the runtime's arguments, not by tritonbuild
RUNTIME_GRPC = Endpoint("grpc", 9000, "--grpc-port")
_NGC_REPOSITORY = TRITON_IMAGE.partition(":")[0]


def _image_fields(plan: DeployPlan) -> Object:
    repository, _, tag = plan.image.partition(":")
    return {"runtimeVersion": tag} if repository == _NGC_REPOSITORY and tag else {"image": plan.image}


def inference_service(plan: DeployPlan) -> Object:
    """serving.kserve.io/v1beta1 InferenceService: the repository's storage URI, GPUs, ports and packages."""
    pairs = pod_volumes(plan, repository=False)  # KServe mounts the storage URI itself
    model: Object = {
        "modelFormat": {"name": "triton"},
        "protocolVersion": "v2",
        **_image_fields(plan),
        "storageUri": plan.source.kserve_uri,
        "ports": [{"name": e.name, "containerPort": e.port, "protocol": "TCP"} for e in (RUNTIME_HTTP, RUNTIME_GRPC)],
        "resources": resources(plan),
        "volumeMounts": [mount for _, mount in pairs],
    }
    if plan.packages:
        model["env"] = server_env(plan)
    predictor: Object = {"minReplicas": plan.min_replicas, "maxReplicas": plan.max_replicas, **placement(plan)}
    if plan.service_account:
        predictor["serviceAccountName"] = plan.service_account
    if plan.packages:
        predictor["initContainers"] = init_containers(plan)
    predictor["volumes"] = [volume for volume, _ in pairs]
    predictor["model"] = model
    metadata: Object = {
        "name": plan.name,
        "labels": dict(plan.labels),
        "annotations": {"serving.kserve.io/deploymentMode": DEPLOYMENT_MODE},
    }
    if plan.namespace:
        metadata["namespace"] = plan.namespace
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def kserve_objects(plan: DeployPlan) -> dict[str, Object]:
    """File name → object, for `--target kserve`."""
    return {"inferenceservice.yaml": inference_service(plan)}
