"""``sfumato doctor``: exit 1 on any finding, 0 when everything is reachable."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from receivers import RotelServer, free_port
from sfumato.cli import main


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
def test_signals_a_backend_cannot_take_are_findings(
    rotel: RotelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'backend = "jaeger"\notlp_endpoint = "{rotel.grpc_endpoint}"\n')
    assert main(["doctor", path]) == 1
    out = capsys.readouterr().out
    assert "FAIL  backend 'jaeger' cannot take metrics" in out
    assert "FAIL  backend 'jaeger' cannot take logs" in out
    assert "2 findings" in out
    # Switching them off, or sending them elsewhere, clears the findings.
    path = write(
        tmp_path,
        f'backend = "jaeger"\notlp_endpoint = "{rotel.grpc_endpoint}"\n'
        "[telemetry.metrics]\nenabled = false\n[telemetry.logs]\nenabled = false\n",
    )
    assert main(["doctor", path]) == 0


def test_plaintext_grpc_to_a_remote_host_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'backend = "jaeger"\notlp_endpoint = "http://jaeger.example:4317"\n')
    assert main(["doctor", path, "--timeout", "0.2"]) == 1
    assert "insecure = true" in capsys.readouterr().out


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
