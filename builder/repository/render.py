"""Turn validated config data into config.pbtxt text with strict Jinja templates."""

from __future__ import annotations

from importlib.resources import files

import jinja2

from builder import __version__
from builder.common.errors import ConfigError
from builder.repository.modelconfig import ModelConfigSpec, parse_config

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(files("templates"))),
    undefined=jinja2.StrictUndefined,  # a forgotten value is an error, never an empty string
    keep_trailing_newline=True,
    autoescape=False,
)


def _check_parameter(value: str) -> str:
    # Values are quoted in the text format; a quote or backslash would break out of the string.
    if '"' in value or "\\" in value or "\n" in value:
        raise ConfigError(f"parameter value {value!r} contains a quote, backslash or newline")
    return value


def render_config(spec: ModelConfigSpec) -> str:
    """Render `spec` to config.pbtxt text and parse it back through ModelConfig before returning it."""
    for _, value in (*spec.parameters, *(p for a in spec.gpu_accelerators for p in a.parameters)):
        _check_parameter(value)
    text = ENV.get_template("config.pbtxt.j2").render(m=spec, version=__version__)
    parse_config(text, source=f"{spec.name}/config.pbtxt")
    return text
