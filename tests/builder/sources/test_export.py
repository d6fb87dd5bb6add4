import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from builder.common.errors import ParityError
from builder.sources.archs import ARCHS
from builder.sources.export import TRACE_SHAPE, OnnxFromModel, dummy_inputs
from builder.sources.parity import check_parity, parity_shapes
from builder.sources.source import inspect_model, load_graph_module

pytestmark = pytest.mark.slow

CASES = [
    (arch, task) for arch in ARCHS for task in ARCHS[arch].tasks if (arch, task) != ("gpt2", "text-classification")
]


def test_dummy_inputs_are_right_padded_and_valid():
    inputs = dummy_inputs(4, 9, vocab=50, pad_id=0, seed=1)
    ids, mask = inputs["input_ids"].numpy(), inputs["attention_mask"].numpy()
    assert ids.shape == mask.shape == (4, 9) and ids.max() < 50
    assert mask[-1].all()  # the last row is full length
    for row in mask:  # ones then zeros
        n = row.sum()
        assert row[:n].all() and not row[n:].any()
    assert (ids[mask == 0] == 0).all()


def test_parity_shapes_differ_from_the_trace_shape():
    shapes = parity_shapes(256)
    assert len(shapes) >= 3 and TRACE_SHAPE not in shapes
    assert all(seq <= 20 for _, seq in parity_shapes(20))


@pytest.mark.parametrize(("arch", "task"), CASES)
def test_export_has_dynamic_axes_and_matches_pytorch(arch, task, tiny_models, tmp_path):
    info = inspect_model(str(tiny_models[arch]), task)
    module = load_graph_module(info)
    path = OnnxFromModel(info, tmp_path / "model.onnx", module)()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert all(isinstance(d, str) for i in session.get_inputs() for d in i.shape)  # batch and seq are symbolic
    report = check_parity(module, path, info)
    assert report.passed, report.summary()
    assert report.worst <= 1e-4 and len(report.results) >= 3


def test_a_perturbed_graph_fails_parity_with_every_shape_listed(tiny_models, tmp_path):
    info = inspect_model(str(tiny_models["distilbert"]), "text-classification")
    module = load_graph_module(info)
    path = OnnxFromModel(info, tmp_path / "model.onnx", module)()
    model = onnx.load(str(path))
    biggest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    weights = numpy_helper.to_array(biggest)
    noise = np.random.default_rng(0).normal(0, 0.05, weights.shape).astype(weights.dtype)
    biggest.CopyFrom(numpy_helper.from_array(weights + noise, biggest.name))
    onnx.save(model, str(tmp_path / "broken.onnx"))
    report = check_parity(module, tmp_path / "broken.onnx", info)
    assert not report.passed
    with pytest.raises(ParityError) as err:
        report.raise_on_failure()
    assert err.value.message.count("FAIL") == len(parity_shapes(info.max_length))
    assert "tolerance 0.0001" in err.value.message
