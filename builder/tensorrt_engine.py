"""Kept for the reproduce scripts (`model.plan.build.py`) that earlier builds left beside their engines.

Those scripts run `from builder.tensorrt_engine import main`; the module now lives in builder/tensorrt/.
"""

from builder.tensorrt.tensorrt_engine import main as main
