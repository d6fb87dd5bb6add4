"""The Python backend's shared memory per stub: planned from /dev/shm, applied by TritonServer."""

from __future__ import annotations

import pytest
from built_repos import write_repo
from double_model import write_double

from builder.gpus import get_profile
from builder.repository.options import ServingOptions
from builder.serving.python_shm import (
    BACKEND_DEFAULT,
    MIB,
    REGION_CAP,
    python_backend_settings,
    python_stubs,
    region_bytes,
)
from builder.serving.server import TritonServer, served_models


@pytest.mark.parametrize(
    ("stubs", "free", "expected"),
    [
        (8, 24 << 30, REGION_CAP),  # a host's /dev/shm: the cap
        (8, 64 * MIB, 2 * MIB),  # Docker's 64 MB: a quarter of it shared by the stubs
        (16, 32 * MIB, BACKEND_DEFAULT),  # less than the backend's default each: its default stays
        (4, 256 * MIB, 16 * MIB),  # a quarter of the free space, shared
        (3, 100 * MIB, 8 * MIB),  # whole MiB, rounded down
        (0, 24 << 30, BACKEND_DEFAULT),
        (8, 0, BACKEND_DEFAULT),  # no /dev/shm at all
    ],
)
def test_each_stub_gets_a_share_of_the_free_shared_memory_within_the_cap(stubs, free, expected):
    assert region_bytes(stubs, free) == expected
    assert expected == BACKEND_DEFAULT or 4 * stubs * expected <= free


def test_the_stubs_are_counted_from_the_python_models_instances(tmp_path):
    serving = ServingOptions(model_instances=3, tokenizer_instances=2, post_instances=4)
    repo = write_repo(tmp_path, serving=serving)
    assert python_stubs(repo, served_models(repo)) == 3 + 2 + 4  # the ensemble starts none
    assert python_stubs(repo, ["minilm_tokenizer"]) == 2  # only what is loaded


def test_a_size_the_caller_sets_is_kept(tmp_path):
    write_double(tmp_path)
    given = ("shm-default-byte-size=2097152", "shm-growth-byte-size=1048576")
    assert python_backend_settings(tmp_path, ["double"], given) == given


def test_the_server_starts_its_stubs_with_the_planned_region(tmp_path):
    write_double(tmp_path)
    server = TritonServer(tmp_path)
    with server:
        assert server.is_alive()
        log = server.log_path.read_text()
    (setting,) = server.python_settings
    key, size = setting.split("=")
    assert key == "shm-default-byte-size" and BACKEND_DEFAULT < int(size) <= REGION_CAP
    assert f'"shm-default-byte-size":"{size}"' in log  # the server's own table of backend settings


def test_profiles_instances_are_what_the_plan_writes(tmp_path):
    h200 = get_profile("h200")
    repo = write_repo(tmp_path, engine="python-torch", gpu="h200", precision="fp16")
    expected = h200.model_instances + h200.tokenizer_instances + h200.post_instances
    assert python_stubs(repo, served_models(repo)) == expected
