"""MiniLM precision variants from make-repo: model.onnx is the variant's graph, and each serves PyTorch's answers."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from builder.common.corpus import corpus_sentences
from builder.precision.fidelity import FidelityOptions, Gate
from builder.repository.pipeline import make_repo
from builder.serving.server import TritonServer
from builder.sources.source import resolve_path
from client.transport.text_client import ClientConfig, TextClient

pytestmark = pytest.mark.slow

TEXTS = corpus_sentences()[5::250][:12]


# Served embeddings vs PyTorch: the seed's bar for the float variants; int8 is built past the gate knowingly.
BARS = {"fp16": 0.9998, "hybrid": 0.9998, "int8": 0.98}


@pytest.fixture(scope="module")
def hybrid_repo(tmp_path_factory):
    """One repository with an ensemble per variant (m<precision>), built through make_repo."""
    repo = tmp_path_factory.mktemp("variants") / "repo"
    lines: list[str] = []
    for precision in BARS:
        gate = FidelityOptions(Gate(min_cosine=0.85)) if precision == "int8" else None
        make_repo("minilm", "feature-extraction", f"m{precision}", "python-onnxruntime", "cpu", repo, force=False,
                  trust_remote_code=False, echo=lines.append, precision=precision, fidelity=gate)  # fmt: skip
    return repo, lines


@pytest.fixture(scope="module")
def server(hybrid_repo):
    with TritonServer(hybrid_repo[0]) as running:
        yield running


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
    int8 = json.loads((repo / "mint8" / "tritonbuild.json").read_text())["fidelity"]
    assert int8["passed"] and int8["gate"]["min_cosine"] == 0.85  # the lowered bar is on record


@pytest.fixture(scope="module")
def reference():
    from transformers import AutoModel, AutoTokenizer

    path = resolve_path("minilm")
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()


@pytest.mark.parametrize("precision", BARS)
def test_each_variant_ensemble_serves_pytorch_embeddings(server, reference, precision):
    with TextClient(ClientConfig(server.grpc_url, f"m{precision}")) as client:
        served = client.embed(TEXTS)
    cosines = (served * reference).sum(1) / np.linalg.norm(served, axis=1)
    assert served.shape == (len(TEXTS), 384) == (12, 384) and cosines.min() >= BARS[precision]
