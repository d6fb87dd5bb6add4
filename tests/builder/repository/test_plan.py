import pytest

from builder.common.errors import ConfigError
from builder.gpus import get_profile
from builder.repository.options import ServingOptions
from builder.repository.plan import plan_repository
from builder.sources.source import inspect_model


@pytest.fixture(scope="module")
def minilm():
    return inspect_model("minilm", "feature-extraction")


def test_feature_extraction_plan(minilm):
    plan = plan_repository(minilm, "emb", "python-onnxruntime", get_profile("cpu"))
    names = [m.config.name for m in plan.models]
    assert names == ["emb_tokenizer", "emb_model", "emb_post", "emb"]
    tokenizer, model, _, ensemble = (m.config for m in plan.models)
    assert dict(tokenizer.parameters)["buckets"] == "16,32,64,128,256"
    assert dict(tokenizer.parameters)["max_length"] == "256"
    assert model.outputs[0].dims == (-1, 384) and model.instance_groups[0].kind == "KIND_CPU"
    assert [t.name for t in ensemble.outputs] == ["EMBEDDING"] and ensemble.outputs[0].dims == (384,)
    assert ("model.onnx", "onnx") in plan.models[1].files


@pytest.mark.parametrize("engine", ["python-onnxruntime", "python-torch"])
def test_limits_come_from_the_model(minilm, engine):
    plan = plan_repository(minilm, "emb", engine, get_profile("cpu"))
    tokenizer, model = (dict(m.config.parameters) for m in plan.models[:2])
    assert tokenizer["max_text_chars"] == str(256 * 16)  # texts are cut to max_length × 16 characters
    assert (model["vocab_size"], model["max_length"]) == ("30522", "256")  # every request is checked against these
    cpu = [m.config.instance_groups[0].count for m in plan.models[:2]]
    assert cpu == [2, 2]  # a second tokenizer and model instance: one long request cannot hold the only one


def test_gpu_profile_shapes_the_plan(minilm):
    plan = plan_repository(minilm, "emb", "onnxruntime", get_profile("t4"))
    model = plan.models[1].config
    assert model.platform == "onnxruntime_onnx" and model.default_model_filename == "model.onnx"
    assert model.instance_groups[0].kind == "KIND_GPU" and model.instance_groups[0].count == 2
    assert model.max_batch_size == 64 and model.dynamic_batching.preferred_batch_sizes == (16, 32, 64)
    assert plan.models[0].config.instance_groups[0].kind == "KIND_CPU"  # tokenizers stay on the CPU


def test_classification_and_causal_lm_outputs(tiny_models):
    cls = inspect_model(str(tiny_models["distilbert"]), "text-classification")
    plan = plan_repository(cls, "c", "python-onnxruntime", get_profile("cpu"))
    assert [(t.name, t.dtype, t.dims) for t in plan.ensemble.outputs] == [
        ("LABEL", "TYPE_STRING", (1,)),
        ("PROBS", "TYPE_FP32", (3,)),
    ]
    assert ("labels.json", "labels") in plan.models[2].files
    lm = inspect_model(str(tiny_models["gpt2"]), "causal-lm")
    plan = plan_repository(lm, "g", "python-onnxruntime", get_profile("cpu"))
    assert [(t.name, t.dims) for t in plan.ensemble.outputs] == [("LOGITS", (lm.vocab_size,))]


@pytest.mark.parametrize("name", ["", "a b", "x/y", "-lead", "a" * 65])
def test_invalid_names(minilm, name):
    with pytest.raises(ConfigError, match="invalid model name"):
        plan_repository(minilm, name, "python-onnxruntime", get_profile("cpu"))


def test_unknown_engine(minilm):
    with pytest.raises(ConfigError, match="unknown engine"):
        plan_repository(minilm, "m", "tensorflow", get_profile("cpu"))


@pytest.mark.parametrize("engine", ["python-onnxruntime", "onnxruntime"])
@pytest.mark.parametrize(("gpu", "precision"), [("cpu", "fp16"), ("cpu", "hybrid"), ("cpu", "int8"), ("a100", "bf16")])
def test_onnx_engines_serve_precision_variants(minilm, engine, gpu, precision):
    """The config does not change with the precision: the variant is the model.onnx the plan places."""
    plan = plan_repository(minilm, "m", engine, get_profile(gpu), precision)
    assert plan.models[1].config == plan_repository(minilm, "m", engine, get_profile(gpu)).models[1].config
    assert ("model.onnx", "onnx") in plan.models[1].files


@pytest.mark.parametrize(
    ("engine", "gpu", "precision", "message"),
    [
        ("python-onnxruntime", "cpu", "bf16", "GPU profile cpu has no BF16"),
        ("onnxruntime", "t4", "bf16", "GPU profile t4 has no BF16"),
        ("python-onnxruntime", "cpu", "fp8", "engine python-onnxruntime has no precision 'fp8'"),
    ],
)
def test_onnx_engines_refuse_what_the_target_cannot_run(minilm, engine, gpu, precision, message):
    with pytest.raises(ConfigError, match=message):
        plan_repository(minilm, "m", engine, get_profile(gpu), precision)


