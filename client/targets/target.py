"""The served model a sweep measures: what it takes, and the shapes it refuses, asked of the server once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from client.points import MIXED, Point
from client.targets.inputs import InputError
from client.transport.text_client import AsyncTextClient, ClientConfig


@dataclass(frozen=True)
class Target:
    """What the server says about the model: how to feed it and its limits."""

    text_input: bool  # an ensemble taking TEXT, or a bare model taking token ids
    max_batch_size: int
    max_length: int | None  # from the tokenizer step's parameters, when there is one


async def discover(client: AsyncTextClient, model: str) -> Target:
    """Read the model's config (and its tokenizer step's) to choose inputs and check limits."""
    config = await client.model_config(model)
    inputs = {i["name"] for i in config.get("input", [])}
    if inputs == {"TEXT"}:
        text_input = True
    elif {"input_ids", "attention_mask"} <= inputs:
        text_input = False
    else:
        raise InputError(
            f"model {model} has inputs {sorted(inputs)}",
            hint="tritonbench feeds TEXT (a tritonbuild ensemble) or input_ids + attention_mask",
        )
    max_length = None
    for step in config.get("ensemble_scheduling", {}).get("step", []):
        step_config = await client.model_config(step["model_name"])
        params = step_config.get("parameters", {})
        if "max_length" in params:
            max_length = int(params["max_length"]["string_value"])
    return Target(text_input, int(config.get("max_batch_size", 0)), max_length)


def read_target(config: ClientConfig) -> Target:
    """Ask the server about `config`'s model once, before any point is measured."""

    async def ask() -> Target:
        async with AsyncTextClient(config) as client:
            return await discover(client, config.model)

    return asyncio.run(ask())


def check_point(point: Point, target: Target, model: str) -> None:
    """Refuse shapes the model cannot take, before any load is sent."""
    if target.max_batch_size and point.batch_size > target.max_batch_size:
        raise InputError(f"batch size {point.batch_size} exceeds max_batch_size {target.max_batch_size} of {model}")
    if point.seq_len == MIXED and not target.text_input:
        raise InputError(f"{model} takes token ids, not texts", hint="sweep texts against an ensemble taking TEXT")
    if target.max_length and point.seq_len > target.max_length:
        raise InputError(f"sequence length {point.seq_len} exceeds the {target.max_length} tokens {model} accepts")
