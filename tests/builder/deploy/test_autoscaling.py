"""The queue-time metric: NVIDIA's formula, exposed by one adapter rule under the name the HPA asks for."""

import re

from builder.deploy.autoscaling import QUEUE_METRIC, QUEUE_SERIES, SUCCESS_SERIES, adapter_rule, queue_query


def test_the_query_is_nvidia_s_formula():
    expected = f"avg(delta({QUEUE_SERIES}[30s]) / (1 + delta({SUCCESS_SERIES}[30s]))) by (pod)"
    assert " ".join(queue_query(matchers="", group_by="pod").split()) == expected
    assert max(len(line) for line in queue_query().splitlines()) <= 70  # fits yamllint's 80 columns, indented


def test_the_rule_exposes_the_queue_series_per_pod_as_the_hpa_metric():
    rule = adapter_rule()
    assert rule["name"]["as"] == QUEUE_METRIC
    assert re.fullmatch(rule["name"]["matches"], QUEUE_SERIES) and not re.fullmatch(rule["name"]["matches"], "x")
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
