"""The `tritonbuild` command line: the group, and one module per group of commands.

args.py holds the argument groups (each owns its options and makes the object a command needs); build.py
export, make-repo and validate; engine.py the TensorRT engine command; serve.py serve and demo;
inspect.py gpus and profile; deploy.py the cluster manifests.
"""

from __future__ import annotations

import click

from builder.cli.build import export, make_repo_cmd, validate
from builder.cli.deploy import deploy
from builder.cli.engine import engine
from builder.cli.inspect import gpus, profile
from builder.cli.serve import demo, serve
from builder.common.cli import UserErrorGroup


@click.group(cls=UserErrorGroup)
@click.version_option(package_name="tritonbuild")
def main() -> None:
    """Hugging Face transformer → parity-checked ONNX → Triton model repository → local server.

    Start with `tritonbuild demo`, or: make-repo, then serve, then `tritonbench sweep`.
    """


for _command in (export, make_repo_cmd, validate, engine, deploy, gpus, serve, profile, demo):
    main.add_command(_command)
