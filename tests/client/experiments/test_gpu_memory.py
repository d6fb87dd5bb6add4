from pathlib import Path

from client.experiments.gpu_memory import model_gpu_mb, parse_compute_apps

# nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits, as printed with two stubs
OUTPUT = "4242, 1810\n4243, 1806\n5000, [N/A]\n77, 512\n"


def test_per_process_memory_is_read_in_megabytes_and_unmeasured_lines_are_left_out():
    apps = parse_compute_apps(OUTPUT)
    assert set(apps) == {4242, 4243, 77}
    assert apps[4242] == 1810 * 1.048576


def test_a_models_memory_is_the_sum_over_its_stub_processes(tmp_path):
    repo = tmp_path / "repo"
    lines = {
        4242: f"stub {repo}/bert_fp16_model/1/model.py region 1048576 bert_fp16_model_0_0",
        4243: f"stub {repo}/bert_fp16_model/1/model.py region 1048576 bert_fp16_model_0_1",
        77: f"stub {repo}/bert_fp16_model_x/1/model.py region",  # another model whose name starts alike
    }
    apps = parse_compute_apps(OUTPUT)
    found = model_gpu_mb(repo / "bert_fp16_model", apps, cmdline=lambda pid: lines.get(pid, ""))
    assert found == (1810 + 1806) * 1.048576
    assert model_gpu_mb(Path("/elsewhere/m_model"), apps, cmdline=lambda pid: lines.get(pid, "")) is None
