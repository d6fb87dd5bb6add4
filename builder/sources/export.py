"""ONNX export through torch.export (dynamo): dynamic batch and sequence axes, parity-gated."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import torch

from builder.common.errors import ConfigError, OutputError
from builder.sources.source import ModelInfo, load_graph_module
from builder.sources.tasks import GraphModule

OPSET = 18
INPUT_NAMES = ("input_ids", "attention_mask")
# Traced at (2, 16); parity is then checked at other shapes, so a graph specialised to the trace fails.
TRACE_SHAPE = (2, 16)
# Beside model.onnx: what later stages need from the source model (an ONNX graph does not keep its maximum length).
EXPORT_RECORD = "export.json"


def write_export_record(info: ModelInfo, folder: Path) -> None:
    """Record the model, task and maximum length (what make-repo's tokenizer pads up to) beside the export."""
    record = {"model": str(info.path), "task": info.task.name, "max_length": info.max_length}
    (folder / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def exported_max_length(onnx_path: Path) -> int:
    """The maximum length recorded beside an exported graph: the length make-repo serves it with."""
    record = onnx_path.parent / EXPORT_RECORD
    if not record.is_file():
        raise ConfigError(
            f"no {EXPORT_RECORD} beside {onnx_path}, so the model's maximum length is unknown",
            hint="pass --max-length (the model's maximum, which make-repo uses), or export with `tritonbuild export`",
        )
    return int(json.loads(record.read_text())["max_length"])


def dummy_inputs(batch: int, seq: int, vocab: int, pad_id: int, seed: int) -> dict[str, torch.Tensor]:
    """Random valid token ids with right padding: each row a random length, the last row full."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seq), generator=gen)
    lengths = torch.randint(1, seq + 1, (batch,), generator=gen)
    lengths[-1] = seq
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).to(torch.int64)
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad_id))
    return {"input_ids": ids, "attention_mask": mask}


class OnnxFromModel:
    """Export a model to ONNX at `output`; constructing records the plan, calling does the work."""

    def __init__(self, info: ModelInfo, output: Path, module: GraphModule | None = None) -> None:
        self.info = info
        self.output = output
        self._module = module

    def __call__(self) -> Path:
        """Export, then return the path of the written .onnx file."""
        module = self._module or load_graph_module(self.info)
        inputs = dummy_inputs(*TRACE_SHAPE, self.info.vocab_size, self.info.pad_id, seed=0)
        batch = torch.export.Dim("batch", min=1, max=4096)
        seq = torch.export.Dim("seq", min=1, max=self.info.max_length)
        dynamic = {name: {0: batch, 1: seq} for name in INPUT_NAMES}
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write to {self.output.parent}: {exc.strerror}") from exc
        # The exporter prints progress lines, optional-op notices and transformers deprecation warnings.
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (),
                kwargs=inputs,
                dynamo=True,
                dynamic_shapes=dynamic,
                opset_version=OPSET,
                input_names=list(INPUT_NAMES),
                output_names=[self.info.task.graph_output],
                verbose=False,
            )
            assert program is not None
            program.save(str(self.output))
        return self.output
