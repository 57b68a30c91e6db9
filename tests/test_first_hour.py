"""What a new user meets in their first hour: ``report`` arguments, ``demo`` errors and
header, output files and closed pipes, a broken hook plugin's warning, secrets in reprs, an
OpenTelemetry sampler's ``arg``, ``-V``, ``--help`` and plurals."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sfumato
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from pydantic import SecretStr
from sfumato._loading import load_config
from sfumato._stats import Stats
from sfumato.cli import main
from sfumato.plugin import BuildContext, ExporterUse
from sfumato.plugins.local.exporters import LocalExporter
from sfumato.plugins.local.options import LocalOptions
from sfumato.settings import Settings

CANARY = "CANARY-51d0e2"
EXAMPLES = Path(sfumato.__file__).parent / "examples"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("SFUMATO_", "OTEL_")):
            monkeypatch.delenv(name)
    return monkeypatch


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single line a failed command printed, checked to be one line and no dump."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "validation error" not in err, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def store(directory: Path, spans: int = 1, error: bool = False) -> Path:
    """A local store holding ``spans`` root spans of service ``svc``."""
    exporter = LocalExporter().create(
        "traces",
        LocalOptions(directory=str(directory)),
        BuildContext(settings=Settings(), stats=Stats()),
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for i in range(spans):
        span = tracer.start_span("work", start_time=1_000 + i, attributes={"i": i})
        if error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=2_000_000 + i)
    provider.shutdown()
    return directory


# -- report --------------------------------------------------------------------------------


def test_report_options_after_the_report_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = str(store(tmp_path / "s"))
    for argv in (
        ("report", "costs", "--json", directory),
        ("report", "--json", "costs", directory),
        ("report", "costs", directory, "--json"),
    ):
        code, out, err = run(capsys, *argv)
        assert code == 0, (argv, err)
        assert json.loads(out) == [], argv
    code, out, _ = run(capsys, "report", "summary", "--json", directory)
    assert code == 0 and json.loads(out)["spans"] == 1
    code, _, err = run(capsys, "report", "costs", "--json", directory, "--bogus")
    assert code == 2 and "--bogus" in err


def test_report_misspelt_name_gets_a_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = str(store(tmp_path / "s"))
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "report", "cots", directory)
    assert code == 2
    assert "unknown report 'cots'; did you mean 'costs'?" in one_error_line(err)
    code, _, err = run(capsys, "report", "failurs")
    assert code == 2 and "did you mean 'failures'?" in one_error_line(err)
    # A name far from every report is still a directory, as before.
    code, _, err = run(capsys, "report", "elsewhere")
    assert code == 1 and "no local store at elsewhere" in one_error_line(err)
    # A directory that exists is a directory, however close its name is to a report's.
    store(tmp_path / "cost")
    code, out, _ = run(capsys, "report", "cost")
    assert code == 0 and "1 span in 1 trace" in out


def test_report_csv_and_report_specific_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = str(store(tmp_path / "s", spans=2))
    code, out, err = run(capsys, "report", "summary", directory, "--csv")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "service,span,count,estimated,roots,errors,p50_ms,p95_ms,p99_ms"
    assert lines[1].startswith("svc,work,2,2,2,0,")
    code, out, _ = run(capsys, "report", directory, "--csv")
    assert code == 0 and out.splitlines()[0].startswith("service,span,")
    for argv, option in (
        (("report", "failures", directory, "--csv"), "--csv"),
        (("report", "summary", directory, "--prices", "p.toml"), "--prices"),
        (("report", "costs", directory, "--threshold", "5"), "--threshold"),
        (("report", "summary", directory, "--csv", "--json"), "--json"),
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "", argv
        assert option in one_error_line(err), argv


# -- demo ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--narratives", "-5"), "--narratives: expected a whole number >= 0, got '-5'"),
        (("--narratives", "many"), "--narratives: expected a whole number >= 0, got 'many'"),
        (("--seed", "x"), "--seed: expected a whole number, got 'x'"),
        (("--config", "missing.toml"), "missing.toml"),
        (("--config", "."), "."),
    ],
)
def test_demo_bad_arguments_are_one_line(
    argv: tuple[str, ...],
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "demo", *argv)
    assert code == 2 and out == ""
    assert expected in one_error_line(err)
    assert not (tmp_path / ".sfumato").exists()


def test_demo_bad_demo_table_names_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "demo.toml"
    config.write_text('[demo]\nnarratives = "x"\n\n[telemetry]\nbackend = "none"\n')
    code, _, err = run(capsys, "demo", "--config", str(config))
    assert code == 2
    line = one_error_line(err)
    assert f"{config}:2:" in line and "demo.narratives" in line
    config.write_text('[demo]\nnarrativs = 3\n\n[telemetry]\nbackend = "none"\n')
    code, _, err = run(capsys, "demo", "--config", str(config))
    assert code == 2 and "did you mean 'narratives'?" in one_error_line(err)


def test_demo_header_says_what_it_counts_and_how_long(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "demo.toml"
    config.write_text(
        '[demo]\nseed = 3\nact_cpu_ms = 0.0\n\n[telemetry]\nservice_name = "d"\nbackend = "none"\n'
    )
    code, out, err = run(capsys, "demo", "--config", str(config), "--narratives", "12")
    assert code in (0, 1), err
    header, note, progress = err.splitlines()[:3]
    # The header counts bot runs, as the progress bar does, and says that the report's
    # narratives include the ones they lead to.
    assert header.startswith("sfumato demo: 12 bot runs (seed 3)")
    assert re.search(r": about \d+ s$", header), header
    assert "curation and posting narratives" in note
    assert progress.split("] ")[1].startswith("12/12 bot runs")
    # The report says the same: its narratives come from the header's bot runs.
    ran = re.search(r"^narratives run: (\d+) from 12 bot runs in ", out, flags=re.M)
    assert ran is not None, out
    assert int(ran.group(1)) >= 12


def test_demo_estimate_follows_the_work() -> None:
    from sfumato.plugins.botticelli.demo import estimate_seconds
    from sfumato.plugins.botticelli.simulator import SimulationConfig

    default = estimate_seconds(SimulationConfig(narratives=2000, act_cpu_ms=1.0))
    assert 5 <= default <= 30
    slow = estimate_seconds(SimulationConfig(narratives=2000, act_cpu_ms=1.0, latency_ms=10.0))
    assert slow > 5 * default
    assert estimate_seconds(SimulationConfig(narratives=0)) == 0


# -- writing files and pipes ----------------------------------------------------------------


def test_unwritable_output_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(EXAMPLES / "demo.toml")
    a_file = tmp_path / "file"
    a_file.write_text("")
    for target in (tmp_path / "missing" / "out.txt", tmp_path, a_file / "out.txt"):
        code, out, err = run(capsys, "alerts", config, "-o", str(target))
        assert code == 2, err
        assert f"cannot write {target}" in one_error_line(err)
        code, out, err = run(capsys, "reference", "-o", str(target))
        assert code == 2 and out == "", err
        assert f"cannot write {target}" in one_error_line(err)
    code, _, err = run(capsys, "reference", "--check", str(tmp_path))
    assert code == 2 and f"cannot read {tmp_path}" in one_error_line(err)


def test_alerts_file_gets_the_usual_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "rules.yml"
    code, _, err = run(capsys, "alerts", str(EXAMPLES / "demo.toml"), "-o", str(target))
    assert code == 0 and "wrote 4 alerting rules" in err
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("command", ["reference", "plugins", "show"])
def test_closed_pipe_exits_quietly(command: str, tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte (``| head -0``)
    config = tmp_path / "app.toml"
    config.write_text('[telemetry]\nbackend = "none"\n')
    argv = [command] + ([str(config)] if command == "show" else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from sfumato.cli import main; raise SystemExit(main({argv!r}))",
            ],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 141


# -- a hook plugin that fails to import ------------------------------------------------------

BROKEN_HOOK_CHECK = """
import logging, sys
if sys.argv[1] == "named":
    logging.basicConfig(format="%(name)s: %(message)s")
