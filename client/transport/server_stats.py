"""The server's side of a measurement: statistics-extension deltas (of one server or of several) and GPU metrics."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import Any

from client.records import ModelTimes

_PHASES = ("queue", "compute_input", "compute_infer", "compute_output")
Counters = dict[str, dict[str, int]]  # model → counter → value, of one server (`counters`)


def counters(stats: dict[str, Any]) -> Counters:
    """Flatten a statistics report to per-model integer counters (gRPC's JSON gives int64s as strings)."""
    flat: Counters = {}
    for model in stats.get("model_stats", []):
        phases = model.get("inference_stats", {})
        entry = {
            "inference_count": int(model.get("inference_count", 0)),
            "execution_count": int(model.get("execution_count", 0)),
        }
        for phase in _PHASES:
            entry[f"{phase}_ns"] = int(phases.get(phase, {}).get("ns", 0))
            entry[f"{phase}_count"] = int(phases.get(phase, {}).get("count", 0))
        flat[model["name"]] = entry
    return flat


def deltas(before: Counters, after: Counters) -> dict[str, ModelTimes]:
    """Per-model activity between two snapshots, with average phase times per request in µs."""
    result = {}
    for name, end in after.items():
        start = before.get(name, dict.fromkeys(end, 0))
        diff = {k: end[k] - start.get(k, 0) for k in end}
        if diff["inference_count"] <= 0:
            continue

        def per_request(phase: str, diff: dict[str, int] = diff) -> float:
            count = diff[f"{phase}_count"]
            return diff[f"{phase}_ns"] / count / 1000 if count else 0.0

        result[name] = ModelTimes(diff["inference_count"], diff["execution_count"], *map(per_request, _PHASES))
    return result


Batches = dict[int, tuple[int, int]]  # batch size → (executions, their compute_infer ns), of one model


def batch_counters(stats: dict[str, Any], model: str) -> Batches:
    """One model's executions by batch size, cumulative, from a statistics report (JSON form; {} if it is absent).

    Each entry of the report's batch_stats counts the executions of one batch size and their compute time.
    """
    for entry in stats.get("model_stats", []):
        if entry["name"] == model:
            return {
                int(b["batch_size"]): (int(b["compute_infer"]["count"]), int(b["compute_infer"]["ns"]))
                for b in entry.get("batch_stats", [])
            }
    return {}


def batch_deltas(before: Batches, after: Batches) -> dict[int, tuple[int, float]]:
    """Executions per batch size between two snapshots and their mean compute_infer (µs); sizes not run left out."""
    result = {}
    for size, (count, ns) in sorted(after.items()):
        executions = count - before.get(size, (0, 0))[0]
        if executions > 0:
            result[size] = (executions, (ns - before.get(size, (0, 0))[1]) / executions / 1000)
    return result


_METRIC = re.compile(r"^(nv_gpu_utilization|nv_gpu_memory_used_bytes|nv_gpu_power_usage)\{[^}]*\}\s+(\S+)$")


def parse_gpu_metrics(text: str) -> dict[str, float]:
    """GPU utilisation (mean %), memory used (MB, summed) and power (W, summed) from Prometheus text."""
    values: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = _METRIC.match(line.strip())
        if match:
            values.setdefault(match.group(1), []).append(float(match.group(2)))
    if not values:
        return {}
    gpu: dict[str, float] = {}
    if "nv_gpu_utilization" in values:
        util = values["nv_gpu_utilization"]
        gpu["utilization"] = 100 * sum(util) / len(util)
    if "nv_gpu_memory_used_bytes" in values:
        gpu["memory_used_mb"] = sum(values["nv_gpu_memory_used_bytes"]) / 1e6
    if "nv_gpu_power_usage" in values:
        gpu["power_w"] = sum(values["nv_gpu_power_usage"])
    return gpu


def read_gpu_metrics(url: str | None, timeout_s: float = 2.0) -> dict[str, float]:
    """GPU metrics from the server's metrics endpoint; empty when there is none or no GPU."""
    if not url:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse_gpu_metrics(response.read().decode(errors="replace"))
    except (urllib.error.URLError, OSError):
        return {}


def average_gpu(samples: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each GPU metric over the samples that have it."""
    keys = {k for s in samples for k in s}
    return {k: sum(s[k] for s in samples if k in s) / sum(k in s for s in samples) for k in sorted(keys)}


def summed(snapshots: list[Counters]) -> Counters:
    """The counters of several servers added up, model by model: the set of replicas as one server."""
    total: Counters = {}
    for snapshot in snapshots:
        for model, values in snapshot.items():
            into = total.setdefault(model, dict.fromkeys(values, 0))
            for key, value in values.items():
                into[key] = into.get(key, 0) + value
    return total


def restarted(before: Counters, after: Counters) -> bool:
    """Whether a server's counters went backwards between two snapshots: it was restarted in between."""
    return any(after.get(model, {}).get("inference_count", 0) < c["inference_count"] for model, c in before.items())


def replica_deltas(
    before: dict[str, Counters | None], after: dict[str, Counters | None]
) -> tuple[dict[str, ModelTimes], dict[str, dict[str, ModelTimes]]]:
    """The servers' activity between two snapshots of each: all of them together, and each by its URL.

    A server that did not answer at either snapshot (None), or was restarted in between, has no activity that
    can be told: it is left out of both (its URL is missing from the second result).
    """
    counted = {
        url: (first, last)
        for url, first in before.items()
        if first is not None and (last := after.get(url)) is not None and not restarted(first, last)
    }
    total = deltas(summed([first for first, _ in counted.values()]), summed([last for _, last in counted.values()]))
    return total, {url: deltas(first, last) for url, (first, last) in counted.items()}
