"""Shared fixtures: tiny test models (generated once), and one real tritonserver for the session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# The Python-backend model files import their helper module the way the server does: from their own folder.
sys.path.insert(0, str(Path(__file__).parents[1] / "templates" / "python"))

from tiny_models import make_all

from builder.repository.options import ServingOptions
from builder.repository.pipeline import make_repo
from builder.serving.server import TritonServer

MODELS_DIR = Path(__file__).parent / "models"

# One deployment per architecture and task; all served by one server.
DEPLOYMENTS = {
    "minilm": ("minilm", "feature-extraction", "python-onnxruntime"),
    "dbert": ("distilbert", "text-classification", "python-onnxruntime"),
    "gpt2": ("gpt2", "causal-lm", "python-onnxruntime"),
    "mtorch": ("minilm", "feature-extraction", "python-torch"),
    # --single-model: tokenizer, PyTorch and post-processing in one Python model
    "mtext": ("minilm", "feature-extraction", "python-torch", ServingOptions(single_model=True)),
    "dtext": ("distilbert", "text-classification", "python-torch", ServingOptions(single_model=True)),
}


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """model_type → folder of a small local model (bert is the bundled, trained MiniLM)."""
    from builder.sources.source import resolve_path

    return {"bert": resolve_path("minilm"), **make_all(MODELS_DIR)}


def model_path(tiny: dict[str, Path], key: str) -> str:
    return "minilm" if key == "minilm" else str(tiny[key])


@pytest.fixture(scope="session")
def served_repo(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    """A repository with every deployment above, built once through make_repo."""
    repo = tmp_path_factory.mktemp("served") / "repo"
    for name, (source, task, engine, *serving) in DEPLOYMENTS.items():
        make_repo(
            model_path(tiny_models, source),
            task,
            name,
            engine,
            "cpu",
            repo,
            force=False,
            trust_remote_code=False,
            echo=lambda _: None,
            serving=serving[0] if serving else None,
        )
    return repo


@pytest.fixture(scope="session")
def server(served_repo: Path) -> Iterator[TritonServer]:
    """The bundled tritonserver on free ports, stopped at the end of the session whatever happens."""
    with TritonServer(served_repo) as running:
        yield running


@pytest.fixture
def silent_url() -> Iterator[str]:
    """host:port of a socket that completes TCP connections and never answers: a server that hangs."""
    import socket

    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:  # never accepts: the kernel connects
        yield f"127.0.0.1:{listener.getsockname()[1]}"
