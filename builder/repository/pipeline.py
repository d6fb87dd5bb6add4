"""The make-repo, export and validate commands as plans of steps over the builder's stages."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from builder.common.errors import ConfigError
from builder.contract.manifest import MANIFEST, Manifest
from builder.engines import get_backend, names
from builder.engines.base import GateKind, Producer, Staging
from builder.gpus import get_profile
from builder.precision.fidelity import (
    FidelityOptions,
    FidelityReport,
    Reference,
    VariantResult,
    evaluate,
    evaluate_torch,
    markdown_table,
    torch_device,
    write_reports,
)
from builder.precision.presets import PrecisionRecipe, get_recipe
from builder.precision.variants import Variant, VariantFromOnnx
from builder.repository.layout import RepoPlan
from builder.repository.options import ServingOptions
from builder.repository.plan import plan_repository
from builder.repository.repo_writer import (
    ArtifactWriter,
    MixedRepository,
    check_conflicts,
    check_writable,
    publish,
    stage_model_files,
    staging_dir,
)
from builder.repository.steps import Step, run_steps
from builder.sources.export import OnnxFromModel, write_export_record
from builder.sources.parity import ParityReport, check_parity, parity_shapes
from builder.sources.source import ModelInfo, inspect_model, load_graph_module, save_tokenizer_json
from builder.sources.tasks import GraphModule
from builder.support import check, check_validation

Echo = Callable[[str], None]


class _Exported:
    """Holds what the export steps produce for the steps after them."""

    module: GraphModule
    parity: ParityReport
    reference: Reference
    variant: Variant | None = None  # the precision variant a repository serves (backends that serve the variant)
    fidelity: FidelityReport | None = None


def _export_steps(info: ModelInfo, onnx_path: Path, state: _Exported) -> list[Step]:
    def load() -> None:
        state.module = load_graph_module(info)

    def parity() -> None:
        state.parity = check_parity(state.module, onnx_path, info)
        state.parity.raise_on_failure()

    return [
        Step(f"load {info.model_type} ({info.task.name}) from {info.path}", load),
        Step(f"export ONNX → {onnx_path.name}", lambda: OnnxFromModel(info, onnx_path, state.module)()),
        Step(f"check parity with PyTorch at {len(parity_shapes(info.max_length))} shapes", parity),
    ]


def export_onnx(model: str, task: str, output: Path, trust_remote_code: bool, echo: Echo) -> ParityReport:
    """`tritonbuild export`: ONNX + parity.json, tokenizer.json and export.json in `output`."""
    check_writable(output)
    info = inspect_model(model, task, trust_remote_code)
    state = _Exported()
    onnx_path = output / "model.onnx"
    run_steps(_export_steps(info, onnx_path, state), echo)
    save_tokenizer_json(info, output / "tokenizer.json")
    write_export_record(info, output)
    (output / "parity.json").write_text(
        json.dumps(
            {"atol": state.parity.atol, "worst": state.parity.worst, "shapes": [vars(r) for r in state.parity.results]},
            indent=2,
        )
        + "\n"
    )
    echo(state.parity.summary())
    return state.parity


def _manifest(
    info: ModelInfo, plan: RepoPlan, state: _Exported, precision: str, served: Path | None, serving: ServingOptions
) -> Manifest:
    tokenizer = plan.models[0].config
    buckets = dict(tokenizer.parameters)["buckets"]
    parity = state.parity if served is not None else None
    return Manifest(
        name=plan.name,
        task=info.task.name,
        model=str(info.path),
        model_type=info.model_type,
        engine=plan.backend,
        gpu=plan.gpu.name,
        max_length=info.max_length,
        buckets=[int(b) for b in buckets.split(",")],
        max_batch_size=plan.ensemble.max_batch_size,
        outputs=[t.name for t in plan.ensemble.outputs],
        precision=precision,
        parity_max_abs_diff=parity.worst if parity else None,
        parity_shapes=[[r.batch, r.seq] for r in parity.results] if parity else [],
        onnx_bytes=served.stat().st_size if served is not None else None,
        fidelity=state.fidelity.to_dict() if state.fidelity else None,
        gpus=list(serving.gpus),
        steps=[m.config.name for m in plan.models[:-1]],
        tokenizer=next(
            f"{m.config.name}/1/{name}" for m in plan.models for name, what in m.files if what == "tokenizer"
        ),
    )


def variant_of(onnx_path: Path, recipe: PrecisionRecipe) -> Variant:
    """The `recipe` variant of an exported graph, written beside it; the FP32 variant is the export itself."""
    if recipe.name == "fp32":
        return Variant(recipe, onnx_path, onnx_path.stat().st_size)
    return VariantFromOnnx(onnx_path, recipe, onnx_path.with_name(f"model.{recipe.name}.onnx"))()


def _reference_step(info: ModelInfo, state: _Exported, options: FidelityOptions) -> Step:
    def run() -> None:
        state.reference = Reference.compute(state.module, info, options)

    return Step(f"PyTorch FP32 reference on {options.texts} texts and on random ids of the same shapes", run)


def _variant_steps(
    model: str, info: ModelInfo, precision: str, onnx_path: Path, state: _Exported, options: FidelityOptions, echo: Echo
) -> list[Step]:
    recipe = get_recipe(precision)

    def write() -> None:
        state.variant = variant_of(onnx_path, recipe)

    def gate() -> None:
        assert state.variant is not None
        result = evaluate(state.reference, state.variant)
        state.fidelity = FidelityReport(model, info.task.name, state.reference.texts, options.gate, (result,))
        echo(markdown_table(state.fidelity))
        state.fidelity.raise_on_failure()

    steps = [Step(f"{precision} variant of {onnx_path.name}", write)]
    if options.enabled:
        bar = f"min cosine {options.gate.min_cosine}, NaN/Inf rate ≤ {options.gate.max_nonfinite_rate}"
        steps += [_reference_step(info, state, options), Step(f"fidelity gate on {precision} ({bar})", gate)]
    return steps


def _torch_gate_steps(
    model: str, info: ModelInfo, precision: str, kernels: str, state: _Exported, options: FidelityOptions, echo: Echo
) -> list[Step]:
    """The python-torch backend's forward at `precision` against FP32: served only if it clears the gate."""

    def gate() -> None:
        result = evaluate_torch(state.reference, state.module, precision, kernels)
        state.fidelity = FidelityReport(model, info.task.name, state.reference.texts, options.gate, (result,))
        echo(markdown_table(state.fidelity))
        state.fidelity.raise_on_failure()

    bar = f"min cosine {options.gate.min_cosine}, NaN/Inf rate ≤ {options.gate.max_nonfinite_rate}"
    where = torch_device()
    return [_reference_step(info, state, options), Step(f"fidelity gate on {precision} on the {where} ({bar})", gate)]


