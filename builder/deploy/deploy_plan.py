"""Plan a cluster deployment: a pure function from a repository's facts and the options to a typed DeployPlan.

Every number the manifests carry (GPUs, requests, probe budgets, the autoscaling target) is decided here, and
every refusal happens here, before builder/deploy/k8s_objects.py and kserve_objects.py turn the plan into
objects.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from builder.common.errors import DeployError
from builder.deploy.autoscaling import QUEUE_HEADROOM_US
from builder.deploy.deploy_facts import RepositoryFacts
from builder.gpus import get_profile
from builder.serving.endpoints import ENDPOINTS, SERVER_FLAGS
from builder.tensorrt.ngc import TORCH_PACKAGES, TRITON_IMAGE

TARGETS = ("kubernetes", "kserve")
URI_SCHEMES = ("s3://", "gs://")  # what tritonserver's --model-repository (and KServe's storageUri) pull from
MODELS_MOUNT = "/models"  # where a PersistentVolumeClaim holding the repository is mounted
PIP_TARGET = "/opt/tritonbuild/pip"  # the init container's `pip install --target`, first on the stubs' sys.path
GIB = 1 << 30
SHM_BYTES = GIB  # /dev/shm for the Python backend's tensors (scripts/serve_ngc.sh: --shm-size=1g)
BASE_MEMORY_BYTES = 2 * GIB  # tritonserver, the stubs' interpreters and the packages they import
MIN_CPUS = 2
PROBE_PERIOD_S = 10
# A Service name is an RFC 1035 label; every object is named after the deployment, so all names follow it.
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # PVC, Secret and ServiceAccount names


@dataclass(frozen=True)
class RepositorySource:
    """Where the pods get the repository: a PersistentVolumeClaim (and a folder in it) or an object-store URI."""

    pvc: str | None = None
    pvc_path: str = ""  # the repository's folder inside the claim; "" for its root
    uri: str | None = None

    @classmethod
    def parse(cls, pvc: str | None, storage_uri: str | None) -> RepositorySource:
        """`--pvc NAME[/PATH]` or `--storage-uri s3://...|gs://...`: exactly one of them."""
        if (pvc is None) == (storage_uri is None):
            raise DeployError(
                "give the repository's location once: --pvc or --storage-uri" + (", not both" if pvc else ""),
                hint="--pvc NAME[/PATH] mounts a PersistentVolumeClaim; --storage-uri s3://bucket/repo (or gs://) "
                "lets the server pull it",
            )
        if storage_uri is not None:
            if not storage_uri.startswith(URI_SCHEMES) or not storage_uri.partition("://")[2].strip("/"):
                raise DeployError(
                    f"--storage-uri {storage_uri}: not an s3:// or gs:// location",
                    hint="e.g. --storage-uri s3://bucket/repo after `aws s3 sync repo/ s3://bucket/repo/`",
                )
            return cls(uri=storage_uri.rstrip("/"))
        assert pvc is not None
        name, _, path = pvc.partition("/")
        parts = PurePosixPath(path).parts
        if not _SUBDOMAIN.fullmatch(name) or ".." in parts:
            raise DeployError(f"--pvc {pvc}: not a claim name and a folder in it", hint="e.g. --pvc models/minilm")
        return cls(pvc=name, pvc_path="/".join(parts))

    @property
    def server_uri(self) -> str:
        """The value of tritonserver's --model-repository."""
        return self.uri if self.uri is not None else MODELS_MOUNT

    @property
    def kserve_uri(self) -> str:
        """KServe's storageUri: the URI itself, or pvc://CLAIM/PATH."""
        return self.uri if self.uri is not None else f"pvc://{self.pvc}/{self.pvc_path}".rstrip("/")


@dataclass(frozen=True)
class DeployOptions:
    """What the user chose; `plan_deploy` checks it against the repository."""

    target: str
    source: RepositorySource
    gpu: str | None = None  # the GPU profile; None: the one the repository was built for
    name: str | None = None  # None: the ensemble's name
    namespace: str | None = None  # None: kubectl's current namespace
    min_replicas: int = 1
    max_replicas: int = 4
    queue_target_us: int | None = None  # None: the largest batching delay + QUEUE_HEADROOM_US
    image: str = TRITON_IMAGE
    packages_in_image: bool = False  # a derived image that already has the Python backend's packages
    service_account: str | None = None  # cloud identity for the object store (IRSA, GKE Workload Identity)
    storage_secret: str | None = None  # kubernetes: a Secret of AWS_* (or other) variables for the server


@dataclass(frozen=True)
class Resources:
    """What one pod requests; memory is also its limit, and the memory-backed /dev/shm counts against it."""

    cpus: int
    memory_bytes: int
    gpus: int  # nvidia.com/gpu; 0 for a CPU-only deployment

    @property
    def memory(self) -> str:
        """The memory as a Kubernetes quantity."""
        return f"{math.ceil(self.memory_bytes / GIB)}Gi"


