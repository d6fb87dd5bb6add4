"""Scaling on Triton's queue time: the prometheus-adapter rule and the HPA metric it feeds, named once.

The metric is NVIDIA's from the k8s-onprem Helm chart: queue time added in the last window per request that
succeeded in it, averaged over a pod's models. The adapter turns the Prometheus series into a Pods metric of
the custom metrics API; the HorizontalPodAutoscaler asks for it by the name the rule gives it.
"""

from __future__ import annotations

from typing import Any

QUEUE_SERIES = "nv_inference_queue_duration_us"  # cumulative µs requests waited in the scheduler queue
SUCCESS_SERIES = "nv_inference_request_success"  # cumulative requests that succeeded
QUEUE_METRIC = "triton_queue_us_per_request"  # the adapter rule's output name, and the HPA's Pods metric
WINDOW_S = 30  # the delta() window of the query
SCRAPE_INTERVAL_S = 10  # the ServiceMonitor's interval: three samples per window, delta() needs two
# Dynamic batching counts its delay as queue time, so the default target sits this far above the largest delay.
QUEUE_HEADROOM_US = 1000

# The adapter's template variables: the label matchers and grouping of the object the HPA asks about.
_MATCHERS = "{<<.LabelMatchers>>}"
_GROUP_BY = "<<.GroupBy>>"


def queue_query(matchers: str = _MATCHERS, group_by: str = _GROUP_BY) -> str:
    """The PromQL of the metric; the defaults leave the adapter's templates in place.

    Three lines, broken where the formula has spaces (PromQL reads a newline as one), to fit 80 columns.
    """
    queue = f"delta({QUEUE_SERIES}{matchers}[{WINDOW_S}s])"
    success = f"delta({SUCCESS_SERIES}{matchers}[{WINDOW_S}s])"
    return f"avg({queue}\n/ (1 + {success}))\nby ({group_by})"


def adapter_rule() -> dict[str, Any]:
    """One prometheus-adapter rule: Triton's queue series per pod and namespace, exposed as QUEUE_METRIC."""
    return {
        "seriesQuery": f'{QUEUE_SERIES}{{namespace!="",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{QUEUE_SERIES}$", "as": QUEUE_METRIC},
        "metricsQuery": queue_query(),
    }
