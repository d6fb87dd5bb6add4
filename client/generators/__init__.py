"""Load generators behind one interface (`Generator.measure(point, target) -> PointRecord`), by name.

tritonbench's own (tritonbench.py over load.py, measure.py and raw_grpc.py: asyncio closed and open loops with
perf_analyzer's windows and stability rule) and NVIDIA's perf_analyzer binary (perf_analyzer.py). A new
generator is one module with a `Generator` subclass, listed here.
"""

from client.generators.base import Generator
from client.generators.perf_analyzer import PerfAnalyzer
from client.generators.tritonbench import Tritonbench

GENERATORS: dict[str, type[Generator]] = {g.name: g for g in (Tritonbench, PerfAnalyzer)}