def _writer(produce: Producer, staging: Staging) -> ArtifactWriter:
    def write(dest: Path) -> None:
        produce(dest, staging)

    return write


@dataclass
class _Outcome:
    """Whether the new repository is in place: what a failure must say about the output folder."""

    published: bool = False

    def mark_published(self) -> None:
        """Called by publish() once every new model folder is in place."""
        self.published = True


@contextmanager
def _truthful_outcome(output: Path, echo: Echo) -> Iterator[_Outcome]:
    """Say what state `output` is in when the build stops early; a Ctrl-C after the publish changes nothing."""
    outcome = _Outcome()
    try:
        yield outcome
    except MixedRepository:
        raise  # its message says which folders are where
    except KeyboardInterrupt:
        if not outcome.published:
            echo(f"interrupted: {output} is unchanged, nothing was published")
            raise
        echo(f"Ctrl-C came after the publish: {output} holds the new repository")
    except BaseException:
        echo(f"{output} {'holds the new repository' if outcome.published else 'is unchanged: nothing was published'}")
        raise


def make_repo(
    model: str,
    task: str,
    name: str,
    backend: str,
    gpu: str,
    output: Path,
    *,
    force: bool = False,
    trust_remote_code: bool = False,
    echo: Echo = print,
    precision: str = "fp32",
    engine_file: Path | None = None,
    fidelity: FidelityOptions | None = None,
    serving: ServingOptions | None = None,
) -> RepoPlan:
    """`tritonbuild make-repo`: plan, export with parity, write and gate the variant, stage, publish into `output`.

    `backend` is the serving backend's name (--engine). Those that serve the precision variant serve it as
    model.onnx, and only once it passes the fidelity gate (unless `fidelity.enabled` is off); a refused
    variant leaves `output` as it was. Each step's progress goes to `echo`.
    """
    profile = get_profile(gpu)
    chosen = get_backend(backend)
    options = fidelity or FidelityOptions()
    gated = options.enabled and chosen.gated(precision)
    host_gpu = gated and chosen.gate is GateKind.TORCH and torch_device() == "cuda"
    check(chosen, precision, profile, gated=gated, host_gpu=host_gpu).raise_if_refused()
    if engine_file is not None and not chosen.takes_engine_file:
        raise ConfigError(f"--engine-file goes with --engine {names(lambda b: b.takes_engine_file)}")
    chosen.preflight(engine_file)  # before anything is exported or written
    check_writable(output)
    info = inspect_model(model, task, trust_remote_code)
    options_serving = serving or ServingOptions()
    plan = plan_repository(info, name, backend, profile, precision, options_serving)
    chosen.check_inputs(info, plan.gpu, precision, engine_file)  # the profile with the overrides
    check_conflicts(plan, output, force)  # again under the lock, when publishing
    state = _Exported()
    with _truthful_outcome(output, echo) as outcome, staging_dir(output) as stage:
        onnx_path = stage / "export" / "model.onnx"

        def served() -> Path:
            return state.variant.path if state.variant is not None else onnx_path

        staging = Staging(info, plan.gpu, precision, stage / "export", engine_file, lambda: state.module, echo)
        producers: dict[str, Producer] = {
            "onnx": lambda dest, _: shutil.copyfile(served(), dest),
            "tokenizer": lambda dest, _: save_tokenizer_json(info, dest),
            "labels": lambda dest, _: dest.write_text(json.dumps(list(info.labels)) + "\n"),
            **chosen.producers(),
        }

        def stage_files() -> None:
            stage_model_files(plan, stage, {what: _writer(produce, staging) for what, produce in producers.items()})
            exported = served() if chosen.exports else None
            _manifest(info, plan, state, precision, exported, options_serving).write(stage / plan.name / MANIFEST)
            shutil.rmtree(stage / "export", ignore_errors=True)

        export_steps = _export_steps(info, onnx_path, state)
        variant_steps = _variant_steps(model, info, precision, onnx_path, state, options, echo)
        torch_gate = _torch_gate_steps(model, info, precision, options_serving.kernels, state, options, echo)
        steps = [
            *(export_steps if chosen.exports else export_steps[:1]),
            *(variant_steps if chosen.serves_variant else []),
            *(torch_gate if gated and chosen.gate is GateKind.TORCH else []),
            Step(f"render and check {len(plan.models)} configs, stage files", stage_files),
            Step(f"publish into {output}", lambda: publish(plan, stage, output, force, outcome.mark_published)),
        ]  # fmt: skip
        run_steps(steps, echo)
    return plan


