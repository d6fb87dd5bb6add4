import pytest

from client.transport.server_stats import (
    average_gpu,
    batch_counters,
    batch_deltas,
    counters,
    deltas,
    parse_gpu_metrics,
    replica_deltas,
    restarted,
    summed,
)


def _stats(count: int, queue_ns: int, infer_ns: int, executions: int):
    # gRPC's JSON form: int64 as strings
    phase = {"count": str(count), "ns": str(queue_ns)}
    return {
        "model_stats": [
            {
                "name": "m_model",
                "inference_count": str(count),
                "execution_count": str(executions),
                "inference_stats": {
                    "queue": phase,
                    "compute_input": {"count": str(count), "ns": "0"},
                    "compute_infer": {"count": str(count), "ns": str(infer_ns)},
                    "compute_output": {"count": str(count), "ns": "0"},
                },
            },
            {"name": "idle", "inference_count": "5", "execution_count": "5", "inference_stats": {}},
        ]
    }


def test_deltas_average_per_request_in_microseconds():
    before, after = counters(_stats(10, 1_000_000, 50_000_000, 10)), counters(_stats(30, 5_000_000, 150_000_000, 14))
    result = deltas(before, after)
    assert set(result) == {"m_model"}  # models without new inferences are left out
    times = result["m_model"]
    assert times.inference_count == 20 and times.execution_count == 4
    assert times.queue_us == pytest.approx(200.0) and times.compute_infer_us == pytest.approx(5000.0)


METRICS = """# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)
nv_gpu_utilization{gpu_uuid="GPU-a"} 0.5
nv_gpu_utilization{gpu_uuid="GPU-b"} 0.7
nv_gpu_memory_used_bytes{gpu_uuid="GPU-a"} 2000000000
nv_gpu_memory_used_bytes{gpu_uuid="GPU-b"} 1000000000
nv_gpu_power_usage{gpu_uuid="GPU-a"} 250.5
nv_inference_count{model="m",version="1"} 12
"""


def test_gpu_metrics_from_prometheus_text():
    gpu = parse_gpu_metrics(METRICS)
    assert gpu == pytest.approx({"utilization": 60.0, "memory_used_mb": 3000.0, "power_w": 250.5})
    assert parse_gpu_metrics('nv_inference_count{model="m"} 3\n') == {}
    assert average_gpu([{"power_w": 100.0}, {"power_w": 200.0, "utilization": 50.0}]) == {
        "power_w": 150.0,
        "utilization": 50.0,
    }


def test_several_servers_add_up_and_each_keeps_its_own_breakdown():
    a0, a1 = counters(_stats(10, 1_000_000, 10_000_000, 10)), counters(_stats(30, 3_000_000, 50_000_000, 20))
    b0, b1 = counters(_stats(5, 0, 0, 5)), counters(_stats(15, 1_000_000, 10_000_000, 10))
    total, each = replica_deltas({"a": a0, "b": b0}, {"a": a1, "b": b1})
    assert each["a"]["m_model"].inference_count == 20 and each["b"]["m_model"].inference_count == 10
    assert total["m_model"].inference_count == 30 and total["m_model"].execution_count == 15
    # the sum of the ns over the sum of the counts: 3 ms over 30 requests, not the mean of the two means
    assert total["m_model"].queue_us == pytest.approx(3_000_000 / 30 / 1000)
    assert summed([a0, b0])["m_model"]["inference_count"] == 15


def test_a_replica_that_vanished_or_restarted_is_left_out_not_counted_backwards():
    before = {"up": counters(_stats(10, 0, 0, 10)), "killed": counters(_stats(10, 0, 0, 10)),
              "restarted": counters(_stats(50, 0, 0, 50)), "late": None}  # fmt: skip
    after = {"up": counters(_stats(20, 0, 0, 20)), "killed": None, "restarted": counters(_stats(3, 0, 0, 3)),
             "late": counters(_stats(9, 0, 0, 9))}  # fmt: skip
    total, each = replica_deltas(before, after)
    assert set(each) == {"up"} and total["m_model"].inference_count == 10
    assert restarted(before["restarted"], after["restarted"]) and not restarted(before["up"], after["up"])


def _batch_stats(executions: dict[int, tuple[int, int]]):
    # gRPC's JSON form of a model's batch_stats: one entry per batch size run, int64s as strings
    batches = [
        {"batch_size": str(size), "compute_infer": {"count": str(n), "ns": str(ns)}}
        for size, (n, ns) in executions.items()
    ]
    return {"model_stats": [{"name": "other", "batch_stats": []}, {"name": "m_model", "batch_stats": batches}]}


def test_batch_sizes_between_two_snapshots_with_their_mean_compute():
    before = batch_counters(_batch_stats({1: (5, 5_000_000), 8: (10, 20_000_000)}), "m_model")
    after = batch_counters(_batch_stats({1: (5, 5_000_000), 8: (14, 30_000_000), 9: (2, 5_000_000)}), "m_model")
    assert before == {1: (5, 5_000_000), 8: (10, 20_000_000)}
    # batch 1 ran no more: left out; batch 9 is new: counted from nothing
    assert batch_deltas(before, after) == {8: (4, 2500.0), 9: (2, 2500.0)}
    assert batch_counters(_batch_stats({}), "absent") == {}
