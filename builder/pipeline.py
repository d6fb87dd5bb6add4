"""The make-repo and export commands as plans of steps over the builder's stages."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from builder.engine_build import EngineOptions, check_prebuilt, engine_artifact, require_tensorrt
from builder.errors import ConfigError
from builder.export import OnnxFromModel
from builder.gpus import get_profile
from builder.manifest import MANIFEST, Manifest
from builder.parity import ParityReport, check_parity, parity_shapes
from builder.plan import RepoPlan, plan_repository
from builder.repo_writer import check_conflicts, check_writable, publish, stage_model_files, staging_dir
from builder.source import ModelInfo, inspect_model, load_graph_module, save_tokenizer_json
from builder.steps import Step, run_steps
from builder.tasks import GraphModule

Echo = Callable[[str], None]


class _Exported:
    """Holds what the export steps produce for the steps after them."""

    module: GraphModule
    parity: ParityReport


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
    """`tritonbuild export`: ONNX + parity.json (+ tokenizer.json) in `output`."""
    check_writable(output)
    info = inspect_model(model, task, trust_remote_code)
    state = _Exported()
    onnx_path = output / "model.onnx"
    run_steps(_export_steps(info, onnx_path, state), echo)
    save_tokenizer_json(info, output / "tokenizer.json")
    (output / "parity.json").write_text(
        json.dumps(
            {"atol": state.parity.atol, "worst": state.parity.worst, "shapes": [vars(r) for r in state.parity.results]},
            indent=2,
        )
        + "\n"
    )
    echo(state.parity.summary())
    return state.parity


def _manifest(info: ModelInfo, plan: RepoPlan, parity: ParityReport | None, precision: str) -> Manifest:
    tokenizer = plan.models[0].config
    buckets = dict(tokenizer.parameters)["buckets"]
    return Manifest(
        name=plan.name,
        task=info.task.name,
        model=str(info.path),
        model_type=info.model_type,
        engine=plan.engine,
        gpu=plan.gpu.name,
        max_length=info.max_length,
        buckets=[int(b) for b in buckets.split(",")],
        max_batch_size=plan.ensemble.max_batch_size,
        outputs=[t.name for t in plan.ensemble.outputs],
        precision=precision,
        parity_max_abs_diff=parity.worst if parity else None,
        parity_shapes=[[r.batch, r.seq] for r in parity.results] if parity else [],
    )


def make_repo(
    model: str,
    task: str,
    name: str,
    engine: str,
    gpu: str,
    output: Path,
    *,
    force: bool,
    trust_remote_code: bool,
    echo: Echo,
    precision: str = "fp32",
    engine_file: Path | None = None,
) -> RepoPlan:
    """`tritonbuild make-repo`: plan, export with parity (ONNX engines), stage, then publish into `output`."""
    profile = get_profile(gpu)
    if engine_file is not None and engine != "tensorrt":
        raise ConfigError("--engine-file goes with --engine tensorrt")
    if engine == "tensorrt" and engine_file is None:
        require_tensorrt()  # before anything is exported or written
    check_writable(output)
    info = inspect_model(model, task, trust_remote_code)
    plan = plan_repository(info, name, engine, profile, precision)
    if engine_file is not None:
        check_prebuilt(engine_file, profile, precision, info.max_length)
    needs_onnx = any(producer == "onnx" for m in plan.models for _, producer in m.files)
    check_conflicts(plan, output, force)
    state = _Exported()
    with staging_dir(output) as stage:
        onnx_path = stage / "export" / "model.onnx"

        def tensorrt_engine(dest: Path) -> None:
            tokenizer = stage / "export" / "tokenizer.json"
            save_tokenizer_json(info, tokenizer)
            options = EngineOptions(profile, precision, info.max_length)
            engine_artifact(dest, dest.parent / "model.onnx", tokenizer, options, engine_file, echo)

        artifacts = {
            "onnx": lambda dest: shutil.copyfile(onnx_path, dest),
            "tokenizer": lambda dest: save_tokenizer_json(info, dest),
            "labels": lambda dest: dest.write_text(json.dumps(list(info.labels)) + "\n"),
            "hf_model": lambda dest: state.module.model.save_pretrained(dest),
            "tensorrt_engine": tensorrt_engine,
        }

        def stage_files() -> None:
            stage_model_files(plan, stage, artifacts)
            parity = state.parity if needs_onnx else None
            _manifest(info, plan, parity, precision).write(stage / plan.name / MANIFEST)
            shutil.rmtree(stage / "export", ignore_errors=True)

        export_steps = _export_steps(info, onnx_path, state)
        steps = [
            *(export_steps if needs_onnx else export_steps[:1]),
            Step(f"render and check {len(plan.models)} configs, stage files", stage_files),
            Step(f"publish into {output}", lambda: publish(plan, stage, output)),
        ]
        run_steps(steps, echo)
    return plan