def _evaluate_step(
    onnx_path: Path, recipe: PrecisionRecipe, state: _Exported, results: list[VariantResult], measurable: bool
) -> Step:
    def run() -> None:
        variant = variant_of(onnx_path, recipe)
        if measurable:
            results.append(evaluate(state.reference, variant))
        else:  # only BF16 (builder.support.check_validation)
            results.append(VariantResult(recipe.name, variant.size_bytes, skipped="no BF16 kernels on the CPU"))

    return Step(f"{recipe.name}: write the variant" + (", evaluate it" if measurable else ""), run)


def validate_precisions(
    model: str,
    task: str,
    precisions: Sequence[str],
    out: Path,
    *,
    options: FidelityOptions,
    skip_bf16: bool,
    trust_remote_code: bool,
    echo: Echo,
) -> FidelityReport:
    """`tritonbuild validate`: export once, write and evaluate each variant, write the reports, then gate."""
    recipes = [get_recipe(p) for p in dict.fromkeys(precisions)]  # an unknown name is refused here
    verdicts = {p.name: check_validation(p.name) for p in recipes}
    if not skip_bf16:
        for verdict in verdicts.values():
            verdict.raise_if_refused()
    check_writable(out)
    info = inspect_model(model, task, trust_remote_code)
    state = _Exported()
    results: list[VariantResult] = []
    with tempfile.TemporaryDirectory(prefix="tritonbuild-validate-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        steps = [*_export_steps(info, onnx_path, state), _reference_step(info, state, options)]
        evaluated = [_evaluate_step(onnx_path, p, state, results, verdicts[p.name].ok) for p in recipes]
        run_steps(steps + evaluated, echo)
    report = FidelityReport(model, info.task.name, state.reference.texts, options.gate, tuple(results))
    json_path, md_path = write_reports(report, out)
    echo(markdown_table(report))
    echo(f"wrote {json_path} and {md_path}")
    report.raise_on_failure()
    return report
