"""Error types: one base for mistakes a user can fix, caught once at the CLI."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: printed as message + hint, exit code 1, no traceback."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ModelSourceError(UserError):
    """The model folder or hub id cannot be loaded, or is not supported."""


class ParityError(UserError):
    """An exported graph disagrees with PyTorch beyond the tolerance."""


class ConfigError(UserError):
    """A model configuration is invalid (schema, ensemble wiring, GPU profile)."""


class OutputError(UserError):
    """The output location cannot be written or would overwrite work without --force."""


class ServerError(UserError):
    """The Triton server could not be found, started or reached."""


class DeployError(UserError):
    """A repository or option that `tritonbuild deploy` cannot turn into cluster manifests."""
