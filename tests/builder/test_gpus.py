import dataclasses

import pytest

from builder.common.errors import ConfigError
from builder.gpus import PROFILES, GpuProfile, get_profile


def test_known_profiles_and_their_capabilities():
    assert set(PROFILES) == {"cpu", "t4", "a10g", "l4", "a100", "h100", "h200"}
    assert get_profile("h200").compute_capability == (9, 0) and get_profile("h200").memory_gib == 141
    assert get_profile("t4").bf16 is False  # Turing has no BF16
    assert get_profile("T4").compute_capability == (7, 5)
    assert get_profile("h100").fp8 and get_profile("l4").fp8 and not get_profile("a100").fp8
    assert not get_profile("cpu").is_gpu and get_profile("a100").is_gpu


def test_buckets_are_capped_at_the_model_maximum():
    cpu = get_profile("cpu")
    assert cpu.buckets_up_to(256) == (16, 32, 64, 128, 256)
    assert cpu.buckets_up_to(100) == (16, 32, 64, 100)
    assert cpu.buckets_up_to(1024) == (16, 32, 64, 128, 256, 512, 1024)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        get_profile("v100")
    assert "h100" in err.value.hint


def test_invalid_profile_is_rejected():
    with pytest.raises(ConfigError, match="preferred batch size"):
        GpuProfile(
            "x",
            "",
            None,
            0,
            fp16=False,
            bf16=False,
            int8=False,
            fp8=False,
            max_batch_size=4,
            seq_buckets=(16,),
            model_instances=1,
            tokenizer_instances=1,
            post_instances=1,
            preferred_batch_sizes=(8,),
            max_queue_delay_us=0,
        )


def test_gpu_profiles_name_the_node_labels_of_their_boards():
    for profile in PROFILES.values():
        assert bool(profile.node_products) == profile.is_gpu, profile.name
        # GPU feature discovery writes the NVML name with dashes for spaces: no label value has a space
        assert all(" " not in p and len(p) <= 63 for p in profile.node_products)
    assert "NVIDIA-H100-80GB-HBM3" in get_profile("h100").node_products
    assert get_profile("t4").node_products == ("Tesla-T4",)
    all_products = [p for profile in PROFILES.values() for p in profile.node_products]
    assert len(all_products) == len(set(all_products))  # a board belongs to one profile


def test_a_gpu_profile_without_node_products_is_rejected():
    with pytest.raises(ConfigError, match="node products"):
        dataclasses.replace(get_profile("h100"), node_products=())
    with pytest.raises(ConfigError, match="node products"):
        dataclasses.replace(get_profile("cpu"), node_products=("NVIDIA-H100-PCIe",))
