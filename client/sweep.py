"""`tritonbench sweep`: batch × sequence length × load, measured like perf_analyzer, stored as it goes."""

from __future__ import annotations

import asyncio
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from builder.common.tokenizer import load_tokenizer
from builder.common.versions import package_versions
from client.inputs import InputError, TextSource, find_tokenizer, request_texts, request_tokens
from client.load import Load, PointRun, run_point
from client.measure import MeasurementConfig, summarize
from client.raw_grpc import RawGrpcSender, serialize_request
from client.records import PointRecord, ResultStore, point_key
from client.server_stats import average_gpu, counters, deltas, read_gpu_metrics
from client.text_client import AsyncTextClient, ClientConfig, ClientError, text_array
from client.texts import mixed_requests, texts_digest, token_lengths

ENGINES = ("tritonbench", "perf_analyzer")
REQUEST_POOL = 32  # distinct requests per point, cycled; enough that no cache sees one input only
MIXED = 0  # the sequence length of a point that sends the config's texts as they are, in their real proportions
Echo = Callable[[str], None]


class SweepError(ClientError):
    """A sweep stopped early; finished points are in the store and a rerun resumes."""


@dataclass(frozen=True)
class SweepConfig:
    """The grid, the measurement rule and where the inputs come from."""

    client: ClientConfig
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    concurrency: tuple[int, ...] = ()
    request_rates: tuple[float, ...] = ()
    arrival: str = "constant"
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    variant: str = ""
    engine: str = "tritonbench"  # or perf_analyzer: NVIDIA's binary over the same grid and inputs
    tokenizer: Path | None = None
    metrics_url: str | None = None
    seed: int = 0
    texts: tuple[str, ...] = ()  # real texts to send instead of exact-length cuts (client.texts); seq_lens (MIXED,)

    def __post_init__(self) -> None:
        if self.texts and self.seq_lens != (MIXED,):
            raise ClientError("a sweep over given texts sends their own lengths", hint="sweep seq_lens (MIXED,)")
        if bool(self.concurrency) == bool(self.request_rates):
            raise ClientError("give either concurrency levels or request rates", hint="--concurrency or --request-rate")
        if self.engine not in ENGINES:
            raise ClientError(f"unknown engine '{self.engine}'", hint=f"choose {' or '.join(ENGINES)}")
        if self.arrival not in ("constant", "poisson"):
            raise ClientError(f"unknown arrival process '{self.arrival}'", hint="constant or poisson")

    @property
    def mode(self) -> str:
        """The load mode: "concurrency" or "request_rate"."""
        return "concurrency" if self.concurrency else "request_rate"


@dataclass(frozen=True)
class Point:
    """One grid point."""

    batch_size: int
    seq_len: int
    concurrency: int | None = None
    request_rate: float | None = None

    def key(self, config: SweepConfig) -> tuple[Any, ...]:
        """The store key this point will have."""
        arrival = config.arrival if self.request_rate is not None else None
        return point_key(
            config.client.model,
            config.client.protocol,
            config.engine,
            config.mode,
            self.batch_size,
            self.seq_len,
            self.concurrency,
            self.request_rate,
            arrival,
            config.variant,
        )


def plan_points(config: SweepConfig) -> list[Point]:
    """Every point of the grid, in measuring order (load innermost, so a curve fills in first)."""
    loads: list[tuple[int | None, float | None]] = [(c, None) for c in config.concurrency]
    loads = loads or [(None, r) for r in config.request_rates]
    return [Point(b, s, c, r) for b in config.batch_sizes for s in config.seq_lens for c, r in loads]


def estimate_seconds(config: MeasurementConfig, points: int) -> tuple[float, float]:
    """Fastest and slowest duration of `points` points: settled after N windows, or after max trials."""
    per_window = config.window_s
    return (
        points * (config.warmup_s + per_window * config.stable_windows),
        points * (config.warmup_s + per_window * config.max_trials),
    )


@dataclass(frozen=True)
class Target:
    """What the server says about the model: how to feed it and its limits."""

    text_input: bool  # an ensemble taking TEXT, or a bare model taking token ids
    max_batch_size: int
    max_length: int | None  # from the tokenizer step's parameters, when there is one


