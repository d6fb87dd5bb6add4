"""A hybrid MiniLM repository from make-repo: its model.onnx is the hybrid graph, and it serves PyTorch's answers."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from builder.pipeline import make_repo
from builder.server import TritonServer
from builder.source import resolve_path
from client.text_client import ClientConfig, TextClient
from client.texts import corpus_sentences

pytestmark = pytest.mark.slow

TEXTS = corpus_sentences()[5::250][:12]


@pytest.fixture(scope="module")
def hybrid_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("hybrid") / "repo"
    lines: list[str] = []
    make_repo("minilm", "feature-extraction", "mhybrid", "python-onnxruntime", "cpu", repo, force=False,
              trust_remote_code=False, echo=lines.append, precision="hybrid")  # fmt: skip
    return repo, lines


def _types(model):
    typed = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*typed.input, *typed.output, *typed.value_info)}
    return types | {t.name: t.data_type for t in typed.initializer}


def test_the_served_model_is_the_hybrid_graph(hybrid_repo):
    repo, lines = hybrid_repo
    model = onnx.load(str(repo / "mhybrid_model" / "1" / "model.onnx"))
    types = _types(model)
    sensitive = [n for n in model.graph.node if n.op_type in ("Softmax", "LayerNormalization")]
    assert len(sensitive) == 19 and all(types[n.input[0]] == TensorProto.FLOAT for n in sensitive)
    matmul_weights = {types[n.input[1]] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in types}
    assert TensorProto.FLOAT16 in matmul_weights and "Cast" in {n.op_type for n in model.graph.node}
    manifest = json.loads((repo / "mhybrid" / "tritonbuild.json").read_text())
    assert manifest["precision"] == "hybrid" and manifest["engine"] == "python-onnxruntime"
    assert manifest["onnx_bytes"] == (repo / "mhybrid_model" / "1" / "model.onnx").stat().st_size
    gate = manifest["fidelity"]
    assert gate["passed"] and gate["gate"]["min_cosine"] == 0.9998 and gate["variants"][0]["precision"] == "hybrid"
    assert {(m["inputs"], m["output"]) for m in gate["variants"][0]["metrics"]} == {
        (kind, out) for kind in ("real text", "random ids") for out in ("last_hidden_state", "EMBEDDING")
    }
    assert any("fidelity gate on hybrid" in line and ": OK" in line for line in lines)


def test_the_hybrid_ensemble_serves_pytorch_embeddings(hybrid_repo):
    from transformers import AutoModel, AutoTokenizer

    repo, _ = hybrid_repo
    path = resolve_path("minilm")
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    with TritonServer(repo) as server, TextClient(ClientConfig(server.grpc_url, "mhybrid")) as client:
        served = client.embed(TEXTS)
    cosines = (served * reference).sum(1) / np.linalg.norm(served, axis=1)
    assert served.shape == (len(TEXTS), 384) == (12, 384) and cosines.min() >= 0.9998
