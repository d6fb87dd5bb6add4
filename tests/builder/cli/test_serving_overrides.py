"""make-repo's serving overrides (what `tritonbench tune` searches) reach the written configs and are checked."""

from click.testing import CliRunner
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from builder.cli import main


def _config(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_make_repo_overrides_reach_every_config(tmp_path):
    repo = tmp_path / "repo"
    result = CliRunner().invoke(main, [
        "make-repo", "--engine", "python-torch", "--output", str(repo), "--model-instances", "3",
        "--tokenizer-instances", "1", "--max-batch-size", "8", "--preferred-batch-sizes", "none",
        "--seq-buckets", "24,40", "--max-queue-delay-us", "250", "--batch-buckets", "1,3",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    model, tokenizer = _config(repo / "minilm_model/config.pbtxt"), _config(repo / "minilm_tokenizer/config.pbtxt")
    assert model.instance_group[0].count == 3 and tokenizer.instance_group[0].count == 1
    assert model.max_batch_size == tokenizer.max_batch_size == _config(repo / "minilm/config.pbtxt").max_batch_size == 8
    assert list(model.dynamic_batching.preferred_batch_size) == []
    assert model.dynamic_batching.max_queue_delay_microseconds == 250
    assert tokenizer.parameters["buckets"].string_value == "24,40,256"
    assert model.parameters["batch_buckets"].string_value == "1,3,8"


def test_make_repo_refuses_bad_overrides_before_building(tmp_path):
    out = tmp_path / "repo"
    refused = CliRunner().invoke(main, ["make-repo", "--max-batch-size", "8", "--preferred-batch-sizes", "4,16",
                                        "--output", str(out)])  # fmt: skip
    assert refused.exit_code == 1 and "exceeds --max-batch-size 8" in refused.output and not out.exists()
    assert CliRunner().invoke(main, ["make-repo", "--seq-buckets", "32,x", "--output", str(out)]).exit_code == 2
    assert CliRunner().invoke(main, ["make-repo", "--model-instances", "0", "--output", str(out)]).exit_code == 2