def test_single_model_plan_is_one_python_model_behind_a_one_step_ensemble(tiny_models):
    cls = inspect_model(str(tiny_models["distilbert"]), "text-classification")
    serving = ServingOptions(kernels="fused-tanh-gelu", single_model=True, max_queue_delay_us=0)
    plan = plan_repository(cls, "c", "python-torch", get_profile("h100"), "fp16", serving)
    model, ensemble = (m.config for m in plan.models)
    assert [m.config.name for m in plan.models] == ["c_model", "c"]
    assert [t.name for t in model.inputs] == ["TEXT"] and model.outputs == ensemble.outputs
    assert [s.model_name for s in ensemble.steps] == ["c_model"]
    params = dict(model.parameters)
    assert params["kernels"] == "fused-tanh-gelu" and params["precision"] == "fp16" and "buckets" in params
    assert model.dynamic_batching.max_queue_delay_us == 0 and model.instance_groups[0].kind == "KIND_GPU"
    files = dict(plan.models[0].files)
    assert files["model.py"] == "template:torch_text_model.py" and files["labels.json"] == "labels"
    assert {"torch_model.py", "tokenizer_model.py", "post_model.py", "fused_transformer.py", "hf"} <= set(files)


def test_serving_options_are_checked(minilm):
    with pytest.raises(ConfigError, match="--single-model goes with --engine python-torch"):
        plan_repository(
            minilm, "e", "python-onnxruntime", get_profile("cpu"), serving=ServingOptions(single_model=True)
        )
    with pytest.raises(ConfigError, match="--kernels goes with --engine python-torch"):
        plan_repository(minilm, "e", "python-onnxruntime", get_profile("cpu"), serving=ServingOptions(kernels="hf"))
    with pytest.raises(ConfigError, match="unknown kernels"):
        ServingOptions(kernels="magic")
    with pytest.raises(ConfigError, match=">= 0"):
        ServingOptions(max_queue_delay_us=-1)
    plan = plan_repository(
        minilm, "e", "python-torch", get_profile("h100"), "fp16", ServingOptions(max_queue_delay_us=7)
    )
    assert plan.models[1].config.dynamic_batching.max_queue_delay_us == 7
    assert dict(plan.models[1].config.parameters)["kernels"] == "fused"


def test_host_threads_override_reaches_every_python_model_and_only_them(minilm):
    plain = plan_repository(minilm, "emb", "onnxruntime", get_profile("h200"))
    assert all("host_threads" not in dict(m.config.parameters) for m in plain.models)  # the stubs' own rule
    plan = plan_repository(minilm, "emb", "onnxruntime", get_profile("h200"), serving=ServingOptions(host_threads=3))
    python = {m.config.name: dict(m.config.parameters).get("host_threads") for m in plan.models}
    assert python == {"emb_tokenizer": "3", "emb_model": None, "emb_post": "3", "emb": None}  # onnxruntime_onnx
    with pytest.raises(ConfigError, match="--host-threads"):
        ServingOptions(host_threads=0)


def test_gpus_place_the_model_on_each_and_scale_the_host_steps(minilm):
    from builder.repository.render import render_config

    h200 = get_profile("h200")
    plan = plan_repository(minilm, "emb", "python-torch", h200, "fp16", ServingOptions(gpus=(0, 1)))
    tokenizer, model, post, _ = (m.config for m in plan.models)
    assert model.instance_groups[0].gpus == (0, 1) and model.instance_groups[0].count == h200.model_instances
    assert tokenizer.instance_groups[0].count == 2 * h200.tokenizer_instances
    assert post.instance_groups[0].count == 2 * h200.post_instances
    assert "gpus: [ 0, 1 ]" in render_config(model)  # parsed back through ModelConfig by render_config
    single = plan_repository(minilm, "emb", "python-torch", h200, "fp16", ServingOptions(single_model=True, gpus=(1,)))
    assert single.models[0].config.instance_groups[0].gpus == (1,)
    default = plan_repository(minilm, "emb", "python-torch", h200, "fp16")
    assert default.models[1].config.instance_groups[0].gpus == ()  # Triton's placement: every GPU
    assert "gpus" not in render_config(default.models[1].config)
    with pytest.raises(ConfigError, match="has none"):
        plan_repository(minilm, "emb", "python-onnxruntime", get_profile("cpu"), serving=ServingOptions(gpus=(0,)))
    with pytest.raises(ConfigError, match="distinct"):
        ServingOptions(gpus=(0, 0))