async def discover(client: AsyncTextClient, model: str) -> Target:
    """Read the model's config (and its tokenizer step's) to choose inputs and check limits."""
    config = await client.model_config(model)
    inputs = {i["name"] for i in config.get("input", [])}
    if inputs == {"TEXT"}:
        text_input = True
    elif {"input_ids", "attention_mask"} <= inputs:
        text_input = False
    else:
        raise InputError(
            f"model {model} has inputs {sorted(inputs)}",
            hint="tritonbench feeds TEXT (a tritonbuild ensemble) or input_ids + attention_mask",
        )
    max_length = None
    for step in config.get("ensemble_scheduling", {}).get("step", []):
        step_config = await client.model_config(step["model_name"])
        params = step_config.get("parameters", {})
        if "max_length" in params:
            max_length = int(params["max_length"]["string_value"])
    return Target(text_input, int(config.get("max_batch_size", 0)), max_length)


def check_point(point: Point, target: Target, model: str) -> None:
    """Refuse shapes the model cannot take, before any load is sent."""
    if target.max_batch_size and point.batch_size > target.max_batch_size:
        raise InputError(f"batch size {point.batch_size} exceeds max_batch_size {target.max_batch_size} of {model}")
    if point.seq_len == MIXED and not target.text_input:
        raise InputError(f"{model} takes token ids, not texts", hint="sweep texts against an ensemble taking TEXT")
    if target.max_length and point.seq_len > target.max_length:
        raise InputError(f"sequence length {point.seq_len} exceeds the {target.max_length} tokens {model} accepts")


