"""Fused forward passes for BERT, DistilBERT and GPT-2, built from a Hugging Face model's own weights.

The Hugging Face modules launch about 14 kernels per layer (three projection GEMMs, head transposes,
a separate GELU, residual adds, the mask converted per layer). Here each layer is one QKV GEMM, one
attention kernel (scaled_dot_product_attention picks flash/cuDNN), the output projection and two MLP
GEMMs with their bias in the cuBLASLt epilogue, and each residual add fused with its LayerNorm (one
torch.compile'd kernel on CUDA): fewer launches at batch 1, less memory traffic at batch 32. With
`gelu_epilogue` the MLP's GELU also runs in the GEMM epilogue; cuBLASLt only has the tanh form, which
is GPT-2's own activation but an approximation of BERT's erf GELU, so it is opt-in there. The CPU runs
the same code eagerly, which is how the tests check it against the Hugging Face model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """LayerNorm of the last axis, computed in the parameters' dtype and returned in `dtype` (default: x's)."""
    return F.layer_norm(x.to(weight.dtype), x.shape[-1:], weight, bias, eps).to(dtype or x.dtype)


def norm_of_sum(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm(x + y), for post-norm blocks: compiled, the sum itself is never written to memory."""
    return layer_norm(x + y, weight, bias, eps)


