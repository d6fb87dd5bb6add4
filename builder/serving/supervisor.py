"""Keep a running tritonserver's Python models serving: a model whose backend stub died is reloaded.

The 2.51 Python backend never restarts a dead stub: after a `kill -9` (or the OOM killer) every request to
that instance fails with "Stub process ... is not healthy" while every ready endpoint says 200. The server
runs with `--model-control-mode=explicit`, so the repository API can reload a model: an unload, then a load
(a load alone of a loaded, unchanged model does nothing). Triton reloads the ensembles that use it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from builder.serving.stubs import Stub, alive, stubs_of

Report = Callable[[str], None]


class ReloadError(Exception):
    """A reload of a model did not bring it back."""


@dataclass
class Supervisor:
    """A thread that checks the stubs of every Python model of `repo` under server `pid` every `interval_s`."""

    pid: int
    repo: Path
    models: tuple[str, ...]  # what the server loaded: all must be ready again after a reload
    http_url: str  # host:port
    report: Report
    interval_s: float = 0.5
    attempts: int = 3
    reload_timeout_s: float = 60.0
    failure: str | None = None  # set when a model could not be brought back; the server is then not serving
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Note how many stubs each model runs now (the server is ready), then watch them."""
        known = stubs_of(self.pid, self.repo)
        self._thread = threading.Thread(target=self._watch, args=(known,), name="tritonbuild-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the server is stopped: its stubs are about to go)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, known: list[Stub]) -> None:
        """Watch the known stubs; when one is gone, scan, reload what lost stubs, and know the new ones.

        A tick reads only the known stubs' state: a scan reads every server thread's children, about 5 ms of
        the GIL for a server's 200 threads, in what is often a load generator's process.
        """
        expected = Counter(s.model for s in known)
        total = sum(expected.values())
        while not self._stop.wait(self.interval_s) and self.failure is None and alive(self.pid):
            # fewer known than expected: one died between a reload and the scan after it, so scan again
            if len(known) == total and all(stub.alive() for stub in known):
                continue
            live = Counter(s.model for s in stubs_of(self.pid, self.repo))
            for model, count in expected.items():
                if live[model] < count and not self._stop.is_set() and alive(self.pid):
                    self._recover(model, count, count - live[model])
            known = stubs_of(self.pid, self.repo)

    def _recover(self, model: str, count: int, lost: int) -> None:
        self.report(f"{model}: {lost} of its {count} backend stub(s) died; reloading {model}")
        start = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            try:
                self._reload(model, count)
            except ReloadError as exc:
                self.report(f"{model}: reload {attempt} of {self.attempts} failed: {exc}")
                continue
            self.report(f"{model}: serving again, {time.monotonic() - start:.1f} s after its stub was found dead")
            return
        self.failure = f"{model} lost a backend stub and could not be reloaded ({self.attempts} attempts)"
        self.report(self.failure)

    def _reload(self, model: str, count: int) -> None:
        """Unload and load `model`, then wait until its stubs run and every model of the repository is ready."""
        self._post(f"/v2/repository/models/{model}/unload")
        self._post(f"/v2/repository/models/{model}/load")
        deadline = time.monotonic() + self.reload_timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            live = sum(1 for s in stubs_of(self.pid, self.repo) if s.model == model)
            if live >= count and self._all_ready():
                return
            time.sleep(0.1)
        raise ReloadError(f"not ready within {self.reload_timeout_s:.0f} s")

    def _all_ready(self) -> bool:
        index = json.loads(self._post("/v2/repository/index") or "[]")
        return {entry["name"] for entry in index if entry.get("state") == "READY"} >= set(self.models)

    def _post(self, path: str) -> str:
        request = urllib.request.Request(f"http://{self.http_url}{path}", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.reload_timeout_s) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            raise ReloadError(f"{path}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise ReloadError(f"{path}: {exc}") from exc
