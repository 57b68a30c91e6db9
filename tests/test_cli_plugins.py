"""Plugins of the command line (entry-point group ``sfumato.cli``): the commands they add, the
``--help`` order, a broken one, switching one off, and configure() never loading them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sfumato.cli import ORDER, main

HELLO = """
import sfumato
from sfumato.cli import CommandError, add_command


class Hello:
    @sfumato.hookimpl
    def sfumato_cli_commands(self, subparsers):
        p = add_command(subparsers, "hello", "greet someone", exits={0: "greeted", 2: "no name"})
        p.add_argument("name", nargs="?")
        p.set_defaults(func=self.run)

    def run(self, args):
        if not args.name:
            raise CommandError("give a name")
        print(f"hello, {args.name}")
        return 0


class Raises:
    @sfumato.hookimpl
    def sfumato_cli_commands(self, subparsers):
        raise RuntimeError("no commands today")


class Faulty:
    @sfumato.hookimpl
    def sfumato_metric_instruments(self):
        raise RuntimeError("no instruments today")

    @sfumato.hookimpl
    def sfumato_doctor_endpoint(self, exporter):
        raise RuntimeError("no probes today")
"""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith(("SFUMATO_", "OTEL_"))]:
        monkeypatch.delenv(name)
    return monkeypatch


def _install(root: Path, monkeypatch: pytest.MonkeyPatch, entry_points: str) -> None:
    """A distribution on sys.path with ``entry_points`` in the sfumato.cli group."""
    (root / "hellocli_mod.py").write_text(HELLO)
    info = root / "hellocli-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hellocli\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[sfumato.cli]\n{entry_points}")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "hellocli_mod", raising=False)


def _listed(help_text: str) -> list[str]:
    """The commands ``sfumato --help`` lists, in order."""
    lines = help_text.split("positional arguments:")[1].split("options:")[0].splitlines()
    return [line.split()[0] for line in lines if line.startswith("    ") and line[4] != " "]


def test_sfumato_s_own_plugins_add_their_commands_in_the_help_order(
    capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert _listed(capsys.readouterr().out) == list(ORDER)


def test_a_plugin_command_runs_and_lists_after_sfumato_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    _install(tmp_path, clean_env, "hello = hellocli_mod:Hello\n")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert _listed(capsys.readouterr().out) == [*ORDER, "hello"]
    assert main(["hello", "Ada"]) == 0
    assert capsys.readouterr().out == "hello, Ada\n"
    assert main(["hello"]) == 2
    assert capsys.readouterr().err == "error: give a name\n"
    with pytest.raises(SystemExit):
        main(["hello", "--help"])
    assert "exit status:\n  0  greeted\n  2  no name" in capsys.readouterr().out


def test_a_broken_plugin_is_one_warning_and_the_rest_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    _install(
        tmp_path,
        clean_env,
        "missing = hellocli_missing_module:Nothing\nraises = hellocli_mod:Raises\n",
    )
    assert main(["plugins", "--json"]) == 0
    out, err = capsys.readouterr()
    rows = {r["name"]: r for r in json.loads(out) if r["kind"] == "cli"}
    assert {"local-store", "botticelli", "otlp-probes", "missing", "raises"} <= set(rows)
    warnings = err.splitlines()
    assert len(warnings) == 2, err
    assert warnings[0].startswith("warning: cli plugin 'missing' (hellocli 1.0) failed to import")
    assert warnings[1].startswith("warning: cli plugin 'raises' cannot add its commands")
    assert "RuntimeError: no commands today" in warnings[1]
    assert main(["report", str(tmp_path / "nothing")]) == 1
    assert "no local store" in capsys.readouterr().err


def test_a_disabled_plugin_adds_nothing(
    capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("SFUMATO_DISABLE_PLUGINS", "cli:local-store")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "report" not in _listed(capsys.readouterr().out)
    with pytest.raises(SystemExit) as exited:
        main(["report"])
    assert exited.value.code == 2
    clean_env.setenv("SFUMATO_DISABLE_PLUGINS", "exporter:local")  # another kind's local
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "report" in _listed(capsys.readouterr().out)


def test_configure_never_loads_a_command_line_plugin(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import sfumato
        with sfumato.configure(backend="local", service_name="s"):
            pass
        print(json.dumps(sorted(sys.modules)))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "sfumato.plugins.local" in loaded  # the backend's exporter, named by the config
    assert (
        not {
            "sfumato.cli",
            "sfumato.plugins.local.cli",
            "sfumato.plugins.botticelli",
            "sfumato.plugins.otlp_probes",
        }
        & loaded
    )


def test_a_plugin_whose_hooks_raise_does_not_take_doctor_or_alerts_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    """Its failure is one warning, and sfumato's own plugins still answer."""
    _install(tmp_path, clean_env, "faulty = hellocli_mod:Faulty\n")
    config = tmp_path / "sfumato.toml"
    config.write_text(
        '[telemetry]\nservice_name = "svc"\nbackend = "otlp"\n'
        'otlp_endpoint = "http://127.0.0.1:1"\n',
        encoding="utf-8",
    )
    assert main(["doctor", str(config), "--timeout", "0.2"]) == 1  # a finding: nothing listens
    out, err = capsys.readouterr()
    assert "127.0.0.1:1" in out  # otlp-probes probed the endpoint
    assert "error:" not in err  # asked or not (the first answer wins), it broke nothing
    from sfumato.cli._extensions import instruments

    found = instruments()
    assert "narrative.execution.duration" in found  # Botticelli's, despite the faulty one
    assert "failed in sfumato_metric_instruments" in capsys.readouterr().err
