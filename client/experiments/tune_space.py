"""The space `tritonbench tune` searches: serving settings as dimensions, the GPU profile's defaults as the start.

Pure: a candidate is a value per dimension; it becomes make-repo's ServingOptions (the builder plans it), and the
space says which candidates neighbour it. Length buckets come from the texts' own token lengths (quantiles,
rounded up to a multiple of 8), beside the profile's powers of two.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field, fields, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from builder.common.errors import UserError

if TYPE_CHECKING:  # builder.repository imports the export and precision stages: seconds, which the CLI need not pay
    from builder.gpus import GpuProfile
    from builder.repository.options import ServingOptions

PREFERRED = ("none", "ladder", "powers")  # how the model's preferred batch sizes follow its max batch size
BUCKET_SCHEMES = ("profile", "q2", "q4", "q8")  # the profile's powers of two; quantiles of the texts' lengths
BUCKET_MULTIPLE = 8
DELAYS_US = (0, 100, 500, 1000, 2000, 5000)
INSTANCES = (1, 2, 3, 4)
TOKENIZER_INSTANCES = (1, 2, 4, 8)
MAX_BATCH = (4, 8, 16, 32, 64, 128, 256)
# The order the quick search tries dimensions in: what changes a text model's latency most, first.
ORDER = (
    "single_model",
    "model_instances",
    "max_queue_delay_us",
    "max_batch_size",
    "preferred",
    "buckets",
    "tokenizer_instances",
)


class SpaceError(UserError):
    """A search space that cannot be made from the options given."""


def preferred_sizes(policy: str, max_batch: int) -> tuple[int, ...]:
    """The preferred batch sizes of `policy` for `max_batch`: none, a quarter/half/all ladder, or every power of 2."""
    if policy == "none":
        return ()
    if policy == "ladder":
        return tuple(sorted({max(1, max_batch // 4), max(1, max_batch // 2), max_batch}))
    if policy == "powers":
        powers = [2**i for i in range(max_batch.bit_length()) if 2**i <= max_batch]
        return tuple(sorted({*powers, max_batch}))
    raise SpaceError(f"unknown preferred-size policy '{policy}'", hint=f"choose {', '.join(PREFERRED)}")


def profile_policy(gpu: GpuProfile) -> str:
    """The policy that gives the profile's own preferred sizes (every built-in profile has one)."""
    for policy in PREFERRED:
        if preferred_sizes(policy, gpu.max_batch_size) == gpu.preferred_batch_sizes:
            return policy
    raise SpaceError(f"GPU profile {gpu.name}'s preferred batch sizes {gpu.preferred_batch_sizes} follow no policy")


def quantile_buckets(lengths: Sequence[int], parts: int, max_length: int) -> tuple[int, ...]:
    """Buckets at the 1/parts, 2/parts ... quantiles of `lengths` (nearest rank), rounded up to a multiple of 8.

    The model's maximum length is always the last bucket, as make-repo makes it.
    """
    if not lengths:
        raise SpaceError("no token lengths to derive buckets from")
    ordered = sorted(lengths)
    cuts = set()
    for i in range(1, parts + 1):
        at = ordered[max(1, math.ceil(i / parts * len(ordered))) - 1]
        cuts.add(min(max_length, BUCKET_MULTIPLE * math.ceil(at / BUCKET_MULTIPLE)))
    return (*sorted(c for c in cuts if c < max_length), max_length)


