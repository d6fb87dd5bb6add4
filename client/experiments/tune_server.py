"""Load and unload deployments of one running tritonserver through Triton's repository API (explicit model control).

`tritonbench tune` swaps candidates this way instead of restarting the server: it unloads the last candidate
(its ensemble and, with it, the member models), waits until none of them is loaded, then loads the next one's
ensemble, which loads its members from their new folders.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from builder.common.errors import UserError

LOADED = ("READY", "LOADING", "UNLOADING")  # states in which a model still holds its instances


class ModelControlError(UserError):
    """The server refused to load or unload a model, or did not finish in time."""


def _message(exc: Exception) -> str:
    text = getattr(exc, "message", None)
    return str(text() if callable(text) else exc).strip()


class ModelControl:
    """The repository API of the server at `url` (gRPC host:port)."""

    def __init__(self, url: str, timeout_s: float = 900.0) -> None:
        import tritonclient.grpc as grpcclient

        self.timeout_s = timeout_s
        self._client = grpcclient.InferenceServerClient(url)

    def states(self, timeout_s: float | None = None) -> dict[str, str]:
        """Every model of the repository and its state (READY, UNAVAILABLE, ...), within `timeout_s` (default: ours)."""
        from tritonclient.utils import InferenceServerException

        try:
            index = self._client.get_model_repository_index(client_timeout=timeout_s or self.timeout_s)
        except InferenceServerException as exc:
            raise ModelControlError(f"cannot read the repository index: {_message(exc)}") from None
        return {model.name: model.state or "UNAVAILABLE" for model in index.models}

    def load(self, name: str) -> float:
        """Load model `name` (an ensemble loads its members); the seconds it took. Raises with the server's reason."""
        from tritonclient.utils import InferenceServerException

        started = time.perf_counter()
        try:
            self._client.load_model(name, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ModelControlError(f"the server could not load {name}: {_message(exc)[:600]}") from None
        return time.perf_counter() - started

    def unload(self, name: str, members: Iterable[str] = ()) -> None:
        """Unload ensemble `name` and its members, and wait until none of them holds instances any more."""
        from tritonclient.utils import InferenceServerException

        try:
            self._client.unload_model(name, unload_dependents=True, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise ModelControlError(f"the server could not unload {name}: {_message(exc)[:600]}") from None
        watched = {name, *members}
        deadline = time.monotonic() + self.timeout_s
        while (left := deadline - time.monotonic()) > 0:
            states = self.states(left)
            if not any(states.get(model) in LOADED for model in watched):
                return
            time.sleep(0.1)
        raise ModelControlError(f"{name} was still loaded {self.timeout_s:.0f} s after its unload")

    def close(self) -> None:
        """Release the connection."""
        self._client.close()
