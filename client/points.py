"""What one measured point is: a request shape (batch × sequence length) under one load.

The load is described once, here, and validated once: every generator, the sweep's grid and the records read
the same `Load` instead of checking concurrency, request rate and arrival process each in its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.common.errors import UserError

ARRIVALS = ("constant", "poisson")
MIXED = 0  # the sequence length of a point that sends given texts as they are, in their real proportions


class LoadError(UserError):
    """A load no generator can send: neither or both of concurrency and rate, a non-positive one, a bad arrival."""


@dataclass(frozen=True)
class Load:
    """`concurrency` requests in flight (closed loop), or `request_rate` requests/s with `arrival` (open loop).

    An open loop without an arrival process sends at constant spacing; a closed loop has none.
    """

    concurrency: int | None = None
    request_rate: float | None = None
    arrival: str | None = None

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.request_rate is None):
            raise LoadError("give either a concurrency or a request rate", hint="not both, not neither")
        if self.concurrency is not None:
            if self.concurrency < 1:
                raise LoadError(f"concurrency must be at least 1, not {self.concurrency}")
            if self.arrival is not None:
                raise LoadError(f"an arrival process ({self.arrival}) applies to a request rate, not a concurrency")
            return
        assert self.request_rate is not None
        if not self.request_rate > 0:
            raise LoadError(f"request rate must be positive, not {self.request_rate}")
        if self.arrival is None:
            object.__setattr__(self, "arrival", "constant")  # frozen: the default is settled once, here
        if self.arrival not in ARRIVALS:
            raise LoadError(f"unknown arrival process '{self.arrival}'", hint=" or ".join(ARRIVALS))

    @property
    def mode(self) -> str:
        """The load mode as records name it: "concurrency" or "request_rate"."""
        return "concurrency" if self.concurrency is not None else "request_rate"


@dataclass(frozen=True)
class Point:
    """One point of a sweep: `batch_size` texts of `seq_len` tokens per request (MIXED: given texts), under `load`."""

    batch_size: int
    seq_len: int
    load: Load

    @property
    def name(self) -> str:
        """A short name for progress lines: "b8 s128 c4" or "b8 s128 r20"."""
        load = f"c{self.load.concurrency}" if self.load.concurrency else f"r{self.load.request_rate:g}"
        return f"b{self.batch_size} {'texts' if self.seq_len == MIXED else f's{self.seq_len}'} {load}"
