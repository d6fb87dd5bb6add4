"""What deploy reads from a built repository."""

from built_repos import MODEL_BYTES, write_repo

from builder.deploy.deploy_facts import ModelLoad, read_repository
from builder.gpus import get_profile
from builder.repository.options import ServingOptions
from builder.tensorrt.ngc import TRITON_IMAGE


def test_instances_count_each_gpu_a_group_runs_on():
    load = ModelLoad("m", 10, cpu_instances=1, gpu_groups=((2, 0), (3, 2)))
    assert load.instances(gpus=4) == 1 + 2 * 4 + 3 * 2  # an unlisted group runs on every GPU


def test_a_repository_s_models_manifest_and_delays(tmp_path):
    facts = read_repository(
        write_repo(tmp_path / "r", "python-onnxruntime", "t4", serving=ServingOptions(gpus=(0,))), TRITON_IMAGE
    )
    assert [m.name for m in facts.manifests] == ["minilm"] and facts.gpu_profile == "t4" and facts.gpu_indices == (0,)
    loads = {m.name: m for m in facts.models}
    assert loads["minilm"].instances(1) == 0  # the ensemble runs no instance of its own
    assert loads["minilm_model"].gpu_groups == ((get_profile("t4").model_instances, 1),)
    assert loads["minilm_model"].bytes >= MODEL_BYTES
    assert loads["minilm_tokenizer"].cpu_instances == get_profile("t4").tokenizer_instances
    assert facts.batching_delay_us == get_profile("t4").max_queue_delay_us
