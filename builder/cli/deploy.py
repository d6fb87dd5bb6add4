"""`tritonbuild deploy`: Kubernetes or KServe manifests for a built model repository."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli.args import GpuArgs
from builder.deploy.deploy_facts import read_repository
from builder.deploy.deploy_plan import TARGETS, DeployOptions, DeployPlan, RepositorySource, plan_deploy
from builder.deploy.k8s_objects import ADAPTER_FOLDER, Object, kubernetes_objects
from builder.deploy.kserve_objects import kserve_objects
from builder.deploy.yaml_text import write_objects
from builder.gpus import GpuProfile
from builder.tensorrt.ngc import TRITON_IMAGE


def render(plan: DeployPlan) -> dict[str, Object]:
    """File name → object for the plan's target."""
    return kserve_objects(plan) if plan.target == "kserve" else kubernetes_objects(plan)


def _next_steps(plan: DeployPlan, output: Path) -> list[str]:
    namespace = f" -n {plan.namespace}" if plan.namespace else ""
    lines = [f"apply: kubectl apply{namespace} -f {output}"]
    if plan.target == "kubernetes":
        lines.append(
            f"autoscaling: kubectl apply -n <prometheus-adapter's namespace> -f {output / ADAPTER_FOLDER}, "
            f"then point the adapter at ConfigMap {plan.name}-adapter-rules (Helm: --set rules.existing=...)"
        )
    if plan.packages:
        lines.append(f"each pod pip-installs first (needs PyPI): {' '.join(plan.packages)}")
    return lines


@click.command()
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), required=True, help="a make-repo folder")
@click.option("--target", type=click.Choice(TARGETS), required=True, help="plain Kubernetes objects, or KServe")
@GpuArgs(default=None, help="GPU profile [default: the one the repo was built for]")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), required=True, help="folder for the YAML")
@click.option("--pvc", help="the repository is on this PersistentVolumeClaim: NAME or NAME/FOLDER")
@click.option("--storage-uri", help="the server pulls the repository from s3://BUCKET/PATH or gs://BUCKET/PATH")
@click.option("--name", help="name of every object [default: the ensemble's]")
@click.option("--namespace", help="namespace of the objects [default: kubectl's]")
@click.option("--min-replicas", type=click.IntRange(1), default=1, show_default=True)
@click.option("--max-replicas", type=click.IntRange(1), default=4, show_default=True)
@click.option(
    "--queue-target-us",
    type=click.IntRange(1),
    help="HPA target: queue µs per request per pod [default: the largest batching delay + 1000]",
)
@click.option("--image", default=TRITON_IMAGE, show_default=True, help="server image (a derived one: see README)")
@click.option("--packages-in-image", is_flag=True, help="the image has the Python backend's packages: no pip init")
@click.option("--service-account", help="pods run as this ServiceAccount (cloud identity for the object store)")
@click.option("--storage-secret", help="kubernetes: a Secret whose keys become the server's environment (AWS_*)")
@click.option("--force", is_flag=True, help="replace files rendered before")
def deploy(
    repo: Path,
    target: str,
    gpu: GpuProfile | None,
    output: Path,
    pvc: str | None,
    storage_uri: str | None,
    name: str | None,
    namespace: str | None,
    min_replicas: int,
    max_replicas: int,
    queue_target_us: int | None,
    image: str,
    packages_in_image: bool,
    service_account: str | None,
    storage_secret: str | None,
    force: bool,
) -> None:
    """Render a Deployment, Service, HPA and ServiceMonitor (or a KServe InferenceService) for REPO.

    Reads the repository's NAME/tritonbuild.json and configs: the image, GPUs, node placement, packages,
    probes and requests follow from them and the GPU profile. Nothing is sent to a cluster.
    """
    options = DeployOptions(
        target=target,
        source=RepositorySource.parse(pvc, storage_uri),
        gpu=gpu.name if gpu else None,
        name=name,
        namespace=namespace,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        queue_target_us=queue_target_us,
        image=image,
        packages_in_image=packages_in_image,
        service_account=service_account,
        storage_secret=storage_secret,
    )
    plan = plan_deploy(read_repository(repo, image), options)
    header = "rendered by `tritonbuild deploy`: render again rather than edit"
    for path in write_objects(render(plan), output, header, force):
        click.echo(f"wrote {path}")
    for line in _next_steps(plan, output):
        click.echo(line)
