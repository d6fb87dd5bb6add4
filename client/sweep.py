"""A closed-loop load sweep over batch sizes and concurrency levels (kept small; see issue 3 for more)."""

from __future__ import annotations

import asyncio
import json
import platform
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.errors import OutputError
from client.stats import summarize_latencies
from client.text_client import AsyncTextClient, ClientConfig, ClientError, TextClient
from client.texts import sample_texts

RESULTS = "results.jsonl"


@dataclass(frozen=True)
class SweepConfig:
    """The grid and the measurement window of one sweep."""

    client: ClientConfig
    batch_sizes: tuple[int, ...]
    concurrency: tuple[int, ...]
    duration_s: float = 5.0
    warmup_s: float = 1.0
    seed: int = 0


@dataclass
class PointResult:
    """One (batch, concurrency) measurement."""

    model: str
    protocol: str
    batch_size: int
    concurrency: int
    requests: int
    errors: int
    duration_s: float
    throughput_infer_per_s: float
    throughput_seq_per_s: float
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    server_inference_count: int
    server_execution_count: int
    host: str


def model_counts(config: ClientConfig) -> tuple[int, int]:
    """Inference and execution counts summed over every model the server reports (statistics extension)."""
    with TextClient(config) as client:
        entries = client.model_statistics()
    return (sum(e["inference_count"] for e in entries), sum(e["execution_count"] for e in entries))


async def _worker(
    client: AsyncTextClient,
    pool: list[list[Any]],
    start: int,
    warm_end: float,
    end: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    i = start
    while (now := time.perf_counter()) < end:
        try:
            await client.infer_inputs(pool[i % len(pool)])
        except ClientError as exc:
            errors.append(str(exc))
            if "cannot reach" in str(exc):
                raise
        else:
            done = time.perf_counter()
            if now >= warm_end and done <= end:
                latencies.append(done - now)
        i += 1


async def measure(config: SweepConfig, batch: int, concurrency: int, texts: list[str]) -> PointResult:
    """Run `concurrency` closed-loop workers for warm-up + duration; latencies from the window only."""
    client = AsyncTextClient(config.client)
    try:
        pool = [client.prepare(texts[i * batch : (i + 1) * batch]) for i in range(len(texts) // batch)]
        before = model_counts(config.client)
        latencies: list[float] = []
        errors: list[str] = []
        warm_end = time.perf_counter() + config.warmup_s
        end = warm_end + config.duration_s
        await asyncio.gather(
            *(_worker(client, pool, w * 7, warm_end, end, latencies, errors) for w in range(concurrency))
        )
        after = model_counts(config.client)
    finally:
        await client.close()
    if not latencies:
        raise ClientError(
            f"no request succeeded at batch {batch}, concurrency {concurrency}: "
            f"{errors[0] if errors else 'no requests completed in the window'}"
        )
    count = len(latencies)
    return PointResult(
        model=config.client.model,
        protocol=config.client.protocol,
        batch_size=batch,
        concurrency=concurrency,
        requests=count,
        errors=len(errors),
        duration_s=config.duration_s,
        throughput_infer_per_s=count / config.duration_s,
        throughput_seq_per_s=count * batch / config.duration_s,
        server_inference_count=after[0] - before[0],
        server_execution_count=after[1] - before[1],
        host=platform.node(),
        **summarize_latencies(latencies),
    )


def run_sweep(config: SweepConfig, out: Path, echo: Any = print) -> list[PointResult]:
    """Measure every grid point, appending each record to out/results.jsonl as soon as it is done."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        sink = (out / RESULTS).open("a")
    except OSError as exc:
        raise OutputError(f"cannot write results to {out}: {exc.strerror}", hint="choose a writable --out") from exc
    rng = random.Random(config.seed)
    texts = sample_texts(max(config.batch_sizes) * 64, rng)
    points = [(b, c) for b in config.batch_sizes for c in config.concurrency]
    results = []
    with sink:
        for n, (batch, concurrency) in enumerate(points, 1):
            result = asyncio.run(measure(config, batch, concurrency, texts))
            sink.write(json.dumps(asdict(result)) + "\n")
            sink.flush()
            results.append(result)
            echo(
                f"[{n}/{len(points)}] batch {batch:>3} × concurrency {concurrency:>3}: "
                f"{result.throughput_seq_per_s:8.1f} seq/s, p50 {result.latency_p50_ms:7.2f} ms, "
                f"p99 {result.latency_p99_ms:7.2f} ms, errors {result.errors}"
            )
    return results


def markdown_table(results: list[PointResult]) -> str:
    """The sweep as a Markdown table."""
    lines = [
        "| model | protocol | batch | concurrency | infer/s | seq/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.model} | {r.protocol} | {r.batch_size} | {r.concurrency} | {r.throughput_infer_per_s:.1f} | "
        f"{r.throughput_seq_per_s:.1f} | {r.latency_p50_ms:.2f} | {r.latency_p90_ms:.2f} | "
        f"{r.latency_p99_ms:.2f} | {r.errors} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"
