from click.testing import CliRunner

from builder.server import free_port
from client.cli import main


def test_sweep_against_nothing_is_a_clear_error(tmp_path):
    url = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        main, ["sweep", "--url", url, "--model", "m", "--out", str(tmp_path), "--duration", "1"]
    )
    assert result.exit_code == 1
    assert "cannot reach Triton" in result.output and "Traceback" not in result.output


def test_sweep_with_unwritable_output(tmp_path):
    result = CliRunner().invoke(main, ["sweep", "--model", "m", "--out", "/proc/nope"])
    assert result.exit_code == 1 and "cannot write results" in result.output


def test_bad_lists_are_usage_errors():
    result = CliRunner().invoke(main, ["sweep", "--model", "m", "--batch-sizes", "1,x"])
    assert result.exit_code == 2 and "comma-separated" in result.output