def bucket_choices(gpu: GpuProfile, max_length: int, lengths: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """Each bucket scheme's buckets; a scheme that gives the same buckets as an earlier one is left out."""
    found: dict[str, tuple[int, ...]] = {"profile": gpu.buckets_up_to(max_length)}
    for scheme in BUCKET_SCHEMES[1:]:
        buckets = quantile_buckets(lengths, int(scheme[1:]), max_length)
        if buckets not in found.values():
            found[scheme] = buckets
    return found


@dataclass(frozen=True)
class Candidate:
    """One serving configuration: a value per dimension (field order is ORDER)."""

    single_model: bool  # python-torch: the one-model deployment instead of the 3-step ensemble
    model_instances: int
    max_queue_delay_us: int
    max_batch_size: int
    preferred: str  # a PREFERRED policy
    buckets: tuple[int, ...]
    tokenizer_instances: int  # the ensemble's tokenizer step (the single model tokenizes in itself)

    @property
    def id(self) -> str:
        """A short fingerprint of the values: names the candidate's models and its records."""
        return hashlib.sha256(repr(astuple(self)).encode()).hexdigest()[:8]

    @property
    def name(self) -> str:
        """The candidate's deployment name in the repository while it is measured."""
        return f"tune-{self.id}"

    @property
    def preferred_batch_sizes(self) -> tuple[int, ...]:
        """The model's preferred batch sizes under its policy."""
        return preferred_sizes(self.preferred, self.max_batch_size)

    def label(self) -> str:
        """The values in a few words, for tables and progress lines."""
        deployment = "single model" if self.single_model else f"ensemble, {self.tokenizer_instances} tok"
        preferred = ",".join(map(str, self.preferred_batch_sizes)) or "none"
        return (
            f"{self.model_instances} inst, batch ≤{self.max_batch_size} (pref {preferred}), "
            f"delay {self.max_queue_delay_us} µs, buckets {','.join(map(str, self.buckets))}, {deployment}"
        )

    def serving(self, base: ServingOptions) -> ServingOptions:
        """make-repo's options for this candidate (kernels, threads and placement from `base`)."""
        return replace(
            base,
            single_model=self.single_model,
            model_instances=self.model_instances,
            tokenizer_instances=None if self.single_model else self.tokenizer_instances,
            max_batch_size=self.max_batch_size,
            preferred_batch_sizes=self.preferred_batch_sizes,
            max_queue_delay_us=self.max_queue_delay_us,
            seq_buckets=self.buckets,
        )

    def to_dict(self) -> dict[str, Any]:
        """The values as JSON-ready data."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        """Back from to_dict's form."""
        return cls(**{**data, "buckets": tuple(data["buckets"])})


@dataclass(frozen=True)
class Dimension:
    """One searched setting: its values, and whether they are ordered (a step goes to the next one) or a choice."""

    name: str
    values: tuple[Any, ...]
    ordered: bool

    def index(self, value: Any) -> int:
        """Where `value` lies among the values."""
        return self.values.index(value)


@dataclass(frozen=True)
class Space:
    """The dimensions, in the order the quick search tries them, and the start: the GPU profile's defaults."""

    dimensions: tuple[Dimension, ...]
    default: Candidate
    bucket_names: Mapping[tuple[int, ...], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for dim in self.dimensions:
            if getattr(self.default, dim.name) not in dim.values:
                raise SpaceError(f"the default {dim.name} is not among the values searched")

    def dimension(self, name: str) -> Dimension:
        """The dimension called `name`."""
        return next(d for d in self.dimensions if d.name == name)

    def active(self, candidate: Candidate, name: str) -> bool:
        """Whether `name` matters for `candidate` (a single model has no tokenizer step to scale)."""
        return not (name == "tokenizer_instances" and candidate.single_model)

    def canonical(self, candidate: Candidate) -> Candidate:
        """The one form of equivalent candidates: a single model keeps the default tokenizer count."""
        if candidate.single_model:
            return replace(candidate, tokenizer_instances=self.default.tokenizer_instances)
        return candidate

    def step(self, candidate: Candidate, name: str, direction: int) -> Candidate | None:
        """The candidate one value up (+1) or down (-1) an ordered dimension; None at its end."""
        dim = self.dimension(name)
        at = dim.index(getattr(candidate, name)) + direction
        if not dim.ordered or not self.active(candidate, name) or not 0 <= at < len(dim.values):
            return None
        return self.canonical(replace(candidate, **{name: dim.values[at]}))

    def others(self, candidate: Candidate, name: str) -> list[Candidate]:
        """The candidates with every other value of a dimension, the rest unchanged."""
        if not self.active(candidate, name):
            return []
        value = getattr(candidate, name)
        dim = self.dimension(name)
        return [self.canonical(replace(candidate, **{name: v})) for v in dim.values if v != value]

    def distance(self, candidate: Candidate) -> tuple[int, int]:
        """How far from the default: dimensions changed, then steps taken (a choice counts one)."""
        changed = steps = 0
        for dim in self.dimensions:
            here, there = dim.index(getattr(candidate, dim.name)), dim.index(getattr(self.default, dim.name))
            if here != there:
                changed += 1
                steps += abs(here - there) if dim.ordered else 1
        return changed, steps

    @cached_property
    def grid(self) -> tuple[Candidate, ...]:
        """Every candidate once, nearest the default first (what brute walks, so a cut-short walk stays near)."""
        names = [d.name for d in self.dimensions]
        found = {
            self.canonical(replace(self.default, **dict(zip(names, values, strict=True))))
            for values in itertools.product(*(d.values for d in self.dimensions))
        }

        def order(c: Candidate) -> tuple[Any, ...]:
            return (*self.distance(c), tuple(self.dimension(n).index(getattr(c, n)) for n in names))

        return tuple(sorted(found, key=order))

    def bucket_name(self, buckets: tuple[int, ...]) -> str:
        """The scheme a candidate's buckets come from ("q4"), or the buckets themselves."""
        return self.bucket_names.get(buckets, ",".join(map(str, buckets)))


def _with_default(values: Sequence[Any], default: Any) -> tuple[Any, ...]:
    """The values, sorted, with the default among them: the default configuration is always measured."""
    return tuple(sorted({*values, default}))


DEPLOYMENTS = {"ensemble": False, "single": True}


def parse_restriction(spec: str) -> tuple[str, tuple[Any, ...]]:
    """`--dimension NAME=V1,V2`: a dimension and the values to search (ints; a policy, scheme or deployment name)."""
    name, sep, text = spec.partition("=")
    name = name.strip().replace("-", "_")
    words = tuple(w.strip() for w in text.split(",") if w.strip())
    if not sep or not words:
        raise SpaceError(f"--dimension {spec!r} is not NAME=V1,V2", hint="e.g. --dimension max_batch_size=8,16,32")
    if name == "single_model":
        known: Mapping[str, Any] = DEPLOYMENTS
    elif name in ("preferred", "buckets"):
        known = {w: w for w in (PREFERRED if name == "preferred" else BUCKET_SCHEMES)}
    elif name in ORDER:
        least = 0 if name == "max_queue_delay_us" else 1
        if not all(w.isdigit() and int(w) >= least for w in words):
            raise SpaceError(f"--dimension {name} takes whole numbers >= {least}, not {text!r}")
        return name, tuple(int(w) for w in words)
    else:
        raise SpaceError(f"no dimension {name!r}", hint=f"dimensions: {', '.join(ORDER)}")
    unknown = [w for w in words if w not in known]
    if unknown:
        raise SpaceError(f"--dimension {name}: no value {', '.join(unknown)}", hint=f"values: {', '.join(known)}")
    return name, tuple(known[w] for w in words)


@dataclass(frozen=True)
class SpaceInputs:
    """What a space is made from: the profile, the engine, the model's length limit and the texts' lengths."""

    gpu: GpuProfile
    engine: str
    max_length: int
    lengths: tuple[int, ...]
    p99_ms: float
    restrict: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # dimension → values to search


def build_space(inputs: SpaceInputs) -> Space:
    """The space for one tuning run; `restrict` narrows a dimension to the given values (the default stays).

    Batching delays longer than half the latency budget are left out: the delay alone would spend it.
    """
    gpu, restrict = inputs.gpu, inputs.restrict
    buckets = bucket_choices(gpu, inputs.max_length, inputs.lengths)
    bucket_values = [buckets[s] for s in restrict.get("buckets", BUCKET_SCHEMES) if s in buckets]
    default = Candidate(
        single_model=False,
        model_instances=gpu.model_instances,
        max_queue_delay_us=gpu.max_queue_delay_us,
        max_batch_size=gpu.max_batch_size,
        preferred=profile_policy(gpu),
        buckets=buckets["profile"],
        tokenizer_instances=gpu.tokenizer_instances,
    )
    delays = [d for d in DELAYS_US if d <= inputs.p99_ms * 500]
    batches = [b for b in MAX_BATCH if b <= 2 * gpu.max_batch_size]
    from builder.engines import get_backend, names  # the backends' records say which serve as one model

    single = (False, True) if get_backend(inputs.engine).single_model else (False,)
    if "single_model" in restrict and not set(restrict["single_model"]) <= set(single):
        raise SpaceError(
            f"engine {inputs.engine} has no single-model deployment", hint=f"--engine {names(lambda b: b.single_model)}"
        )
    choices: dict[str, tuple[Sequence[Any], bool]] = {
        "single_model": (single, False),
        "model_instances": (INSTANCES, True),
        "max_queue_delay_us": (delays, True),
        "max_batch_size": (batches, True),
        "preferred": (PREFERRED, False),
        "buckets": (bucket_values, False),
        "tokenizer_instances": (TOKENIZER_INSTANCES, True),
    }
    dimensions = []
    for name in ORDER:
        values, ordered = choices[name]
        if name != "buckets":
            values = restrict.get(name, values)
        default_value = getattr(default, name)
        kept = _with_default(values, default_value) if ordered else tuple(dict.fromkeys([default_value, *values]))
        dimensions.append(Dimension(name, kept, ordered))
    return Space(tuple(dimensions), default, {v: k for k, v in buckets.items()})
