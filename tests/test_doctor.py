"""``sfumato doctor``: exit 1 on any finding, 0 when everything is reachable."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from docs_support import Block, blocks, pages
from receivers import RotelServer, free_port
from sfumato import load_settings
from sfumato.cli import main
from sfumato.cli.doctor import checks
from test_docs_snippets import ENV


def write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "app.toml"
    path.write_text('[telemetry]\nservice_name = "doc"\n' + body)
    return str(path)


def test_unreachable_endpoint_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    path = write(tmp_path, f'backend = "otlp"\notlp_endpoint = "http://127.0.0.1:{port}"\n')
    assert main(["doctor", path, "--timeout", "0.5"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  otlp-grpc (traces, metrics, logs) http://127.0.0.1:{port}: cannot connect" in out
    assert "1 finding" in out


def test_unreachable_http_endpoint_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    path = write(
        tmp_path,
        f'backend = "signoz"\nprotocol = "http/protobuf"\notlp_endpoint = "http://127.0.0.1:{port}/"\n',
    )
    assert main(["doctor", path, "--timeout", "0.5"]) == 1
    assert f"cannot connect to 127.0.0.1:{port}" in capsys.readouterr().out


@pytest.mark.server
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_running_rotel_exits_0(
    rotel: RotelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    path = write(
        tmp_path, f'backend = "signoz"\nprotocol = "{protocol}"\notlp_endpoint = "{endpoint}"\n'
    )
    assert main(["doctor", path]) == 0
    out = capsys.readouterr().out
    assert "accepts connections" in out
    assert "FAIL" not in out
    assert out.rstrip().endswith("no findings")


@pytest.mark.server
def test_signals_a_backend_cannot_take_are_notes_not_findings(
    rotel: RotelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'backend = "jaeger"\notlp_endpoint = "{rotel.grpc_endpoint}"\n')
    assert main(["doctor", path]) == 0
    out = capsys.readouterr().out
    assert "note  backend 'jaeger' cannot take metrics" in out
    assert "note  backend 'jaeger' cannot take logs" in out
    assert "FAIL" not in out and out.rstrip().endswith("no findings (2 notes)")


def test_plaintext_grpc_to_a_remote_host_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # configure() refuses it, so doctor (like validate) does before checking anything else.
    path = write(tmp_path, 'backend = "jaeger"\notlp_endpoint = "http://jaeger.example:4317"\n')
    assert main(["doctor", path, "--timeout", "0.2"]) == 2
    assert "insecure = true" in capsys.readouterr().err


def test_prometheus_port_in_use_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(
            tmp_path,
            f'backend = "none"\n[[telemetry.exporters]]\ntype = "prometheus"\nport = {port}\n',
        )
        assert main(["doctor", path]) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().out
    assert main(["doctor", path]) == 0


def test_invalid_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'backend = "no-such-backend"\n')
    assert main(["doctor", path]) == 2
    assert "no-such-backend" in capsys.readouterr().err


def test_disabled_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.toml"
    path.write_text("[other]\nx = 1\n")
    assert main(["doctor", str(path)]) == 0
    assert "disabled" in capsys.readouterr().out


def test_a_port_in_time_wait_is_free_to_listen_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The side that closes a TCP connection first holds its port in TIME_WAIT for a while: a
    # Prometheus endpoint that served a scrape and stopped (a restart). It binds with
    # SO_REUSEADDR, as its next run does, so that port is no obstacle.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's end closes first: it goes to TIME_WAIT
        client.close()
    path = write(
        tmp_path, f'backend = "none"\n[[telemetry.exporters]]\ntype = "prometheus"\nport = {port}\n'
    )
    assert main(["doctor", path]) == 0, capsys.readouterr().out
    assert f"127.0.0.1:{port} is free to listen on" in capsys.readouterr().out


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    path = write(
        tmp_path,
        f'backend = "jaeger"\notlp_endpoint = "http://127.0.0.1:{port}"\n',
    )
    assert main(["doctor", path, "--json", "--timeout", "0.3"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["findings"] == 1
    levels = [check["level"] for check in report["checks"]]
    assert levels == ["ok", "note", "note", "FAIL"], report
    assert "cannot connect" in report["checks"][-1]["message"]
    assert main(["doctor", write(tmp_path, "batch_size = 0\n"), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["problems"][0]["key"] == "telemetry.batch_size"


CONFIGS = [
    b
    for b in (b for page in pages() for b in blocks(page))
    if b.lang == "toml" and "[telemetry" in b.text and not b.markers
]


@pytest.mark.parametrize("block", CONFIGS, ids=[b.where for b in CONFIGS])
def test_the_docs_example_configs_come_out_clean(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing in a documented config is a finding, but that its servers are not running."""
    for name in [n for n in os.environ if n.startswith(("SFUMATO_", "OTEL_"))]:
        monkeypatch.delenv(name)
    path = tmp_path / "app.toml"
    path.write_text(block.text)
    settings = load_settings(path, env=ENV)
    found = [c for c in checks(settings, timeout=0.05) if c.level == "FAIL"]
    assert all("cannot connect" in c.message for c in found), f"{block.where}: {found}"
