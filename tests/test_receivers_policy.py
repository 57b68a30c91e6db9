"""Anything a test needs of the machine (a receiver binary, a tool, an OS feature) fails the
test under CI when missing and skips it elsewhere."""

from __future__ import annotations

import sys

import pytest
from receivers import missing, prometheus_binary, require, rotel_binary


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        require("/nonexistent/rotel-agent", "rotel-agent")
    with pytest.raises(pytest.fail.Exception):
        require(None, "prometheus")
    with pytest.raises(pytest.fail.Exception, match=r"os\.fork not found; it is required"):
        missing("os.fork")


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_binary_skips_without_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception):
        require("/nonexistent/rotel-agent", "rotel-agent")
    with pytest.raises(pytest.skip.Exception, match="/dev/zero not found"):
        missing("/dev/zero")


def test_present_binary_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require(sys.executable, "python") == sys.executable


def test_binaries_are_located(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTEL_AGENT", "/opt/rotel")
    monkeypatch.setenv("PROMETHEUS", "/opt/prometheus")
    assert (rotel_binary(), prometheus_binary()) == ("/opt/rotel", "/opt/prometheus")
    monkeypatch.delenv("ROTEL_AGENT")
    found = rotel_binary()
    assert found is None or found.endswith("rotel-agent")