def test_gpu_indices_parse_lists_and_refuse_all_without_a_gpu():
    import torch

    from builder.gpus import gpu_indices

    assert gpu_indices("0,1") == (0, 1) and gpu_indices("3") == (3,)
    for bad in ("0,x", "-1", "1,1"):
        with pytest.raises(ConfigError, match="--gpus"):
            gpu_indices(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no GPU"):
            gpu_indices("all")


def test_serving_overrides_replace_the_profiles_settings_in_every_config(minilm):
    from builder.repository.render import render_config

    serving = ServingOptions(
        model_instances=3, tokenizer_instances=5, max_batch_size=16, preferred_batch_sizes=(4, 16), seq_buckets=(24, 96)
    )
    plan = plan_repository(minilm, "emb", "python-torch", get_profile("cpu"), serving=serving)
    tokenizer, model, post, ensemble = (m.config for m in plan.models)
    assert (model.instance_groups[0].count, tokenizer.instance_groups[0].count) == (3, 5)
    assert post.instance_groups[0].count == get_profile("cpu").post_instances  # not an override
    more_post = plan_repository(
        minilm, "emb", "python-torch", get_profile("cpu"), serving=ServingOptions(post_instances=4)
    )
    assert more_post.models[2].config.instance_groups[0].count == 4
    assert {c.max_batch_size for c in (tokenizer, model, post, ensemble)} == {16}
    assert model.dynamic_batching.preferred_batch_sizes == (4, 16)
    assert dict(tokenizer.parameters)["buckets"] == "24,96,256"  # the model's max length stays the last bucket
    assert dict(model.parameters)["seq_buckets"] == "24,96,256"  # the lengths python-torch captures graphs for
    assert dict(model.parameters)["batch_buckets"] == "1,2,4,8,12,16"  # the default's, up to the max batch size
    chosen = plan_repository(minilm, "emb", "python-torch", get_profile("cpu"), serving=ServingOptions(
        max_batch_size=16, batch_buckets=(1, 5, 16, 64)))  # fmt: skip
    assert dict(chosen.models[1].config.parameters)["batch_buckets"] == "1,5,16"  # the max batch size is the last
    with pytest.raises(ConfigError, match="--batch-buckets goes with --engine python-torch"):
        plan_repository(minilm, "emb", "python-onnxruntime", get_profile("cpu"), serving=ServingOptions(
            batch_buckets=(1, 8)))  # fmt: skip
    assert "preferred_batch_size: [ 4, 16 ]" in render_config(model)  # parsed back through ModelConfig
    assert plan.gpu.name == "cpu" and plan.gpu.max_batch_size == 16


def test_no_override_is_the_profile_and_none_preferred_sizes_is_empty(minilm):
    cpu = get_profile("cpu")
    plain = plan_repository(minilm, "emb", "python-onnxruntime", cpu)
    explicit = ServingOptions(model_instances=cpu.model_instances, max_batch_size=cpu.max_batch_size,
                              preferred_batch_sizes=cpu.preferred_batch_sizes, seq_buckets=cpu.seq_buckets)  # fmt: skip
    assert plan_repository(minilm, "emb", "python-onnxruntime", cpu, serving=explicit).models == plain.models
    bare = plan_repository(minilm, "emb", "python-onnxruntime", cpu, serving=ServingOptions(preferred_batch_sizes=()))
    assert bare.models[1].config.dynamic_batching.preferred_batch_sizes == ()
    small = plan_repository(minilm, "emb", "python-onnxruntime", cpu, serving=ServingOptions(max_batch_size=8))
    assert small.models[1].config.dynamic_batching.preferred_batch_sizes == (8,)  # the profile's sizes that fit


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model_instances": 0}, "--model-instances must be >= 1"),
        ({"tokenizer_instances": 0}, "--tokenizer-instances must be >= 1"),
        ({"post_instances": 0}, "--post-instances must be >= 1"),
        ({"max_batch_size": 0}, "--max-batch-size must be >= 1"),
        ({"preferred_batch_sizes": (16, 8)}, "strictly increasing"),
        ({"preferred_batch_sizes": (0, 8)}, "strictly increasing"),
        ({"seq_buckets": (32, 32)}, "strictly increasing"),
        ({"seq_buckets": ()}, "--seq-buckets needs at least one size"),
        ({"batch_buckets": (8, 4)}, "--batch-buckets 8,4: give strictly increasing"),
        ({"batch_buckets": ()}, "--batch-buckets needs at least one size"),
        ({"max_batch_size": 8, "preferred_batch_sizes": (4, 16)}, "exceeds --max-batch-size 8"),
    ],
)
def test_serving_overrides_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        ServingOptions(**options)


def test_overrides_the_plan_refuses(minilm):
    with pytest.raises(ConfigError, match="exceeds the max batch size 32 of GPU profile cpu"):
        plan_repository(
            minilm, "e", "python-torch", get_profile("cpu"), serving=ServingOptions(preferred_batch_sizes=(64,))
        )
    for option in ("tokenizer", "post"):
        with pytest.raises(ConfigError, match=f"--{option}-instances goes with the 3-step ensemble"):
            options = ServingOptions(single_model=True, **{f"{option}_instances": 2})
            plan_repository(minilm, "e", "python-torch", get_profile("cpu"), serving=options)
