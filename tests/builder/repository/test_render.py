import os
from pathlib import Path, PurePosixPath

import jinja2
import pytest

from builder import __version__
from builder.common.errors import ConfigError
from builder.engines import BACKENDS
from builder.gpus import get_profile
from builder.repository.modelconfig import ModelConfigSpec, TensorSpec, parse_config
from builder.repository.plan import plan_repository
from builder.repository.render import ENV, render_config
from builder.sources.source import inspect_model

GOLDEN = Path(__file__).parents[2] / "golden"
CASES = {
    "minilm-cpu": ("minilm", "feature-extraction", "python-onnxruntime", "cpu"),
    "minilm-t4-ort": ("minilm", "feature-extraction", "onnxruntime", "t4"),
    "distilbert-cls-cpu": ("distilbert", "text-classification", "python-onnxruntime", "cpu"),
    "gpt2-lm-h100": ("gpt2", "causal-lm", "python-onnxruntime", "h100"),
    "minilm-t4-trt-hybrid": ("minilm", "feature-extraction", "tensorrt", "t4", "hybrid"),
    "minilm-a100-ort-trt-hybrid": ("minilm", "feature-extraction", "onnxruntime-trt", "a100", "hybrid"),
    "minilm-h100-torch-fp16": ("minilm", "feature-extraction", "python-torch", "h100", "fp16"),
}


def _plan(case, tiny_models):
    source, task, engine, gpu, *precision = CASES[case]
    model = "minilm" if source == "minilm" else str(tiny_models[source])
    return plan_repository(inspect_model(model, task), "m", engine, get_profile(gpu), *precision)


@pytest.mark.parametrize("case", CASES)
def test_rendered_configs_match_golden_files(case, tiny_models):
    # Regenerate after an intended change with UPDATE_GOLDEN=1, then review the diff.
    for model in _plan(case, tiny_models).models:
        text = render_config(model.config).replace(__version__, "VERSION")
        golden = GOLDEN / f"{case}__{model.config.name}.pbtxt"
        if os.environ.get("UPDATE_GOLDEN"):
            golden.write_text(text)
        assert text == golden.read_text(), f"{golden.name} differs"
        parsed = parse_config(text)
        assert parsed.name == model.config.name
        assert [i.name for i in parsed.input] == [t.name for t in model.config.inputs]
        assert parsed.max_batch_size == model.config.max_batch_size


def test_every_serving_backend_has_a_golden_config():
    covered = {backend for _, _, backend, *_ in CASES.values()}
    assert covered == set(BACKENDS), f"no golden config for {sorted(set(BACKENDS) - covered)}: add a case to CASES"
    for case in CASES:
        assert (GOLDEN / f"{case}__m_model.pbtxt").is_file(), f"{case}: run with UPDATE_GOLDEN=1 and review the file"


def test_rendered_ensemble_round_trips_through_modelconfig(tiny_models):
    plan = _plan("minilm-cpu", tiny_models)
    parsed = parse_config(render_config(plan.ensemble))
    steps = parsed.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["m_tokenizer", "m_model", "m_post"]
    assert dict(steps[2].input_map) == {"last_hidden_state": "last_hidden_state", "attention_mask": "attention_mask"}
    assert parsed.platform == "ensemble" and not parsed.HasField("dynamic_batching")


def test_templates_refuse_missing_values():
    with pytest.raises(jinja2.UndefinedError):
        ENV.get_template("config.pbtxt.j2").render(version="x")


def test_parameter_values_cannot_break_the_text_format():
    spec = ModelConfigSpec(
        name="m",
        backend="python",
        max_batch_size=1,
        inputs=(TensorSpec("a", "TYPE_FP32", (1,)),),
        outputs=(TensorSpec("b", "TYPE_FP32", (1,)),),
        parameters=(("k", 'x" }'),),
    )
    with pytest.raises(ConfigError, match="quote"):
        render_config(spec)


def test_tensorrt_configs_parse_into_modelconfig_with_profiles_and_accelerator(tiny_models):
    engine = parse_config(render_config(_plan("minilm-t4-trt-hybrid", tiny_models).models[1].config))
    assert engine.platform == "tensorrt_plan" and engine.default_model_filename == "model.plan"
    # MiniLM's 256 tokens on a T4: buckets 16..256, one profile each, and every instance holds every profile
    assert [(g.count, list(g.profile)) for g in engine.instance_group] == [(2, ["0", "1", "2", "3", "4"])]
    assert engine.dynamic_batching.max_queue_delay_microseconds == 1000 and engine.max_batch_size == 64
    ort = parse_config(render_config(_plan("minilm-a100-ort-trt-hybrid", tiny_models).models[1].config))
    (accelerator,) = ort.optimization.execution_accelerators.gpu_execution_accelerator
    params = dict(accelerator.parameters)
    assert accelerator.name == "tensorrt" and ort.platform == "onnxruntime_onnx"
    assert params["precision_mode"] == "FP16" and params["trt_layer_norm_fp32_fallback"] == "1"
    assert params["trt_engine_cache_enable"] == "1" and params["max_workspace_size_bytes"] == str(8 << 30)
    assert params["trt_profile_max_shapes"] == "input_ids:128x256,attention_mask:128x256"


def test_ort_trt_cache_folders_can_be_created_the_way_onnx_runtime_creates_them(tiny_models, tmp_path):
    # ONNX Runtime's TensorRT provider makes each cache folder with std::filesystem::create_directory (one level,
    # not create_directories) and throws when that fails. os.mkdir is the same call: run it in a stand-in for a
    # fresh container's /tmp, where nothing below /tmp exists yet.
    ort = parse_config(render_config(_plan("minilm-a100-ort-trt-hybrid", tiny_models).models[1].config))
    params = dict(ort.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters)
    for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
        container_tmp = tmp_path / key
        container_tmp.mkdir()
        os.mkdir(container_tmp / PurePosixPath(params[key]).relative_to("/tmp"))


@pytest.mark.parametrize(
    ("engine", "gpu", "precision", "message"),
    [
        ("tensorrt", "cpu", "fp32", "needs a GPU profile"),
        ("tensorrt", "t4", "bf16", "GPU profile t4 has no BF16"),
        ("tensorrt", "t4", "fp8", "unknown precision"),
        ("onnxruntime-trt", "a100", "bf16", "no precision 'bf16'"),
        ("onnxruntime-trt", "a100", "int8", "no precision 'int8'"),
    ],
)
def test_tensorrt_configs_refuse_what_the_target_cannot_run(engine, gpu, precision, message):
    with pytest.raises(ConfigError, match=message):
        plan_repository(inspect_model("minilm", "feature-extraction"), "m", engine, get_profile(gpu), precision)
