"""The `tritonbuild` command line."""

from builder.cli.build import main as main
