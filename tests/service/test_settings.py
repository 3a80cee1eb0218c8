import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors import CONFIG_MODELS, source_class
from connectors.csvfile import CsvConfig
from connectors.errors import ConfigError
from engine.mapping import compile_mapping
from service.configfile import LineIndex, format_key, interpolate, load_yaml_text
from service.logconfig import redact, reset_logging
from service.settings import Settings, load_settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "config"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("LEADSYNC_"):
            monkeypatch.delenv(name)
    yield
    reset_logging()


@pytest.fixture(name="write")
def write_fixture(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str, name: str = "leadsync.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def problems(exc: ConfigError) -> list[tuple[str | None, str | None, int | None, str]]:
    return [(p.file, p.key, p.line, p.message) for p in (exc.problems or [exc])]


def fail(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value


CSV = """
connectors:
  - name: drop
    type: csv
    path: leads.csv
"""


def test_loads_the_contract_example():
    settings = load_settings(FIXTURES / "leadsync.yaml")
    folder = FIXTURES.resolve()
    assert settings.config_file == folder / "leadsync.yaml"
    assert settings.store_url() == f"sqlite:///{folder}/var/leadsync.db"
    assert (settings.api.enabled, settings.api.host, settings.api.port) == (
        True,
        "127.0.0.1",
        8787,
    )
    assert [(f.name, f.type) for f in settings.lead_fields] == [
        ("industry", "string"),
        ("team_size", "string"),
        ("budget", "number"),
    ]
    [csv] = settings.connectors
    assert isinstance(csv, CsvConfig)
    assert csv.name == "csv-drop"
    assert csv.path == str(folder / "inbox" / "leads.csv")
    assert (csv.updated_at_column, csv.deletes) == ("updated_at", "snapshot")
    assert csv.mapping == "mappings/csv.yaml"
    assert settings.tls.ca_bundle is None
    assert settings.destination.type == "store"
    assert settings.line_index.line_of(("connectors", 0, "path")) == 15


def test_defaults(write, tmp_path):
    settings = load_settings(write(""))
    assert settings.store.url == "sqlite:///./var/leadsync.db"
    assert settings.store_url() == f"sqlite:///{tmp_path.resolve()}/var/leadsync.db"
    assert settings.api.model_dump() == {
        "enabled": True,
        "host": "127.0.0.1",
        "port": 8787,
        "rate_limits": {
            "sync_requests_per_minute": 50,
            "sync_leads_per_minute": 5000,
            "requests_per_minute": 1200,
        },
        "max_body_bytes": 1_048_576,
    }
    assert settings.lead_fields == []
    assert settings.connectors == []
    assert settings.tls.ca_bundle is None
    assert (settings.destination.type, settings.destination.http) == ("store", None)
    assert (settings.logging.level, settings.logging.format) == ("info", "auto")


def test_store_url_keeps_absolute_memory_and_postgres_urls(write):
    for url in (
        "sqlite:////var/lib/leadsync/db.sqlite",
        "sqlite:///:memory:",
        "postgresql+psycopg://u@db.example.com/leads",
    ):
        assert load_settings(write(f"store: {{url: '{url}'}}\n")).store_url() == url


def test_config_path_from_environment(write, monkeypatch):
    path = write("api: {port: 9100}\n", name="sub/custom.yaml")
    monkeypatch.setenv("LEADSYNC_CONFIG", str(path))
    assert load_settings().api.port == 9100


def test_missing_config_file(tmp_path):
    exc = fail(tmp_path / "nope.yaml")
    assert problems(exc) == [
        (str(tmp_path / "nope.yaml"), None, None, "config file not found")
    ]


def test_interpolates_variables_with_defaults(write, monkeypatch, tmp_path):
    monkeypatch.setenv("LS_TEST_DIR", "data")
    monkeypatch.setenv("LS_TEST_EMPTY", "")
    path = write(
        """
        api:
          host: "${LS_TEST_HOST:-10.0.0.5}"
          port: ${LS_TEST_PORT:-9001}
        connectors:
          - name: drop
            type: csv
            path: ${LS_TEST_DIR}/leads-$$1-${LS_TEST_EMPTY:-x}.csv
        """
    )
    settings = load_settings(path)
    assert (settings.api.host, settings.api.port) == ("10.0.0.5", 9001)
    [csv] = settings.connectors
    assert isinstance(csv, CsvConfig)
    assert csv.path == str(tmp_path.resolve() / "data/leads-$1-x.csv")


def test_undefined_variable_names_key_and_line(write):
    path = write(
        """
        connectors:
          - name: drop
            type: csv
            path: leads.csv
            mapping:
              lead_id: id
              fields:
                source: {value: "${LS_TEST_UNDEFINED}"}
        """
    )
    assert problems(fail(path)) == [
        (
            str(path),
            "connectors[0].mapping.fields.source.value",
            8,
            "environment variable LS_TEST_UNDEFINED is not set",
        )
    ]


def test_interpolate_leaves_text_without_variables():
    data = {"a": ["$5", "x"], "b": 3}
    assert interpolate(data, LineIndex(), "f", environ={}) == data


def test_environment_overrides_yaml(write, monkeypatch):
    path = write("store: {url: 'sqlite:///yaml.db'}\napi: {port: 8000, host: h}\n")
    monkeypatch.setenv("LEADSYNC_STORE__URL", "sqlite:////srv/env.db")
    monkeypatch.setenv("LEADSYNC_API__PORT", "9443")
    settings = load_settings(path)
    assert settings.store_url() == "sqlite:////srv/env.db"
    assert (settings.api.port, settings.api.host) == (9443, "h")


def test_bad_environment_value_names_the_variable(write, monkeypatch):
    monkeypatch.setenv("LEADSYNC_API__PORT", "abc")
    exc = fail(write("api: {port: 8000}\n"))
    assert problems(exc) == [
        (
            None,
            "api.port",
            None,
            "Input should be a valid integer, unable to parse string as an integer "
            "(from environment variable LEADSYNC_API__PORT)",
        )
    ]


def test_unknown_top_level_key(write):
    path = write("api:\n  port: 8000\nstroe:\n  url: x\n")
    assert problems(fail(path)) == [
        (str(path), "stroe", 3, "unknown key 'stroe'; did you mean 'store'?")
    ]


def test_unknown_key_in_connector(write):
    path = write(
        """
        api: {port: 8000}
        connectors:
          - name: drop
            type: csv
            path: leads.csv
            pathh: other.csv
            zzz: 1
        """
    )
    exc = fail(path)
    assert problems(exc) == [
        (
            str(path),
            "connectors[0].pathh",
            6,
            "unknown key 'pathh'; did you mean 'path'?",
        ),
        (str(path), "connectors[0].zzz", 7, "unknown key 'zzz'"),
    ]
    assert f"{path}:6: connectors[0].pathh: unknown key 'pathh'" in str(exc)


def test_missing_key_points_at_its_mapping(write):
    path = write("connectors:\n  - name: drop\n    type: csv\n")
    assert problems(fail(path)) == [
        (str(path), "connectors[0].path", 2, "Field required")
    ]


def test_wrong_type_has_line(write):
    path = write("store: {}\napi:\n  host: h\n  port: abc\n")
    assert problems(fail(path)) == [
        (
            str(path),
            "api.port",
            4,
            "Input should be a valid integer, unable to parse string as an integer",
        )
    ]


def test_port_range(write):
    path = write("api: {port: 70000}\n")
    assert problems(fail(path)) == [
        (str(path), "api.port", 1, "Input should be less than or equal to 65535")
    ]


def test_duplicate_connector_names(write):
    path = write(CSV + "  - name: drop\n    type: csv\n    path: b.csv\n")
    assert problems(fail(path)) == [
        (
            str(path),
            "connectors[1].name",
            5,
            "duplicate connector name 'drop' (already at connectors[0])",
        )
    ]


def test_duplicate_lead_fields(write):
    path = write("lead_fields:\n  - {name: industry}\n  - {name: industry}\n")
    assert problems(fail(path)) == [
        (
            str(path),
            "lead_fields[1].name",
            3,
            "duplicate lead field 'industry' (already at lead_fields[0])",
        )
    ]


def test_unknown_connector_type(write):
    path = write(CSV + "  - name: hs\n    type: hubspott\n")
    assert problems(fail(path)) == [
        (
            str(path),
            "connectors[1].type",
            6,
            "unknown connector type 'hubspott' (known: csv, hubspot)",
        )
    ]


def test_registry():
    assert set(CONFIG_MODELS) == {"csv", "hubspot"}
    assert source_class("csv").kind == "csv"
    assert source_class("hubspot").kind == "hubspot"
    with pytest.raises(
        ConfigError, match=r"^unknown connector type 'nope' \(known: csv, hubspot\)$"
    ):
        source_class("nope")


def test_yaml_syntax_error_has_line(write):
    path = write("api:\n  port: 8000\n host: x\n")
    [(file, key, line, message)] = problems(fail(path))
    assert (file, key, line) == (str(path), None, 3)
    assert message.startswith("invalid YAML: expected <block end>")


def test_duplicate_yaml_key(write):
    path = write("api:\n  port: 1\n  host: h\n  port: 2\n")
    assert problems(fail(path)) == [
        (str(path), "api.port", 4, "duplicate key 'port' (lines 2 and 4)")
    ]


def test_yaml_uses_core_schema_scalars():
    data, index = load_yaml_text(
        "a: NO\nb: 0123\nc: 2024-01-31\nd: true\ne: 1.5\nf:\ng: 0x1F\nh: yes\n", "t"
    )
    assert data == {
        "a": "NO",
        "b": 123,
        "c": "2024-01-31",
        "d": True,
        "e": 1.5,
        "f": None,
        "g": 31,
        "h": "yes",
    }
    assert index.line_of(("h",)) == 8


def test_line_index_and_format_key():
    _, index = load_yaml_text("a:\n  - x: 1\n    y:\n      z: 2\n", "t")
    assert index.line_of(("a", 0, "y", "z")) == 4
    assert index.line_of(("a", 0, "missing", "deeper")) == 2
    assert index.sub(("a", 0)).line_of(("y",)) == 3
    assert format_key(("connectors", 0, "schedule", "every")) == (
        "connectors[0].schedule.every"
    )


def test_relative_csv_path_resolved_against_config_folder(write, tmp_path, monkeypatch):
    path = write(CSV, name="conf/leadsync.yaml")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("conf/leadsync.yaml"))
    [csv] = settings.connectors
    assert isinstance(csv, CsvConfig)
    assert csv.path == str(tmp_path.resolve() / "conf" / "leads.csv")
    assert settings.config_file == path.resolve()


def test_placeholder_secret_refused(write):
    path = write(
        """
        destination:
          type: http
          http:
            url: https://leads.example.com
            api_key: changeme
        """
    )
    assert problems(fail(path)) == [
        (
            str(path),
            "destination.http.api_key",
            5,
            "destination.http.api_key is a placeholder, not a secret: set it, e.g. "
            "from an environment variable with ${VAR}",
        )
    ]


def test_http_destination_needs_block(write):
    path = write("destination:\n  type: http\n")
    assert problems(fail(path)) == [
        (
            str(path),
            "destination",
            1,
            "type 'http' needs an 'http' block with url and api_key",
        )
    ]


def test_secrets_are_registered_for_redaction(write, monkeypatch):
    monkeypatch.setenv("LS_TEST_KEY", "s3cr3t-dest-key-42")
    path = write(
        """
        destination:
          type: http
          http: {url: "https://leads.example.com", api_key: "${LS_TEST_KEY}"}
        """
    )
    settings = load_settings(path)
    assert settings.destination.http is not None
    assert settings.destination.http.api_key.get_secret_value() == "s3cr3t-dest-key-42"
    assert redact("sent with s3cr3t-dest-key-42") == "sent with ***"


def test_settings_without_file_use_defaults():
    settings = Settings()
    assert settings.config_file is None
    assert settings.store_url() == f"sqlite:///{Path.cwd()}/var/leadsync.db"


def test_mapping_source_inline(write):
    path = write(
        """
        connectors:
          - name: drop
            type: csv
            path: leads.csv
            mapping:
              lead_id: id
              fields:
                email: {from: mail}
        """
    )
    settings = load_settings(path)
    spec, label, locate = settings.mapping_source(settings.connectors[0])
    assert spec == {"lead_id": "id", "fields": {"email": {"from": "mail"}}}
    assert label == str(path.resolve())
    assert locate(("fields", "email", "from")) == 8
    assert locate(("lead_id",)) == 6


def test_mapping_source_file(monkeypatch):
    monkeypatch.setenv("LEADSYNC_TEST_SOURCE", "drop")
    settings = load_settings(FIXTURES / "leadsync.yaml")
    spec, label, locate = settings.mapping_source(settings.connectors[0])
    assert label == str(FIXTURES.resolve() / "mappings" / "csv.yaml")
    assert spec["lead_id"] == "Id"
    assert spec["fields"]["source"] == {"value": "drop"}
    assert locate(("fields", "company")) == 5


def test_mapping_source_default(write):
    settings = load_settings(write(CSV))
    spec, label, locate = settings.mapping_source(settings.connectors[0])
    assert label == "engine/mappings/csv.yaml"
    assert (spec["lead_id"], spec["updated_at"], spec["require"]) == (
        "id",
        "updated_at",
        ["email"],
    )
    assert locate(("fields", "email")) == 9


def test_missing_mapping_file(write):
    path = write(CSV + "    mapping: maps/none.yaml\n")
    settings = load_settings(path)
    with pytest.raises(ConfigError) as info:
        settings.mapping_source(settings.connectors[0])
    assert problems(info.value) == [
        (
            str(path.resolve()),
            "connectors[0].mapping",
            5,
            f"mapping file not found: {path.resolve().parent / 'maps' / 'none.yaml'}",
        )
    ]


def test_default_csv_mapping_compiles_and_maps():
    settings = Settings(connectors=[{"name": "drop", "type": "csv", "path": "x.csv"}])
    spec, label, locate = settings.mapping_source(settings.connectors[0])
    mapping = compile_mapping(spec, file=label, locate=locate)
    record = {
        "id": "7",
        "updated_at": "2024-01-31T12:00:00Z",
        "email": " Ann@Example.COM ",
        "first_name": "Ann",
        "last_name": "Lee",
        "name": "Ann Lee",
        "company": "Acme",
        "title": "CTO",
        "phone": "(415) 555-2671",
        "owner": "bob",
        "status": "Won",
        "score": "42",
        "source": "web",
        "tags": "a;b",
    }
    lead = mapping.apply(record)
    assert lead["lead_id"] == "7"
    assert lead["source_updated_at"].isoformat() == "2024-01-31T12:00:00+00:00"
    assert {k: lead[k] for k in ("email", "phone", "status", "score", "tags")} == {
        "email": "ann@example.com",
        "phone": "+14155552671",
        "status": "converted",
        "score": 42,
        "tags": ["a", "b"],
    }
    assert mapping.apply({**record, "status": "Unqualified"})["status"] == "lost"
    assert mapping.apply({**record, "status": "something"})["status"] == "new"
