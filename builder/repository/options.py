"""How a repository serves beyond its serving backend and precision: make-repo's serving options."""

from __future__ import annotations

from dataclasses import dataclass, replace

from builder.common.errors import ConfigError
from builder.engines.python_torch import KERNELS
from builder.gpus import GpuProfile


@dataclass(frozen=True)
class ServingOptions:
    """How the repository serves, beyond its serving backend and precision."""

    kernels: str = "fused"  # python-torch: one of builder.engines.python_torch.KERNELS
    single_model: bool = False  # python-torch: tokenizer, model and post-processing in one Python model
    max_queue_delay_us: int | None = None  # the model's batching delay; None keeps the GPU profile's
    host_threads: int | None = None  # every Python model's pool size; None: the stubs' rule (tritonbuild_backend)
    gpus: tuple[int, ...] = ()  # the model's instances on each of these GPUs; (): Triton's placement (every GPU)
    # Overrides of the GPU profile's serving settings (None keeps the profile's): what `tritonbench tune` searches.
    model_instances: int | None = None  # the model's instances (on each GPU of the placement)
    tokenizer_instances: int | None = None  # the tokenizer step's instances (scaled with the GPUs, as the profile's)
    post_instances: int | None = None  # the post-processing step's instances (as the tokenizer's)
    max_batch_size: int | None = None  # every model of the deployment
    preferred_batch_sizes: tuple[int, ...] | None = None  # the model's; (): none, the batcher fills max_batch_size
    seq_buckets: tuple[int, ...] | None = None  # the lengths the tokenizer pads to (and python-torch captures)
    batch_buckets: tuple[int, ...] | None = None  # python-torch: the batch sizes it captures (max batch size added)

    def __post_init__(self) -> None:
        if self.kernels not in KERNELS:
            raise ConfigError(f"unknown kernels '{self.kernels}'", hint=f"choose {', '.join(KERNELS)}")
        if self.max_queue_delay_us is not None and self.max_queue_delay_us < 0:
            raise ConfigError("the batching delay must be >= 0 microseconds")
        if self.host_threads is not None and self.host_threads < 1:
            raise ConfigError("--host-threads must be >= 1")
        if self.gpus and (min(self.gpus) < 0 or len(set(self.gpus)) != len(self.gpus)):
            raise ConfigError(f"--gpus {','.join(map(str, self.gpus))}: give distinct GPU indices, e.g. 0,1")
        self._check_overrides()

    def _check_overrides(self) -> None:
        counts = {"--model-instances": self.model_instances, "--tokenizer-instances": self.tokenizer_instances,
                  "--post-instances": self.post_instances, "--max-batch-size": self.max_batch_size}  # fmt: skip
        for option, count in counts.items():
            if count is not None and count < 1:
                raise ConfigError(f"{option} must be >= 1")
        for option, sizes in {
            "--preferred-batch-sizes": self.preferred_batch_sizes,
            "--seq-buckets": self.seq_buckets,
            "--batch-buckets": self.batch_buckets,
        }.items():
            if sizes and (min(sizes) < 1 or list(sizes) != sorted(set(sizes))):
                raise ConfigError(
                    f"{option} {_listed(sizes)}: give strictly increasing positive sizes", hint="e.g. 8,16,32"
                )
        for option, sizes in {"--seq-buckets": self.seq_buckets, "--batch-buckets": self.batch_buckets}.items():
            if sizes == ():
                raise ConfigError(f"{option} needs at least one size", hint="e.g. 8,16,32")
        if self.preferred_batch_sizes and self.max_batch_size and max(self.preferred_batch_sizes) > self.max_batch_size:
            raise ConfigError(
                f"--preferred-batch-sizes {_listed(self.preferred_batch_sizes)} exceeds --max-batch-size "
                f"{self.max_batch_size}"
            )

    @property
    def gpu_count(self) -> int:
        """How many GPUs the placement names (1 when it leaves placement to Triton)."""
        return max(1, len(self.gpus))

    def threads_parameter(self) -> tuple[tuple[str, str], ...]:
        """The `host_threads` parameter every Python model gets when the rule is overridden."""
        return () if self.host_threads is None else (("host_threads", str(self.host_threads)),)

    def profile(self, gpu: GpuProfile) -> GpuProfile:
        """`gpu` with these overrides: the one profile every config of a plan reads its serving settings from.

        A smaller --max-batch-size without --preferred-batch-sizes keeps the profile's preferred sizes that fit.
        """
        max_batch = self.max_batch_size or gpu.max_batch_size
        preferred = self.preferred_batch_sizes
        if preferred is None:
            preferred = tuple(b for b in gpu.preferred_batch_sizes if b <= max_batch)
        elif preferred and max(preferred) > max_batch:
            raise ConfigError(
                f"--preferred-batch-sizes {_listed(preferred)} exceeds the max batch size {max_batch} of GPU "
                f"profile {gpu.name}",
                hint="lower them or raise --max-batch-size",
            )
        return replace(
            gpu,
            max_batch_size=max_batch,
            preferred_batch_sizes=preferred,
            model_instances=self.model_instances or gpu.model_instances,
            tokenizer_instances=self.tokenizer_instances or gpu.tokenizer_instances,
            post_instances=self.post_instances or gpu.post_instances,
            seq_buckets=self.seq_buckets or gpu.seq_buckets,
        )


def _listed(sizes: tuple[int, ...]) -> str:
    return ",".join(map(str, sizes))
