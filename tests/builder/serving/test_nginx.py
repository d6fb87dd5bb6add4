"""nginx from Debian's package, run for real: the rendered config, its reloads, and the errors a user can fix.

The replicas here are ports nothing listens on, so every proxied request gets nginx's own 502: what is tested
is nginx itself (config, generations, headers, process), not the servers behind it.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from builder.common.errors import ServerError
from builder.contract.balancer import REPLICAS_HEADER
from builder.serving.balancer_plan import ReplicaPorts, plan_nginx, plan_ports
from builder.serving.nginx import Nginx, find_nginx, render_nginx, write_atomically
from builder.serving.server import free_port

GOLDEN = Path(__file__).parents[2] / "golden" / "nginx"
FIXED = (ReplicaPorts(9000, 9001, 9002), ReplicaPorts(9010, 9011, 9012))


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    return tmp_path


def test_the_rendered_config_matches_the_golden_file():
    # Regenerate after an intended change with UPDATE_GOLDEN=1, then review the diff.
    text = render_nginx(plan_nginx(Path("/run/tritonbuild/nginx"), 8000, 8001, FIXED, ready={1}, generation=3))
    golden = GOLDEN / "two-replicas-one-ready.conf"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("ready", [{0, 1}, {1}, set()], ids=["all", "one", "none"])
def test_nginx_accepts_every_rendered_config(prefix, ready):
    conf = prefix / "nginx.conf"
    (prefix / "temp").mkdir()
    conf.write_text(render_nginx(plan_nginx(prefix, free_port(), free_port(), FIXED, ready, generation=1)))
    result = subprocess.run(
        [str(find_nginx()), "-t", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def _get(port: int, path: str) -> tuple[int, str, str | None]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode(), response.headers.get(REPLICAS_HEADER)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), exc.headers.get(REPLICAS_HEADER)


def test_start_reload_and_stop(prefix):
    http_port, grpc_port = free_port(), free_port()
    replicas = plan_ports(2, {http_port, grpc_port}, free_port)
    nginx = Nginx(plan_nginx(prefix, http_port, grpc_port, replicas, {0, 1}, generation=1)).start()
    try:
        assert _get(http_port, "/tritonbuild/generation")[:2] == (200, "1\n")
        status, _, header = _get(http_port, "/v2/health/ready")
        assert status == 502 and header == f"127.0.0.1:{replicas[0].http},127.0.0.1:{replicas[1].http}"
        nginx.apply(plan_nginx(prefix, http_port, grpc_port, replicas, {1}, generation=2))
        assert _get(http_port, "/tritonbuild/generation")[:2] == (200, "2\n")
        assert f"server 127.0.0.1:{replicas[0].http} max_fails=1 fail_timeout=2s down;" in nginx.conf_path.read_text()
        assert not list(prefix.glob(".nginx.conf.*")), "a staged config was left behind"
        master = nginx.pid
        assert master is not None and nginx.running()
    finally:
        nginx.stop()
    assert not nginx.running() and not Path(f"/proc/{master}").exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{http_port}/tritonbuild/generation", timeout=2)


def test_a_busy_port_is_refused_before_nginx_starts(prefix):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        config = plan_nginx(prefix, free_port(), busy, FIXED, {0}, generation=1)
        with pytest.raises(ServerError, match=f"the grpc port {busy} is in use"):
            Nginx(config).start()


def test_a_missing_nginx_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TRITONBUILD_NGINX", str(tmp_path / "nginx"))
    with pytest.raises(ServerError, match="is not an executable file") as error:
        find_nginx()
    assert "scripts/setup.sh" in error.value.hint and "apt-get install nginx-light" in error.value.hint


def test_setup_installed_nginx_with_grpc_and_http2():
    result = subprocess.run([str(find_nginx()), "-V"], capture_output=True, text=True)
    assert "nginx/1." in result.stderr and "--with-http_v2_module" in result.stderr
    assert "--without-http_grpc_module" not in result.stderr


def test_a_config_is_replaced_whole(tmp_path):
    path = tmp_path / "nginx.conf"
    path.write_text("old")
    write_atomically(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["nginx.conf"]
