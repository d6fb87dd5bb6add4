"""Model control through the repository API on the real server, started with nothing loaded."""

from __future__ import annotations

import pytest

from builder.repository.pipeline import make_repo
from builder.serving.server import TritonServer
from client.experiments.tune_server import ModelControl, ModelControlError
from client.transport.text_client import ClientConfig, TextClient

pytestmark = pytest.mark.slow


def test_a_deployment_is_loaded_queried_unloaded_and_a_missing_one_refused(tmp_path):
    repo = tmp_path / "repo"
    make_repo("minilm", "feature-extraction", "minilm", "python-torch", "cpu", repo, force=False,
              trust_remote_code=False, echo=lambda _: None)  # fmt: skip
    with TritonServer(repo, models=()) as server:
        control = ModelControl(server.grpc_url, timeout_s=120)
        assert "READY" not in control.states().values()  # nothing loaded at start
        assert control.load("minilm") > 0
        states = control.states()
        assert {states[m] for m in ("minilm", "minilm_tokenizer", "minilm_model", "minilm_post")} == {"READY"}
        with TextClient(ClientConfig(server.grpc_url, "minilm")) as client:
            assert client.embed(["a short text", "a second one"]).shape == (2, 384)
        control.unload("minilm", ["minilm_tokenizer", "minilm_model", "minilm_post"])
        assert "READY" not in control.states().values() and "UNLOADING" not in control.states().values()
        with pytest.raises(ModelControlError, match="could not load nope"):
            control.load("nope")
        control.close()


def test_the_repository_index_of_a_server_that_never_answers_is_an_error_at_the_timeout(silent_url):
    import time

    control = ModelControl(silent_url, timeout_s=1)
    began = time.monotonic()
    with pytest.raises(ModelControlError, match="cannot read the repository index"):
        control.states()
    assert time.monotonic() - began < 3
    control.close()