class Sweeper:
    """Measures points against one server with one client; inputs are built off the timed path."""

    def __init__(self, config: SweepConfig, tokenizer_path: Path | None) -> None:
        self.config = config
        self.tokenizer = load_tokenizer(tokenizer_path) if tokenizer_path else None
        self._texts = TextSource(self.tokenizer) if self.tokenizer and not config.texts else None

    def _texts_for(self, point: Point) -> list[list[str]]:
        if point.seq_len == MIXED:
            return mixed_requests(self.config.texts, point.batch_size, self.config.seed, REQUEST_POOL)
        if self._texts is None:
            raise InputError(
                f"{self.config.client.model} takes TEXT: sweeping a sequence length needs its tokenizer",
                hint="pass --tokenizer (tokenizer.json) or --repo (the model repository)",
            )
        return request_texts(
            self._texts, point.batch_size, point.seq_len, REQUEST_POOL, self.config.seed + point.seq_len
        )

    def _arrays(self, target: Target, point: Point) -> list[dict[str, np.ndarray]]:
        """The point's distinct requests as named arrays, built before any load is sent."""
        if target.text_input:
            return [{"TEXT": text_array(batch)} for batch in self._texts_for(point)]
        return request_tokens(
            self.tokenizer, point.batch_size, point.seq_len, REQUEST_POOL, self.config.seed + point.seq_len
        )

    def measure_with_perf_analyzer(self, point: Point, target: Target) -> PointRecord | None:
        """The same point measured by NVIDIA's perf_analyzer on the same inputs; None if it never settled."""
        from client import perf_analyzer as pa

        c, m = self.config, self.config.measurement
        with tempfile.TemporaryDirectory(prefix="tritonbench-pa-") as tmp:
            data = Path(tmp) / "input.json"
            if target.text_input:  # perf_analyzer builds each batch from [1]-shaped entries
                pa.write_text_data(data, [t for batch in self._texts_for(point) for t in batch])
            else:
                arrays = request_tokens(self.tokenizer, point.batch_size, point.seq_len, REQUEST_POOL, c.seed)
                pa.write_token_data(
                    data,
                    np.concatenate([a["input_ids"] for a in arrays]),
                    np.concatenate([a["attention_mask"] for a in arrays]),
                )
            run_spec = pa.PerfPoint(
                url=c.client.url,
                model=c.client.model,
                protocol=c.client.protocol,
                batch_size=point.batch_size,
                concurrency=point.concurrency,
                request_rate=point.request_rate,
                arrival=c.arrival,
                measurement_interval_ms=int(m.window_s * 1000),
                measurement_request_count=m.window_requests or None,
                stability_pct=m.stability_pct,
                max_trials=m.max_trials,
                input_data=data,
            )
            try:
                run = pa.run_point(run_spec)
            except pa.PerfAnalyzerUnstable:
                return None
        return pa.to_record(run, point.seq_len, c.variant)

    async def _sample(self, client: AsyncTextClient) -> dict[str, Any]:
        stats = counters(await client.statistics())
        gpu = await asyncio.to_thread(read_gpu_metrics, self.config.metrics_url)
        return {"stats": stats, "gpu": gpu}

    async def discover(self) -> Target:
        """Ask the server about the model once, before the sweep starts."""
        async with AsyncTextClient(self.config.client) as client:
            return await discover(client, self.config.client.model)

    async def measure(self, point: Point, target: Target) -> PointRecord:
        """Measure one point end to end and return its record."""
        arrays = self._arrays(target, point)
        async with AsyncTextClient(self.config.client) as client:  # statistics, and HTTP requests
            if self.config.client.protocol == "grpc":
                sender = RawGrpcSender(self.config.client)
                wire = [serialize_request(self.config.client.model, a) for a in arrays]

                async def send(index: int) -> None:
                    await sender.send(wire[index % len(wire)])
            else:
                prepared = [client.prepare_arrays(a) for a in arrays]

                async def send(index: int) -> None:
                    await client.infer_inputs(prepared[index % len(prepared)])

            load = Load(point.concurrency, point.request_rate, self.config.arrival, self.config.seed)
            try:
                run = await run_point(send, load, self.config.measurement, lambda: self._sample(client))
            finally:
                if self.config.client.protocol == "grpc":
                    await sender.close()
        return self.record(point, run, self.tokens_per_text(point, target))

    def tokens_per_text(self, point: Point, target: Target) -> float:
        """The point's tokens per text: its length, or the texts' mean as the server cuts them (0 untokenized)."""
        if point.seq_len != MIXED:
            return point.seq_len
        if self.tokenizer is None:
            return 0.0
        lengths = token_lengths(self.tokenizer, self.config.texts, target.max_length)
        return sum(lengths) / len(lengths)

    def record(self, point: Point, run: PointRun, tokens_per_text: float | None = None) -> PointRecord:
        """Turn a finished run into the stored record (`tokens_per_text` defaults to the point's length)."""
        m = self.config.measurement
        try:
            summary = summarize(run.windows, m)
        except ValueError:
            raise ClientError(
                f"no request succeeded at batch {point.batch_size}, "
                f"{'the given texts' if point.seq_len == MIXED else f'length {point.seq_len}'}: "
                f"{run.first_error or 'nothing finished in the window'}"
            ) from None
        n = min(m.stable_windows, len(run.windows))
        first, last = run.snapshots[-n - 1], run.snapshots[-1]
        seq_per_s = summary.throughput_infer_per_s * point.batch_size
        c = self.config
        return PointRecord(
            model=c.client.model,
            protocol=c.client.protocol,
            engine="tritonbench",
            mode=c.mode,
            batch_size=point.batch_size,
            seq_len=point.seq_len,
            concurrency=point.concurrency,
            request_rate=point.request_rate,
            arrival=c.arrival if point.request_rate is not None else None,
            variant=c.variant,
            requests=summary.requests,
            errors=run.failures.errors,
            timeouts=run.failures.timeouts,
            duration_s=summary.duration_s,
            throughput_infer_per_s=summary.throughput_infer_per_s,
            throughput_seq_per_s=seq_per_s,
            throughput_tokens_per_s=seq_per_s * (point.seq_len if tokens_per_text is None else tokens_per_text),
            stable=run.stable,
            trials=len(run.windows),
            server=deltas(first["stats"], last["stats"]),
            gpu=average_gpu([s["gpu"] for s in run.snapshots[-n:]]),
            host=platform.node(),
            timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
            versions=package_versions(),
            settings={
                "window_s": m.window_s,
                "window_requests": m.window_requests,
                "stability_pct": m.stability_pct,
                "stable_windows": m.stable_windows,
                "max_trials": m.max_trials,
                "warmup_s": m.warmup_s,
                "url": c.client.url,
                **({"texts": len(c.texts), "texts_digest": texts_digest(c.texts)} if c.texts else {}),
            },
            **{k: v for k, v in summary.latency.items()},
        )