import sfumato
telemetry = sfumato.configure(sys.argv[2])
telemetry.shutdown()
"""


@pytest.fixture
def broken_hook(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    info = site / "brokenhook-0.4.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenhook\nVersion: 0.4\n")
    (info / "entry_points.txt").write_text("[sfumato.plugins]\nbroken = brokenhook_gone:Hooks\n")
    return site


@pytest.mark.parametrize("logging_setup", ["unconfigured", "named"])
def test_broken_hook_plugin_logs_one_warning(
    logging_setup: str, broken_hook: Path, tmp_path: Path
) -> None:
    config = tmp_path / "app.toml"
    config.write_text('[telemetry]\nbackend = "none"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(broken_hook), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", BROKEN_HOOK_CHECK, logging_setup, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("sfumato: plugin 'broken'")
    assert "brokenhook 0.4" in lines[0] and "ModuleNotFoundError" in lines[0]
    assert "sfumato: sfumato:" not in done.stderr and "NoneType" not in done.stderr


def test_hook_plugin_with_a_bad_hookimpl_is_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "site"
    info = site / "badhook-0.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badhook\nVersion: 0.2\n")
    (info / "entry_points.txt").write_text("[sfumato.plugins]\nbad = badhook_mod:Hooks\n")
    (site / "badhook_mod.py").write_text(
        "import sfumato\n\n"
        "class Hooks:\n"
        "    @sfumato.hookimpl\n"
        "    def sfumato_configured(self, telemetry, not_in_the_spec):\n"
        "        pass\n"
    )
    monkeypatch.syspath_prepend(str(site))
    try:
        with caplog.at_level(logging.WARNING, logger="sfumato"):
            telemetry = sfumato.configure(backend="none")
            telemetry.shutdown()
        (record,) = [r for r in caplog.records if "'bad'" in r.getMessage()]
        message = record.getMessage()
        assert "badhook 0.2" in message and "cannot be registered" in message
        monkeypatch.setenv("SFUMATO_STRICT", "1")
        with pytest.raises(sfumato.ConfigError, match="cannot be registered"):
            sfumato.configure(backend="none")
    finally:
        sys.modules.pop("badhook_mod", None)


def test_prefix_kept_where_the_logger_name_is_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    """The filter only drops the prefix for handlers that print the logger name."""
    from sfumato._logging import strip_own_prefix

    record = logging.LogRecord("sfumato", logging.WARNING, __file__, 1, "sfumato: x", (), None)
    named = logging.Handler()
    named.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    bare = logging.Handler()
    bare.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    assert strip_own_prefix(record, [named]) == "x"
    assert strip_own_prefix(record, [named, bare]) == "sfumato: x"
    assert strip_own_prefix(record, []) == "sfumato: x"


# -- secrets in exporter options ---------------------------------------------------------------

SECRET_BACKEND = '''
from typing import Any, ClassVar

from pydantic import SecretStr
from sfumato.plugin import Backend, ExporterUse


class SecretHeaders(Backend):
    """Two exporters with a secret header each: sfumato's own and an SDK one."""

    def plan(self, settings, options, context):
        token = SecretStr(context.environ["SECRET_BACKEND_TOKEN"])
        return [
            ExporterUse(
                "otlp-http",
                frozenset({"traces"}),
                {"endpoint": "http://127.0.0.1:9", "headers": {"x-token": token}},
            ),
            ExporterUse(
                "otlp_proto_http",
                frozenset({"traces"}),
                {"endpoint": "http://127.0.0.1:9/v1/traces", "headers": {"x-token": token}},
            ),
        ]
