"""GPU profiles: one typed record per target GPU, the source of batching and instance settings."""

from __future__ import annotations

from dataclasses import dataclass

from builder.common.errors import ConfigError


@dataclass(frozen=True)
class GpuProfile:
    """What a target device supports and how a repository should use it."""

    name: str
    description: str
    compute_capability: tuple[int, int] | None  # None for the CPU
    memory_gib: int
    fp16: bool
    bf16: bool
    int8: bool
    fp8: bool
    max_batch_size: int
    seq_buckets: tuple[int, ...]
    model_instances: int
    tokenizer_instances: int
    post_instances: int  # post-processing: one per few hundred requests/s of pooling or softmax
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    # Values of the `nvidia.com/gpu.product` node label (NVIDIA GPU feature discovery: the NVML name, spaces as
    # dashes) of the boards this profile covers; `tritonbuild deploy` schedules pods onto nodes with one of them.
    node_products: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"GPU profile {self.name}: max_batch_size must be >= 1")
        if list(self.seq_buckets) != sorted(set(self.seq_buckets)) or not self.seq_buckets:
            raise ConfigError(f"GPU profile {self.name}: seq_buckets must be strictly increasing")
        if any(b > self.max_batch_size for b in self.preferred_batch_sizes):
            raise ConfigError(f"GPU profile {self.name}: a preferred batch size exceeds max_batch_size")
        if self.is_gpu != bool(self.node_products):
            raise ConfigError(f"GPU profile {self.name}: GPU profiles, and only they, name their node products")

    @property
    def is_gpu(self) -> bool:
        """True when models should be placed on a GPU (instance kind KIND_GPU)."""
        return self.compute_capability is not None

    def buckets_up_to(self, max_len: int) -> tuple[int, ...]:
        """Sequence-length buckets capped at the model's maximum length (which is always the last bucket)."""
        kept = tuple(b for b in self.seq_buckets if b < max_len)
        return (*kept, max_len)


_BUCKETS = (16, 32, 64, 128, 256, 512)

PROFILES: dict[str, GpuProfile] = {
    p.name: p
    for p in (
        GpuProfile(
            "cpu",
            "CPU only (the bundled local tritonserver)",
            None,
            0,
            # No FP16 arithmetic units; ONNX Runtime's CPU provider still runs FP16 graphs (builder/support.py).
            fp16=False,
            bf16=False,
            int8=True,
            fp8=False,
            max_batch_size=32,
            seq_buckets=_BUCKETS,
            # Two of each, so one maximal request (32 × 256 tokens: seconds on two cores) cannot hold the only
            # instance while small requests queue behind it: on the 2-core box their p99 went from 2.4 s to 23 ms.
            model_instances=2,
            tokenizer_instances=2,
            post_instances=1,
            preferred_batch_sizes=(8, 16, 32),
            max_queue_delay_us=500,
        ),
        GpuProfile(
            "t4",
            "NVIDIA T4 (Turing, 16 GB, no BF16)",
            (7, 5),
            16,
            fp16=True,
            bf16=False,
            int8=True,
            fp8=False,
            max_batch_size=64,
            seq_buckets=_BUCKETS,
            model_instances=2,
            tokenizer_instances=2,
            post_instances=1,
            preferred_batch_sizes=(16, 32, 64),
            max_queue_delay_us=1000,
            node_products=("Tesla-T4",),
        ),
        GpuProfile(
            "a10g",
            "NVIDIA A10G (Ampere, 24 GB)",
            (8, 6),
            24,
            fp16=True,
            bf16=True,
            int8=True,
            fp8=False,
            max_batch_size=64,
            seq_buckets=_BUCKETS,
            model_instances=2,
            tokenizer_instances=2,
            post_instances=1,
            preferred_batch_sizes=(16, 32, 64),
            max_queue_delay_us=1000,
            node_products=("NVIDIA-A10G",),
        ),
        GpuProfile(
            "l4",
            "NVIDIA L4 (Ada, 24 GB, FP8)",
            (8, 9),
            24,
            fp16=True,
            bf16=True,
            int8=True,
            fp8=True,
            max_batch_size=64,
            seq_buckets=_BUCKETS,
            model_instances=2,
            tokenizer_instances=2,
            post_instances=1,
            preferred_batch_sizes=(16, 32, 64),
            max_queue_delay_us=1000,
            node_products=("NVIDIA-L4",),
        ),
        GpuProfile(
            "a100",
            "NVIDIA A100 (Ampere, 40/80 GB)",
            (8, 0),
            40,
            fp16=True,
            bf16=True,
            int8=True,
            fp8=False,
            max_batch_size=128,
            seq_buckets=_BUCKETS,
            model_instances=2,
            tokenizer_instances=4,
            post_instances=2,
            preferred_batch_sizes=(32, 64, 128),
            max_queue_delay_us=500,
            node_products=(
                "NVIDIA-A100-SXM4-40GB",
                "NVIDIA-A100-SXM4-80GB",
                "NVIDIA-A100-PCIE-40GB",
                "NVIDIA-A100-80GB-PCIe",
            ),
        ),
        GpuProfile(
            "h100",
            "NVIDIA H100 (Hopper, 80 GB, FP8)",
            (9, 0),
            80,
            fp16=True,
            bf16=True,
            int8=True,
            fp8=True,
            max_batch_size=128,
            seq_buckets=_BUCKETS,
            model_instances=2,
            tokenizer_instances=4,
            post_instances=2,
            preferred_batch_sizes=(32, 64, 128),
            max_queue_delay_us=500,
            node_products=("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"),
        ),
        GpuProfile(
            "h200",
            "NVIDIA H200 (Hopper, 141 GB HBM3e, FP8)",
            (9, 0),
            141,
            fp16=True,
            bf16=True,
            int8=True,
            fp8=True,
            max_batch_size=128,
            seq_buckets=_BUCKETS,
            # a third instance: +4.4 / +6.2 % at 64 concurrent texts (h200_2026-12-03/wide3_1935/); `tritonbench
            # tune` chose one too for its mix, with a 500 µs delay (+9 % together, h200_2026-12-02/tune/)
            model_instances=3,
            tokenizer_instances=4,
            post_instances=2,
            preferred_batch_sizes=(32, 64, 128),
            max_queue_delay_us=100,
            node_products=("NVIDIA-H200", "NVIDIA-H200-NVL"),
        ),
    )
}


def get_profile(name: str) -> GpuProfile:
    """Look a profile up by name, with an error that lists the known ones."""
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown GPU profile '{name}'", hint=f"choose one of: {', '.join(PROFILES)} (see `tritonbuild gpus`)"
        ) from None


def gpu_indices(spec: str) -> tuple[int, ...]:
    """`--gpus`: "0,1" as device indices, or "all": every GPU this host has (build on the serving host)."""
    if spec.strip().lower() == "all":
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError("--gpus all: this host has no GPU to count", hint="name them instead, e.g. --gpus 0,1")
        return tuple(range(count))
    try:
        indices = tuple(int(part) for part in spec.split(","))
    except ValueError:
        raise ConfigError(
            f"--gpus {spec!r} is not a list of GPU indices", hint="e.g. --gpus 0,1 or --gpus all"
        ) from None
    if min(indices) < 0 or len(set(indices)) != len(indices):
        raise ConfigError(f"--gpus {spec!r}: give distinct GPU indices", hint="e.g. --gpus 0,1")
    return indices
