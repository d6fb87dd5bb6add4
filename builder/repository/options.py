"""How a repository serves beyond its serving backend and precision: make-repo's serving options."""

from __future__ import annotations

from dataclasses import dataclass

from builder.common.errors import ConfigError
from builder.engines.python_torch import KERNELS


@dataclass(frozen=True)
class ServingOptions:
    """How the repository serves, beyond its serving backend and precision."""

    kernels: str = "fused"  # python-torch: one of builder.engines.python_torch.KERNELS
    single_model: bool = False  # python-torch: tokenizer, model and post-processing in one Python model
    max_queue_delay_us: int | None = None  # the model's batching delay; None keeps the GPU profile's
    host_threads: int | None = None  # every Python model's pool size; None: the stubs' rule (tritonbuild_backend)
    gpus: tuple[int, ...] = ()  # the model's instances on each of these GPUs; (): Triton's placement (every GPU)

    def __post_init__(self) -> None:
        if self.kernels not in KERNELS:
            raise ConfigError(f"unknown kernels '{self.kernels}'", hint=f"choose {', '.join(KERNELS)}")
        if self.max_queue_delay_us is not None and self.max_queue_delay_us < 0:
            raise ConfigError("the batching delay must be >= 0 microseconds")
        if self.host_threads is not None and self.host_threads < 1:
            raise ConfigError("--host-threads must be >= 1")
        if self.gpus and (min(self.gpus) < 0 or len(set(self.gpus)) != len(self.gpus)):
            raise ConfigError(f"--gpus {','.join(map(str, self.gpus))}: give distinct GPU indices, e.g. 0,1")

    @property
    def gpu_count(self) -> int:
        """How many GPUs the placement names (1 when it leaves placement to Triton)."""
        return max(1, len(self.gpus))

    def threads_parameter(self) -> tuple[tuple[str, str], ...]:
        """The `host_threads` parameter every Python model gets when the rule is overridden."""
        return () if self.host_threads is None else (("host_threads", str(self.host_threads)),)