'''


@pytest.fixture
def secret_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site"
    info = site / "secretbackend-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: secretbackend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[sfumato.backends]\nsecret-headers = secretbackend_mod:SecretHeaders\n"
    )
    (site / "secretbackend_mod.py").write_text(SECRET_BACKEND)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SECRET_BACKEND_TOKEN", CANARY)
    yield
    sys.modules.pop("secretbackend_mod", None)


def test_exporter_use_repr_hides_secrets() -> None:
    use = ExporterUse(
        "otlp-http",
        frozenset({"traces"}),
        {
            "endpoint": f"https://user:{CANARY}@collector:4318",
            "headers": {"authorization": f"Bearer {CANARY}"},
            "api_key": CANARY,
            "token": SecretStr(CANARY),
        },
    )
    text = repr(use)
    assert CANARY not in text
    assert "otlp-http" in text and "collector:4318" in text
    assert use.options["headers"]["authorization"] == f"Bearer {CANARY}"  # the data is intact


class RecordingExporter:
    """Stands in for the SDK's OTLP/HTTP span exporter: keeps its keyword arguments."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.made.append(kwargs)


@pytest.fixture
def recording_exporter(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import opentelemetry.exporter.otlp.proto.http.trace_exporter as module

    RecordingExporter.made = []
    monkeypatch.setattr(module, "OTLPSpanExporter", RecordingExporter)
    return RecordingExporter.made


def test_secret_str_headers_reach_the_exporters(
    secret_backend: None, recording_exporter: list[dict[str, Any]]
) -> None:
    loaded = load_config(service_name="s", backend="secret-headers")
    settings, plan = loaded.settings, loaded.plan
    assert plan is not None
    assert [n.name for n in plan.exporters] == ["otlp-http", "otlp_proto_http"]
    for node in plan.exporters:
        assert CANARY not in repr(node.options), node.name
        assert CANARY not in repr(node)
    assert CANARY not in repr(plan)
    context = BuildContext(settings=settings, stats=Stats())
    for node in plan.exporters:
        node.plugin.create("traces", node.options, context)
    assert [made["headers"]["x-token"] for made in recording_exporter] == [CANARY, CANARY]


def test_sdk_exporter_options_repr_hides_headers(
    tmp_path: Path, recording_exporter: list[dict[str, Any]]
) -> None:
    path = tmp_path / "app.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [telemetry]
            backend = "none"
            [[telemetry.exporters]]
            type = "otlp_proto_http"
            signals = ["traces"]
            endpoint = "http://127.0.0.1:9/v1/traces"
            headers = {{ "x-key" = "{CANARY}" }}
            """
        )
    )
    loaded = load_config(path)
    settings = loaded.settings
    assert loaded.plan is not None
    (node,) = loaded.plan.exporters
    assert CANARY not in repr(node.options)
    assert "127.0.0.1:9" in repr(node.options)
    node.plugin.create("traces", node.options, BuildContext(settings=settings, stats=Stats()))
    assert recording_exporter[-1]["headers"] == {"x-key": CANARY}


# -- OpenTelemetry SDK samplers' arg ----------------------------------------------------------


def _built_sampler(**sampler: Any) -> Any:
    from sfumato._pipeline import build_sampler

    loaded = load_config(backend="none", sampler=sampler)
    assert loaded.plan is not None
    return build_sampler(loaded.plan.sampler, loaded.settings, Stats(), loaded.plan.host)


@pytest.mark.parametrize("name", ["traceidratio", "parentbased_traceidratio"])
def test_sdk_ratio_sampler_arg_is_read_as_the_environment_variable_is(name: str) -> None:
    for arg in ("0.25", 0.25, " 0.25 ", "2.5e-1"):
        sampler = _built_sampler(type=name, arg=arg)
        assert "0.25" in sampler.get_description(), arg
    # Without an arg the SDK uses 1.0.
    assert "1.0" in _built_sampler(type=name).get_description()


@pytest.mark.parametrize("arg", ["lots", "", "2", -0.5, "nan", True])
def test_sdk_ratio_sampler_bad_arg_is_a_config_error(arg: object) -> None:
    with pytest.raises(sfumato.ConfigError) as caught:
        sfumato.load_settings(backend="none", sampler={"type": "traceidratio", "arg": arg})
    assert caught.value.key == "telemetry.sampler.arg", str(caught.value)
    assert "between 0 and 1" in caught.value.message


def test_sdk_ratio_sampler_arg_error_names_the_nested_key() -> None:
    with pytest.raises(sfumato.ConfigError) as caught:
        sfumato.load_settings(
            backend="none",
            sampler={"type": "error-always", "otherwise": {"type": "traceidratio", "arg": "x"}},
        )
    assert caught.value.key == "telemetry.sampler.otherwise.arg"


def test_sdk_sampler_factory_gets_the_arg_as_a_string() -> None:
    from sfumato._host import _OtelSamplerFactory

    seen: list[object] = []

    def factory(arg: object) -> Any:
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        seen.append(arg)
        return ALWAYS_ON

    plugin = _OtelSamplerFactory(factory)
    for given, expected in ((0.5, "0.5"), (3, "3"), ("abc", "abc"), (None, None)):
        options = plugin.Options.model_validate({} if given is None else {"arg": given})
        plugin.build(options, None)  # type: ignore[arg-type]
        assert seen[-1] == expected


# -- -V, --help, plurals -----------------------------------------------------------------------


def test_short_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-V")
    assert code == 0 and re.fullmatch(r"sfumato \S+\n", out)
    assert run(capsys, "--version")[1] == out


@pytest.mark.parametrize("command", ["show", "plugins", "report", "demo", "alerts", "reference"])
def test_help_has_a_description_and_exit_codes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    blocks = out.split("\n\n")
    description = blocks[1]
    assert "\n" not in description.strip() and description.strip().endswith("."), description
    assert "exit status:" in out
    codes = re.findall(r"^  (\d+) {2,}\S", out.split("exit status:")[1], flags=re.M)
    assert "0" in codes and "2" in codes, out


def test_main_help_lists_the_common_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "-V, --version" in out
    assert re.search(r"^  130 ", out, flags=re.M) and re.search(r"^  141 ", out, flags=re.M)


def test_plural_helper() -> None:
    from sfumato.cli._help import plural

    assert plural(1, "span") == "1 span"
    assert plural(2, "span") == "2 spans"
    assert plural(0, "span") == "0 spans"
    assert plural(1234, "trace") == "1,234 traces"
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(3, "entry", "entries") == "3 entries"
    assert plural(1.0, "span") == "1 span"
    assert plural(1.5, "span") == "1.5 spans"


def test_summary_counts_are_singular_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = store(tmp_path / "s", error=True)
    spans_file = next(directory.glob("traces*.jsonl"))
    with spans_file.open("a") as f:
        f.write("not json\n")
    code, out, _ = run(capsys, "report", str(directory))
    assert code == 0
    assert ": 1 file, " in out and "1 unreadable line skipped" in out
    assert "1 span in 1 trace," in out
    assert "files," not in out and "spans in" not in out
