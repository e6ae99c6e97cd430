"""Settings resolution: explicit > LOOPML_* env > loopml.toml > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.config import CONFIG_FILE, CONFIG_TEMPLATE, ENV_VARS, Settings, find_project_dir, load_settings
from loopml.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _write_config(d: Path, text: str) -> None:
    (d / CONFIG_FILE).write_text(text)


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path)
    assert s.project_dir == tmp_path.resolve()
    assert s.metadata_url == f"sqlite:///{tmp_path.resolve() / '.loopml' / 'loopml.db'}"
    assert s.artifact_root == str(tmp_path.resolve() / ".loopml" / "artifacts")
    assert s.metric_flush_interval == 1.0
    assert s.metric_buffer_size == 5000
    assert s.s3_endpoint_url is None and s.user is None


def test_for_dir_matches_the_defaults(tmp_path: Path) -> None:
    assert Settings.for_dir(tmp_path) == load_settings(tmp_path)
    assert Settings.for_dir(tmp_path, user="ann").user == "ann"


def test_file_overrides_defaults(tmp_path: Path) -> None:
    _write_config(tmp_path, """
[store]
metadata_url = "sqlite:///db/meta.db"
artifact_root = "s3://bucket/prefix"
[tracking]
metric_buffer_size = 10
[project]
user = "from-file"
""")
    s = load_settings(tmp_path)
    assert s.metadata_url == f"sqlite:///{tmp_path.resolve() / 'db' / 'meta.db'}"
    assert s.artifact_root == "s3://bucket/prefix"
    assert s.metric_buffer_size == 10
    assert s.user == "from-file"
    assert s.metric_flush_interval == 1.0  # not in the file: default


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_config(tmp_path, '[tracking]\nmetric_buffer_size = 10\n[project]\nuser = "from-file"\n')
    monkeypatch.setenv("LOOPML_METRIC_BUFFER_SIZE", "20")
    monkeypatch.setenv("LOOPML_USER", "from-env")
    monkeypatch.setenv("LOOPML_METRIC_FLUSH_INTERVAL", "0.25")
    s = load_settings(tmp_path)
    assert s.metric_buffer_size == 20
    assert s.user == "from-env"
    assert s.metric_flush_interval == 0.25


def test_explicit_overrides_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_config(tmp_path, "[tracking]\nmetric_buffer_size = 10\n")
    monkeypatch.setenv("LOOPML_METRIC_BUFFER_SIZE", "20")
    monkeypatch.setenv("LOOPML_ARTIFACT_ROOT", "s3://env-bucket/x")
    s = load_settings(tmp_path, metric_buffer_size=30, artifact_root="explicit-artifacts")
    assert s.metric_buffer_size == 30
    assert s.artifact_root == str(tmp_path.resolve() / "explicit-artifacts")


def test_empty_env_var_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_METRIC_BUFFER_SIZE", "")
    assert load_settings(tmp_path).metric_buffer_size == 5000


def test_none_override_does_not_erase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_USER", "from-env")
    assert load_settings(tmp_path, user=None).user == "from-env"


def test_file_url_artifact_root(tmp_path: Path) -> None:
    assert load_settings(tmp_path, artifact_root="file:///data/artifacts").artifact_root == "/data/artifacts"


def test_absolute_and_memory_sqlite_urls_are_kept(tmp_path: Path) -> None:
    assert load_settings(tmp_path, metadata_url="sqlite:////abs/loopml.db").metadata_url == "sqlite:////abs/loopml.db"
    assert load_settings(tmp_path, metadata_url="sqlite:///:memory:").metadata_url == "sqlite:///:memory:"
    pg = "postgresql+psycopg://u@h/db"
    assert load_settings(tmp_path, metadata_url=pg).metadata_url == pg


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    _write_config(tmp_path, "[store\nmetadata_url = \n")
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path)
    assert str(tmp_path / CONFIG_FILE) in str(err.value)
    assert "not valid TOML" in str(err.value)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("LOOPML_METRIC_BUFFER_SIZE", "lots"),
        ("LOOPML_METRIC_BUFFER_SIZE", "1.5"),
        ("LOOPML_METRIC_FLUSH_INTERVAL", "soon"),
    ],
)
def test_bad_env_type_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path)
    assert var in str(err.value) and value in str(err.value)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("ON", True), ("0", False), ("false", False)])
def test_bool_env_vars(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("LOOPML_REQUIRE_SERVICES", raw)
    assert ENV_VARS["LOOPML_REQUIRE_SERVICES"].get() is expected


def test_bad_bool_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_REQUIRE_SERVICES", "perhaps")
    with pytest.raises(ConfigError, match="LOOPML_REQUIRE_SERVICES"):
        ENV_VARS["LOOPML_REQUIRE_SERVICES"].get()


def test_unknown_setting_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(tmp_path, colour="blue")


def test_non_positive_flush_interval(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="metric_flush_interval"):
        load_settings(tmp_path, metric_flush_interval=0)


def test_project_dir_is_the_nearest_folder_with_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_config(tmp_path, "")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_project_dir() == tmp_path.resolve()
    assert load_settings().project_dir == tmp_path.resolve()


def test_project_dir_without_config_is_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_project_dir() == tmp_path.resolve()


def test_project_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("LOOPML_PROJECT_DIR", str(other))
    monkeypatch.chdir(tmp_path)
    assert find_project_dir() == other.resolve()


def test_config_template_loads_to_the_defaults(tmp_path: Path) -> None:
    _write_config(tmp_path, CONFIG_TEMPLATE)
    assert load_settings(tmp_path) == Settings.for_dir(tmp_path)


@pytest.mark.parametrize(
    ("table", "line"),
    [("tracking", 'metric_buffer_size = "abc"'), ("tracking", "metric_flush_interval = true"), ("store", "metadata_url = 5")],
)
def test_wrongly_typed_file_value_is_a_config_error(tmp_path: Path, table: str, line: str) -> None:
    (tmp_path / "loopml.toml").write_text(f"[{table}]\n{line}\n")
    key = line.split(" =")[0]
    with pytest.raises(ConfigError, match=rf"\[{table}\] {key} = .* must be a"):
        load_settings(tmp_path)


def test_integer_flush_interval_in_file_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "loopml.toml").write_text("[tracking]\nmetric_flush_interval = 2\n")
    assert load_settings(tmp_path).metric_flush_interval == 2.0