def run_async(coroutine: Any) -> Any:
    """Run the load on uvloop where it is installed: a faster event loop leaves more CPU to the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def point_line(record: PointRecord) -> str:
    """One finished point on one line: where it was measured, what came out, and whether it failed anywhere."""
    load = f"c{record.concurrency}" if record.concurrency else f"{record.request_rate:g}/s"
    timeouts = f" (timeouts {record.timeouts})" if record.timeouts else ""
    return (
        f"b{record.batch_size:<3} s{record.seq_len:<4} {load:>7}: {record.throughput_seq_per_s:9.1f} seq/s  "
        f"p50 {record.latency_p50_ms:8.2f} ms  p99 {record.latency_p99_ms:8.2f} ms  errors {record.errors}{timeouts}"
        f"{'' if record.stable else '  UNSTABLE'}"
    )


def _point_name(point: Point) -> str:
    load = f"c{point.concurrency}" if point.concurrency else f"r{point.request_rate:g}"
    return f"b{point.batch_size} s{point.seq_len} {load}"


def _interrupted(config: SweepConfig, todo: list[Point], store: ResultStore) -> str:
    """What a Ctrl-C leaves: the points of this run in the store, and how many a rerun still measures.

    Read back from the store: a Ctrl-C may come between storing a record and anything after it.
    """
    wanted = {p.key(config): p for p in todo}
    saved = [wanted[r.key] for r in store.load() if r.key in wanted]
    names = ", ".join(_point_name(p) for p in saved)
    return (
        f"interrupted: {len(saved)} new point(s) of this run are saved in {store.path}"
        f"{': ' + names if names else ''}; the same command measures the other {len(todo) - len(saved)}"
    )


def run_sweep(
    config: SweepConfig, store: ResultStore, echo: Echo, repo: Path | None = None, progress: bool = True
) -> list[PointRecord]:
    """Measure every point not yet in `store`, appending each record as soon as it is measured.

    Without a progress bar each finished point gets its line (point_line) as it is stored.
    """
    store.ensure_writable()
    points = plan_points(config)
    done = store.done_keys()
    todo = [p for p in points if p.key(config) not in done]
    fast, slow = estimate_seconds(config.measurement, len(todo))
    sweeper = Sweeper(config, find_tokenizer(config.client.model, config.tokenizer, repo))
    target = asyncio.run(sweeper.discover())
    for point in todo:  # impossible shapes fail now, not halfway through the grid
        check_point(point, target, config.client.model)
    echo(
        f"{len(points)} points, {len(points) - len(todo)} already in {store.path} (skipped); "
        f"{len(todo)} to measure, about {fast / 60:.1f}–{slow / 60:.1f} min"
    )
    records: list[PointRecord] = []
    try:
        _measure_points(sweeper, target, todo, store, records, echo, progress)
    except KeyboardInterrupt:
        echo(_interrupted(config, todo, store))
        raise
    except ClientError as exc:
        if records or done:
            raise SweepError(
                f"{exc.message}\n{len(records)} new point(s) of this run are saved in {store.path}",
                hint="fix the cause and run the same command again: finished points are skipped",
            ) from exc
        raise
    return records


def _measure_points(
    sweeper: Sweeper,
    target: Target,
    todo: list[Point],
    store: ResultStore,
    records: list[PointRecord],
    echo: Echo,
    progress: bool,
) -> None:
    """Measure `todo` in order, storing each record and adding it to `records` as soon as it is measured."""
    config = sweeper.config
    bar = tqdm(todo, unit="point", disable=not progress or not todo)
    for number, point in enumerate(bar, 1):
        bar.set_description(_point_name(point))
        if config.engine == "perf_analyzer":
            record = sweeper.measure_with_perf_analyzer(point, target)
            if record is None:
                echo(f"perf_analyzer found no stable measurement at {point}; not stored (a rerun retries it)")
                continue
        else:
            record = run_async(sweeper.measure(point, target))
        store.append(record)
        records.append(record)
        if not progress:
            echo(f"[{number}/{len(todo)}] {point_line(record)}")
        bar.set_postfix_str(
            f"{record.throughput_seq_per_s:.0f} seq/s p50 {record.latency_p50_ms:.1f} ms"
            f"{'' if record.stable else ' UNSTABLE'}"
        )
    bar.close()
