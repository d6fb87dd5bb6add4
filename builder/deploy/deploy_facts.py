"""What a built repository tells a cluster deployment: its manifests, the NGC serve plan and its models' loads.

Read once from disk here, so that planning the manifests (deploy_plan.py) is a pure function of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.common.errors import DeployError
from builder.contract.manifest import MANIFEST, Manifest
from builder.repository.modelconfig import parse_config
from builder.tensorrt.ngc import ServePlan, plan_serving


@dataclass(frozen=True)
class ModelLoad:
    """One model of the repository: the bytes of its folder and where its instances run."""

    name: str
    bytes: int  # every file under the model's folder: what each of its instances loads
    cpu_instances: int
    gpu_groups: tuple[tuple[int, int], ...]  # KIND_GPU groups: (count, GPUs listed); 0 listed means every GPU

    def instances(self, gpus: int) -> int:
        """Processes this model runs on a server that sees `gpus` GPUs."""
        return self.cpu_instances + sum(count * (listed or gpus) for count, listed in self.gpu_groups)


@dataclass(frozen=True)
class RepositoryFacts:
    """A repository as `tritonbuild deploy` needs it."""

    manifests: tuple[Manifest, ...]  # one per ensemble, from NAME/tritonbuild.json
    serving: ServePlan  # packages, readiness budget, ONNX Runtime TensorRT and python-torch models
    models: tuple[ModelLoad, ...]
    batching_delay_us: int  # the largest dynamic-batching delay of any model: queue time by design

    @property
    def gpu_profile(self) -> str:
        """The GPU profile every ensemble was built for."""
        return self.manifests[0].gpu

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        """GPUs the ensembles' instances are placed on (`make-repo --gpus`); () when Triton chooses."""
        return tuple(sorted({i for m in self.manifests for i in m.gpus}))


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _load(config_path: Path) -> tuple[ModelLoad, int]:
    config = parse_config(config_path.read_text(), str(config_path))
    cpu = sum(g.count or 1 for g in config.instance_group if g.kind != g.KIND_GPU)
    gpu = tuple((g.count or 1, len(g.gpus)) for g in config.instance_group if g.kind == g.KIND_GPU)
    if config.platform != "ensemble" and not config.instance_group:
        cpu = 1  # Triton's default: one instance
    load = ModelLoad(config.name, _folder_bytes(config_path.parent), cpu, gpu)
    return load, config.dynamic_batching.max_queue_delay_microseconds


def read_repository(repo: Path, image: str) -> RepositoryFacts:
    """Read the manifests and configs of `repo`; refuse a folder that `tritonbuild make-repo` did not write."""
    if not repo.is_dir():
        raise DeployError(f"model repository {repo} does not exist", hint="build one with tritonbuild make-repo")
    paths = sorted(repo.glob(f"*/{MANIFEST}"))
    if not paths:
        raise DeployError(
            f"{repo} has no {MANIFEST} in any model folder",
            hint="deploy renders from the manifest `tritonbuild make-repo` writes beside the ensemble: rebuild with it",
        )
    manifests = tuple(Manifest.read(repo, p.parent.name) for p in paths)
    profiles = sorted({m.gpu for m in manifests})
    if len(profiles) > 1:
        raise DeployError(
            f"the ensembles of {repo} were built for different GPU profiles: {', '.join(profiles)}",
            hint="one Deployment runs on one kind of GPU: build each profile into its own repository",
        )
    loads = [_load(p) for p in sorted(repo.glob("*/config.pbtxt"))]
    return RepositoryFacts(
        manifests=manifests,
        serving=plan_serving(repo, image),
        models=tuple(load for load, _ in loads),
        batching_delay_us=max((delay for _, delay in loads), default=0),
    )
