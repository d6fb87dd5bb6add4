"""`tritonbench sweep`: batch × sequence length × load, each point measured by the chosen generator and stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from client.generators import GENERATORS, Generator
from client.generators.base import GeneratorConfig
from client.generators.measure import MeasurementConfig
from client.points import MIXED, Load, Point
from client.records import PointRecord, ResultStore, point_key
from client.targets.inputs import find_tokenizer
from client.targets.requests import Requests
from client.targets.target import Target, check_point, read_target
from client.transport.replicas import Endpoints, resolve_endpoints
from client.transport.text_client import ClientConfig, ClientError

Echo = Callable[[str], None]


class SweepError(ClientError):
    """A sweep stopped early; finished points are in the store and a rerun resumes."""


@dataclass(frozen=True)
class SweepConfig:
    """The grid, the measurement rule, the load generator and where the inputs come from."""

    client: ClientConfig
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    concurrency: tuple[int, ...] = ()
    request_rates: tuple[float, ...] = ()
    arrival: str = "constant"  # of every request rate
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    variant: str = ""
    generator: str = "tritonbench"  # or perf_analyzer: NVIDIA's binary over the same grid and requests
    tokenizer: Path | None = None
    metrics_url: str | None = None
    seed: int = 0
    texts: tuple[str, ...] = ()  # given texts instead of exact-length cuts; seq_lens (MIXED,)
    urls: tuple[str, ...] = ()  # every URL requests are spread over, client.url first; (): client.url alone
    # each concurrency level, or each request rate with the arrival process: built (and so validated) once
    loads: tuple[Load, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.texts and self.seq_lens != (MIXED,):
            raise ClientError("a sweep over given texts sends their own lengths", hint="sweep seq_lens (MIXED,)")
        if self.urls and self.urls[0] != self.client.url:
            raise ClientError(f"the first of the URLs {', '.join(self.urls)} must be the client's, {self.client.url}")
        if len(set(self.urls)) < len(self.urls):
            raise ClientError(f"a URL is given twice: {', '.join(self.urls)}", hint="give each --url once")
        if bool(self.concurrency) == bool(self.request_rates):
            raise ClientError("give either concurrency levels or request rates", hint="--concurrency or --request-rate")
        if self.generator not in GENERATORS:
            raise ClientError(f"unknown load generator '{self.generator}'", hint=f"choose {' or '.join(GENERATORS)}")
        if self.concurrency:
            loads = tuple(Load(concurrency=c) for c in self.concurrency)
        else:
            loads = tuple(Load(request_rate=r, arrival=self.arrival) for r in self.request_rates)
        object.__setattr__(self, "loads", loads)  # frozen: set once, here

    def key(self, point: Point) -> tuple[Any, ...]:
        """The store key `point` will have."""
        load = point.load
        return point_key(
            self.client.model,
            self.client.protocol,
            self.generator,
            load.mode,
            point.batch_size,
            point.seq_len,
            load.concurrency,
            load.request_rate,
            load.arrival,
            self.variant,
        )

    def generator_config(self, endpoints: Endpoints | None = None) -> GeneratorConfig:
        """What the generator needs for every point; `endpoints` from servers_of (None: client.url alone)."""
        return GeneratorConfig(self.client, self.measurement, self.variant, self.metrics_url, self.seed, endpoints)


def servers_of(config: SweepConfig) -> Endpoints:
    """Where the requests go and whose statistics count: a balancer among the URLs names its replicas.

    Refuses a generator that measures one server when several are involved.
    """
    endpoints = resolve_endpoints(config.urls or (config.client.url,), config.client)
    if endpoints.several and not GENERATORS[config.generator].spreads:
        raise ClientError(
            f"{config.generator} sends to one URL and reads that server's statistics, but "
            + ("several URLs are given" if len(endpoints.load) > 1 else f"{config.client.url} is a balancer"),
            hint="use --generator tritonbench, or one --url of a single server",
        )
    return endpoints


def servers_line(endpoints: Endpoints) -> str:
    """Where the load goes and whose statistics are read, for the terminal."""
    load = ", ".join(endpoints.load)
    spread = f"round robin over {len(endpoints.load)} URLs ({load})" if len(endpoints.load) > 1 else f"to {load}"
    return f"requests {spread}; server statistics from {len(endpoints.stats)}: {', '.join(endpoints.stats)}"


def plan_points(config: SweepConfig) -> list[Point]:
    """Every point of the grid, in measuring order (load innermost, so a curve fills in first)."""
    return [Point(b, s, load) for b in config.batch_sizes for s in config.seq_lens for load in config.loads]


def estimate_seconds(config: MeasurementConfig, points: int) -> tuple[float, float]:
    """Fastest and slowest duration of `points` points: settled after N windows, or after max trials."""
    per_window = config.window_s
    return (
        points * (config.warmup_s + per_window * config.stable_windows),
        points * (config.warmup_s + per_window * config.max_trials),
    )


def point_line(record: PointRecord) -> str:
    """One finished point on one line: where it was measured, what came out, and whether it failed anywhere."""
    load = f"c{record.concurrency}" if record.concurrency else f"{record.request_rate:g}/s"
    timeouts = f" (timeouts {record.timeouts})" if record.timeouts else ""
    return (
        f"b{record.batch_size:<3} s{record.seq_len:<4} {load:>7}: {record.throughput_seq_per_s:9.1f} seq/s  "
        f"p50 {record.latency_p50_ms:8.2f} ms  p99 {record.latency_p99_ms:8.2f} ms  errors {record.errors}{timeouts}"
        f"{'' if record.stable else '  UNSTABLE'}"
    )


def _interrupted(config: SweepConfig, todo: list[Point], store: ResultStore) -> str:
    """What a Ctrl-C leaves: the points of this run in the store, and how many a rerun still measures.

    Read back from the store: a Ctrl-C may come between storing a record and anything after it.
    """
    wanted = {config.key(p): p for p in todo}
    saved = [wanted[r.key] for r in store.load() if r.key in wanted]
    names = ", ".join(p.name for p in saved)
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
    todo = [p for p in points if config.key(p) not in done]
    fast, slow = estimate_seconds(config.measurement, len(todo))
    model = config.client.model
    requests = Requests(model, find_tokenizer(model, config.tokenizer, repo), config.seed, config.texts)
    endpoints = servers_of(config)
    generator = GENERATORS[config.generator](config.generator_config(endpoints), requests)
    target = read_target(config.client)
    for point in todo:  # impossible shapes fail now, not halfway through the grid
        check_point(point, target, config.client.model)
    echo(
        f"{len(points)} points, {len(points) - len(todo)} already in {store.path} (skipped); "
        f"{len(todo)} to measure, about {fast / 60:.1f}–{slow / 60:.1f} min"
    )
    if endpoints.several:
        echo(servers_line(endpoints))
    records: list[PointRecord] = []
    try:
        _measure_points(generator, target, todo, store, records, echo, progress)
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
    generator: Generator,
    target: Target,
    todo: list[Point],
    store: ResultStore,
    records: list[PointRecord],
    echo: Echo,
    progress: bool,
) -> None:
    """Measure `todo` in order, storing each record and adding it to `records` as soon as it is measured."""
    bar = tqdm(todo, unit="point", disable=not progress or not todo)
    for number, point in enumerate(bar, 1):
        bar.set_description(point.name)
        record = generator.measure(point, target)
        if record is None:
            echo(f"{generator.name} found no stable measurement at {point.name}; not stored (a rerun retries it)")
            continue
        store.append(record)
        records.append(record)
        if not progress:
            echo(f"[{number}/{len(todo)}] {point_line(record)}")
        bar.set_postfix_str(
            f"{record.throughput_seq_per_s:.0f} seq/s p50 {record.latency_p50_ms:.1f} ms"
            f"{'' if record.stable else ' UNSTABLE'}"
        )
    bar.close()