def norm_pair(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """LayerNorm(x + y) twice: in the residual's dtype, and in the GEMMs' (y's) for the next layer."""
    normed = norm_of_sum(x, y, weight, bias, eps)
    return normed, normed.to(y.dtype)


def add_norm(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """For pre-norm blocks: the sum x + y (the next residual) and its LayerNorm in the GEMMs' (y's) dtype."""
    total = x + y
    return total, layer_norm(total, weight, bias, eps, y.dtype)


def embed(
    ids: torch.Tensor,
    word: torch.Tensor,
    position: torch.Tensor,
    token_type: torch.Tensor | None,
    norm: tuple[torch.Tensor, torch.Tensor, float] | None,
    wide: bool,
) -> torch.Tensor:
    """Word + position (+ token type) embeddings as [tokens, hidden], FP32 when wide, LayerNorm'ed if `norm`.

    Compiled, the gather, the adds and the norm are one kernel (eager: four or five).
    """
    x = word[ids] + position[: ids.shape[1]]
    if token_type is not None:
        x = x + token_type
    x = x.reshape(-1, x.shape[-1])
    x = x.float() if wide else x
    if norm is None:
        return x
    return layer_norm(x, *norm)


class Unsupported(ValueError):
    """The model uses a variant this module does not implement; run the Hugging Face forward instead."""


@dataclass(frozen=True)
class Norm:
    """A LayerNorm's parameters; FP32 parameters in a half model mean "compute this norm in FP32"."""

    weight: torch.Tensor
    bias: torch.Tensor
    eps: float

    @classmethod
    def of(cls, module: torch.nn.LayerNorm) -> Norm:
        """The parameters of a torch LayerNorm, in its dtype."""
        return cls(module.weight.detach(), module.bias.detach(), module.eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the last axis; in the parameters' dtype, returned in the input's."""
        return layer_norm(x, self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class Linear:
    """Weight as [out, in] (GPT-2's Conv1D stores [in, out]; it is transposed once here) and bias."""

    weight: torch.Tensor
    bias: torch.Tensor

    @classmethod
    def of(cls, *modules: torch.nn.Module, transposed: bool = False) -> Linear:
        """One Linear from several concatenated along the output (Q, K and V into one QKV GEMM)."""
        weights = [m.weight.detach().t() if transposed else m.weight.detach() for m in modules]
        return cls(torch.cat(weights).contiguous(), torch.cat([m.bias.detach() for m in modules]))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The affine map (x W^T + b), its bias in the GEMM epilogue on CUDA."""
        return F.linear(x, self.weight, self.bias)

    def gelu_tanh(self, x: torch.Tensor) -> torch.Tensor:
        """The tanh GELU of the affine map, in the cuBLASLt epilogue on CUDA.

        The epilogue applies bias and GELU to the FP32 accumulator and rounds once; the CPU computes the
        same in FP32 (its fused kernel would use the erf form, and a half-precision F.linear rounds twice).
        """
        if x.is_cuda:
            return torch._addmm_activation(self.bias, x, self.weight.t(), use_gelu=True)
        return F.gelu(F.linear(x.float(), self.weight.float(), self.bias.float()), approximate="tanh").to(x.dtype)


@dataclass(frozen=True)
class Layer:
    """One transformer block's weights."""

    qkv: Linear
    out: Linear
    norm1: Norm  # BERT: after attention; GPT-2: before it
    fc1: Linear
    fc2: Linear
    norm2: Norm


class FusedTransformer:
    """Token ids and mask in, last hidden state out, [batch, seq, hidden]: the trunk of the model."""

    def __init__(
        self,
        embed: list[torch.Tensor],
        embed_norm: Norm | None,
        layers: list[Layer],
        final_norm: Norm | None,
        heads: int,
        pre_norm: bool,
        exact_gelu: bool,
        gelu_epilogue: bool,
        compile_norms: bool,
    ) -> None:
        self.word, self.position = embed[0], embed[1]
        self.token_type = embed[2] if len(embed) > 2 else None
        self.embed_norm, self.layers, self.final_norm = embed_norm, layers, final_norm
        self.heads, self.pre_norm = heads, pre_norm
        self.exact_gelu = exact_gelu and not gelu_epilogue
        # On CUDA, torch.compile fuses each residual add with its LayerNorm into one kernel (eager: two).
        self.compile_norms = compile_norms
        self.compiled: dict = {}  # made on the first CUDA call: importing the compiler is slow
        self.profile_ranges = False  # `tritonbuild profile`: name each part's kernels by kind
        self.wide = False  # see widen()

    def widen(self) -> None:
        """Keep the residual stream and every LayerNorm in FP32, the GEMMs and attention in the model's dtype.

        For BF16: its 8-bit mantissa, carried through the residual of every layer, costs the per-token
        cosine most of its error (measured on MiniLM; FP16 has 11 bits and needs none of this). The MLP's
        GELU also moves into fc1's epilogue: rounding its input and its output to BF16 cost more than
        tanh's approximation of erf (MiniLM on real text, CPU: worst token 0.99974 → 0.99982).
        """
        import dataclasses

        def wide(norm: Norm) -> Norm:
            return Norm(norm.weight.float(), norm.bias.float(), norm.eps)

        self.wide = True
        self.exact_gelu = False
        self.embed_norm = wide(self.embed_norm) if self.embed_norm else None
        self.final_norm = wide(self.final_norm) if self.final_norm else None
        self.layers = [dataclasses.replace(x, norm1=wide(x.norm1), norm2=wide(x.norm2)) for x in self.layers]

    def part(self, kind: str) -> contextlib.AbstractContextManager:
        """A profiler range named like builder.profile's module kinds, when profiling."""
        return torch.profiler.record_function(f"kind::{kind}") if self.profile_ranges else contextlib.nullcontext()

    def add_norm(self, x: torch.Tensor, y: torch.Tensor, norm: Norm) -> tuple[torch.Tensor, torch.Tensor]:
        """add_norm: the sum and its norm, in one kernel on CUDA."""
        with self.part("layernorm"):
            return self._compiled(add_norm, (x, y), norm.weight, norm.bias, norm.eps)

    def norm_of_sum(self, x: torch.Tensor, y: torch.Tensor, norm: Norm) -> tuple[torch.Tensor, torch.Tensor]:
        """The norm of the sum as the next residual and as the next GEMM input (the same tensor unless wide)."""
        with self.part("layernorm"):
            if self.wide:
                return self._compiled(norm_pair, (x, y), norm.weight, norm.bias, norm.eps)
            normed = self._compiled(norm_of_sum, (x, y), norm.weight, norm.bias, norm.eps)
            return normed, normed

    def _compiled(self, fn: Callable, inputs: tuple[torch.Tensor, ...], *params: object) -> object:
        """fn(*inputs, *params), compiled on CUDA unless compiling failed once (then eager, with a message).

        Compiled for any size of the inputs' leading axes (tokens; or batch and length for ids) and
        specialised to the rest: with the hidden size dynamic too, the LayerNorm reduction loops and
        was slower than eager at 4,096 tokens (measured on an H100).
        """
        if self.compile_norms and inputs[0].is_cuda:
            try:
                if fn not in self.compiled:
                    self.compiled[fn] = torch.compile(fn)
                for tensor in inputs:
                    leading = tensor.dim() if tensor.dtype == torch.int64 else tensor.dim() - 1
                    for dim in range(leading):
                        if tensor.shape[dim] > 1:  # a size-1 axis is specialised, not marked
                            torch._dynamo.mark_dynamic(tensor, dim)
                return self.compiled[fn](*inputs, *params)
            except Exception as exc:  # no compiler, an unsupported GPU: the eager ops give the same result
                print(f"fused kernels: compiling {fn.__name__} failed ({exc!r}); running it eagerly", flush=True)
                self.compile_norms = False
        return fn(*inputs, *params)

    def attention(
        self, x: torch.Tensor, layer: Layer, batch: int, seq: int, bias: torch.Tensor | None, causal: bool
    ) -> torch.Tensor:
        """Self-attention on [tokens, hidden]: one QKV GEMM, one fused attention kernel."""
        hidden = x.shape[-1]
        with self.part("attention projections"):
            qkv = layer.qkv(x).view(batch, seq, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias, is_causal=causal)
        with self.part("attention projections"):
            return layer.out(ctx.transpose(1, 2).reshape(batch * seq, hidden))

    def mlp(self, x: torch.Tensor, layer: Layer) -> torch.Tensor:
        """fc1 → GELU → fc2; GELU in fc1's epilogue unless the model's exact (erf) GELU is kept."""
        with self.part("mlp"):
            if self.exact_gelu:
                return layer.fc2(F.gelu(layer.fc1(x)))
            return layer.fc2(layer.fc1.gelu_tanh(x))

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, full: bool = False) -> torch.Tensor:
        """The last hidden state for right-padded ids and their mask (FP32 when widened).

        full: no row is padded (the mask is all ones), so attention runs without a mask: a faster
        kernel for encoders. A graph captured with it must only be replayed for such batches.
        """
        batch, seq = ids.shape
        with self.part("embeddings"):
            norm = self.embed_norm
            norm_args = (norm.weight, norm.bias, norm.eps) if norm else None
            x = self._compiled(embed, (ids,), self.word, self.position, self.token_type, norm_args, self.wide)
            low = self.word.dtype  # the model's dtype: GEMM inputs and attention
        if self.pre_norm:
            # The causal mask already hides right padding from every real token.
            with self.part("layernorm"):
                h = self.layers[0].norm1(x).to(low)
            for i, layer in enumerate(self.layers):
                x, h = self.add_norm(x, self.attention(h, layer, batch, seq, None, True), layer.norm2)
                if i + 1 < len(self.layers):
                    x, h = self.add_norm(x, self.mlp(h, layer), self.layers[i + 1].norm1)
            with self.part("layernorm"):
                return self.final_norm(x + self.mlp(h, self.layers[-1])).view(batch, seq, -1)
        bias = None
        if not full:  # the additive key mask, built once (a boolean mask is converted again in every layer)
            bias = torch.zeros(mask.shape, dtype=low, device=x.device).masked_fill_(mask == 0, torch.finfo(low).min)
            bias = bias[:, None, None, :]
        h = x.to(low)
        for layer in self.layers:
            x, h = self.norm_of_sum(x, self.attention(h, layer, batch, seq, bias, False), layer.norm1)
            x, h = self.norm_of_sum(x, self.mlp(h, layer), layer.norm2)
        return x.view(batch, seq, -1)


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise Unsupported(what)


def _bert(model: torch.nn.Module, gelu_epilogue: bool, compile_norms: bool) -> FusedTransformer:
    config = model.config
    _require(getattr(config, "position_embedding_type", "absolute") == "absolute", "relative position embeddings")
    _require(config.hidden_act in ("gelu", "gelu_new"), f"activation {config.hidden_act}")
    _require(not config.is_decoder, "BERT as a decoder")
    emb = model.embeddings
    layers = [
        Layer(
            Linear.of(b.attention.self.query, b.attention.self.key, b.attention.self.value),
            Linear.of(b.attention.output.dense),
            Norm.of(b.attention.output.LayerNorm),
            Linear.of(b.intermediate.dense),
            Linear.of(b.output.dense),
            Norm.of(b.output.LayerNorm),
        )
        for b in model.encoder.layer
    ]
    embed = [emb.word_embeddings.weight, emb.position_embeddings.weight, emb.token_type_embeddings.weight[0]]
    exact = config.hidden_act == "gelu"
    return FusedTransformer(
        [t.detach() for t in embed], Norm.of(emb.LayerNorm), layers, None, config.num_attention_heads,
        pre_norm=False, exact_gelu=exact, gelu_epilogue=gelu_epilogue, compile_norms=compile_norms,
    )  # fmt: skip


def _distilbert(model: torch.nn.Module, gelu_epilogue: bool, compile_norms: bool) -> FusedTransformer:
    config = model.config
    _require(config.activation == "gelu", f"activation {config.activation}")
    emb = model.embeddings
    layers = [
        Layer(
            Linear.of(b.attention.q_lin, b.attention.k_lin, b.attention.v_lin),
            Linear.of(b.attention.out_lin),
            Norm.of(b.sa_layer_norm),
            Linear.of(b.ffn.lin1),
            Linear.of(b.ffn.lin2),
            Norm.of(b.output_layer_norm),
        )
        for b in model.transformer.layer
    ]
    embed = [emb.word_embeddings.weight.detach(), emb.position_embeddings.weight.detach()]
    return FusedTransformer(
        embed, Norm.of(emb.LayerNorm), layers, None, config.n_heads,
        pre_norm=False, exact_gelu=True, gelu_epilogue=gelu_epilogue, compile_norms=compile_norms,
    )  # fmt: skip


def _gpt2(model: torch.nn.Module, gelu_epilogue: bool, compile_norms: bool) -> FusedTransformer:
    config = model.config
    _require(
        config.activation_function in ("gelu_new", "gelu_pytorch_tanh"), f"activation {config.activation_function}"
    )
    _require(config.scale_attn_weights and not config.scale_attn_by_inverse_layer_idx, "non-default attention scale")
    _require(not getattr(config, "add_cross_attention", False), "cross-attention")
    conv = {"transposed": True}  # GPT-2's Conv1D keeps weights as [in, out]
    layers = [
        Layer(
            Linear.of(b.attn.c_attn, **conv),
            Linear.of(b.attn.c_proj, **conv),
            Norm.of(b.ln_1),
            Linear.of(b.mlp.c_fc, **conv),
            Linear.of(b.mlp.c_proj, **conv),
            Norm.of(b.ln_2),
        )
        for b in model.h
    ]
    embed = [model.wte.weight.detach(), model.wpe.weight.detach()]
    # the tanh GELU is GPT-2's own activation: fusing it into the epilogue changes nothing
    return FusedTransformer(
        embed, None, layers, Norm.of(model.ln_f), config.n_head,
        pre_norm=True, exact_gelu=False, gelu_epilogue=True, compile_norms=compile_norms,
    )  # fmt: skip


BUILDERS = {"bert": _bert, "distilbert": _distilbert, "gpt2": _gpt2}


def fuse(base_model: torch.nn.Module, gelu_epilogue: bool = False, compile_norms: bool = True) -> FusedTransformer:
    """A fused trunk for a Hugging Face base model (BertModel, DistilBertModel, GPT2Model), same device/dtype.

    compile_norms: fuse each residual add with its LayerNorm through torch.compile when running on CUDA
    (the CPU always runs them eagerly). A BF16 model is widened (see FusedTransformer.widen). Raises
    Unsupported for architectures or options not implemented.
    """
    builder = BUILDERS.get(base_model.config.model_type)
    _require(builder is not None, f"model type {base_model.config.model_type}")
    trunk = builder(base_model, gelu_epilogue, compile_norms)
    if next(base_model.parameters()).dtype == torch.bfloat16:
        trunk.widen()
    return trunk