@dataclass(frozen=True)
class DeployPlan:
    """Everything the rendered objects contain, decided and checked."""

    target: str
    name: str
    namespace: str | None
    image: str
    source: RepositorySource
    resources: Resources
    node_products: tuple[str, ...]  # nvidia.com/gpu.product values the pods may run on; () on the CPU
    packages: tuple[str, ...]  # what the init container pip-installs into PIP_TARGET; () for none
    startup_failures: int  # the startup probe's failureThreshold: the readiness budget in PROBE_PERIOD_S steps
    ort_trt_cache: bool  # an emptyDir at ORT_TRT_CACHE for ONNX Runtime's TensorRT engines
    min_replicas: int
    max_replicas: int
    queue_target_us: int
    service_account: str | None
    storage_secret: str | None

    @property
    def selector(self) -> dict[str, str]:
        """The labels that tie the Service, the ServiceMonitor and the HPA's pods to this Deployment."""
        return {"app.kubernetes.io/name": self.name}

    @property
    def labels(self) -> dict[str, str]:
        """Labels on every object."""
        return {**self.selector, "app.kubernetes.io/managed-by": "tritonbuild"}

    @property
    def server_args(self) -> tuple[str, ...]:
        """The container's command line: the same flags as `tritonbuild serve`, listening on every address."""
        ports = tuple(endpoint.arg() for endpoint in ENDPOINTS)
        return ("tritonserver", f"--model-repository={self.source.server_uri}", *ports, *SERVER_FLAGS)


def _check_name(name: str, what: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not pattern.fullmatch(name):
        raise DeployError(
            f"{what} '{name}' is not a valid Kubernetes name",
            hint="lower-case letters, digits and '-', starting with a letter (max 63)"
            + (": name the deployment with --name" if what == "deployment name" else ""),
        )
    return name


def _deployment_name(facts: RepositoryFacts, options: DeployOptions) -> str:
    if options.name is None and len(facts.manifests) > 1:
        raise DeployError(
            f"the repository holds {len(facts.manifests)} ensembles: " + ", ".join(m.name for m in facts.manifests),
            hint="name the deployment with --name",
        )
    return _check_name(options.name or facts.manifests[0].name, "deployment name")


def _gpu_count(facts: RepositoryFacts, options: DeployOptions) -> tuple[int, tuple[str, ...]]:
    built = get_profile(facts.gpu_profile)
    profile = get_profile(options.gpu or built.name)
    if profile.name != built.name:
        if built.is_gpu and not profile.is_gpu:
            raise DeployError(
                f"the repository was built for {built.name}: its models run as KIND_GPU instances, which a "
                "CPU-only deployment (no nvidia.com/gpu, CPU nodes) cannot load",
                hint=f"deploy with --gpu {built.name}, or rebuild with `tritonbuild make-repo --gpu cpu`",
            )
        raise DeployError(
            f"the repository was built for the {built.name} profile, not {profile.name}",
            hint=f"rebuild with `tritonbuild make-repo --gpu {profile.name}`: batching, instances and engines "
            "are chosen per GPU",
        )
    if not profile.is_gpu:
        return 0, ()
    indices = facts.gpu_indices
    if indices and indices != tuple(range(len(indices))):
        raise DeployError(
            f"the instances are placed on GPUs {','.join(map(str, indices))}, but a pod numbers its GPUs from 0",
            hint=f"rebuild with `make-repo --gpus {','.join(map(str, range(len(indices))))}` for "
            f"{len(indices)} GPUs per pod",
        )
    return max(len(indices), 1), profile.node_products


def _queue_target(facts: RepositoryFacts, options: DeployOptions) -> int:
    if options.queue_target_us is None:
        return facts.batching_delay_us + QUEUE_HEADROOM_US
    if options.queue_target_us <= facts.batching_delay_us:
        raise DeployError(
            f"--queue-target-us {options.queue_target_us} is not above the repository's batching delay "
            f"({facts.batching_delay_us} µs), which Triton counts as queue time: the HPA would always scale out",
            hint=f"leave it out for {facts.batching_delay_us + QUEUE_HEADROOM_US} µs",
        )
    return options.queue_target_us


def _check_options(options: DeployOptions) -> None:
    if options.target not in TARGETS:
        raise DeployError(f"unknown target '{options.target}'", hint=f"choose one of: {', '.join(TARGETS)}")
    if not 1 <= options.min_replicas <= options.max_replicas:
        raise DeployError(
            f"replicas {options.min_replicas}..{options.max_replicas}: need 1 <= --min-replicas <= --max-replicas"
        )
    if options.target == "kserve" and options.storage_secret:
        raise DeployError(
            "--storage-secret is for --target kubernetes: KServe's storage initializer reads credentials from the "
            "service account",
            hint="--service-account NAME, with the Secret attached to that ServiceAccount",
        )
    if options.namespace is not None:
        _check_name(options.namespace, "namespace")
    for value, what in ((options.service_account, "service account"), (options.storage_secret, "secret")):
        if value is not None:
            _check_name(value, what, _SUBDOMAIN)


def plan_deploy(facts: RepositoryFacts, options: DeployOptions) -> DeployPlan:
    """Decide the manifests' contents; raises DeployError with a hint for anything a cluster would refuse."""
    _check_options(options)
    name = _deployment_name(facts, options)
    gpus, products = _gpu_count(facts, options)
    serving = facts.serving
    packages = () if options.packages_in_image else serving.packages + (TORCH_PACKAGES if serving.torch_models else ())
    processes = sum(model.instances(gpus) for model in facts.models)
    host_bytes = sum(model.bytes * model.instances(gpus) for model in facts.models)
    return DeployPlan(
        target=options.target,
        name=name,
        namespace=options.namespace,
        image=options.image,
        source=options.source,
        resources=Resources(max(MIN_CPUS, processes), BASE_MEMORY_BYTES + SHM_BYTES + host_bytes, gpus),
        node_products=products,
        packages=packages,
        startup_failures=math.ceil(serving.ready_timeout_s / PROBE_PERIOD_S),
        ort_trt_cache=bool(serving.ort_trt_models),
        min_replicas=options.min_replicas,
        max_replicas=options.max_replicas,
        queue_target_us=_queue_target(facts, options),
        service_account=options.service_account,
        storage_secret=options.storage_secret,
    )
