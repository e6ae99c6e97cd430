"""``loopml init``, ``version`` and the entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.config import CONFIG_TEMPLATE

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})


def test_init_creates_config_gitignore_and_store(tmp_path: Path) -> None:
    target = tmp_path / "new" / "project"
    res = invoke("init", str(target))
    assert res.exit_code == 0, res.output
    assert (target / "loopml.toml").read_text() == CONFIG_TEMPLATE
    assert (target / ".gitignore").read_text().splitlines()[-1] == ".loopml/"
    assert (target / ".loopml" / "loopml.db").is_file()
    assert "Initialised loopml project" in res.output
    assert "runs list" in res.output  # next steps


def test_init_uses_the_project_option_without_a_directory(tmp_path: Path) -> None:
    res = invoke("-p", str(tmp_path / "p"), "init")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p" / "loopml.toml").is_file()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert invoke("init", str(tmp_path)).exit_code == 0
    (tmp_path / "loopml.toml").write_text("# mine\n")
    res = invoke("init", str(tmp_path))
    assert res.exit_code == 1
    assert "ALREADY_EXISTS" in res.output
    assert "--force" in res.output
    assert "Traceback" not in res.output
    assert (tmp_path / "loopml.toml").read_text() == "# mine\n"

    res = invoke("init", str(tmp_path), "--force")
    assert res.exit_code == 0, res.output
    assert "overwritten" in res.output
    assert (tmp_path / "loopml.toml").read_text() == CONFIG_TEMPLATE


def test_init_appends_to_gitignore_once(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules")  # no trailing newline
    assert invoke("init", str(tmp_path)).exit_code == 0
    assert (tmp_path / ".gitignore").read_text() == "node_modules\n.loopml/\n"
    assert invoke("init", str(tmp_path), "--force").exit_code == 0
    assert (tmp_path / ".gitignore").read_text() == "node_modules\n.loopml/\n"


def test_init_keeps_an_equivalent_gitignore_entry(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("/.loopml\n")
    assert invoke("init", str(tmp_path)).exit_code == 0
    assert (tmp_path / ".gitignore").read_text() == "/.loopml\n"


def test_init_on_a_file_is_a_clean_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    res = invoke("init", str(f))
    assert res.exit_code == 1
    assert "INVALID_CONFIG" in res.output and "not a folder" in res.output


def test_version() -> None:
    from loopml import __version__

    res = invoke("version")
    assert res.exit_code == 0
    assert res.output.strip() == f"loopml {__version__}"


def test_no_arguments_shows_help() -> None:
    res = invoke()
    assert "runs" in res.output and "models" in res.output and "init" in res.output


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from loopml.cli.main import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('sqlalchemy', 'pandas', 'sklearn', 'numpy', 'alembic') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_read_commands_outside_a_project_do_not_create_a_store(tmp_path: Path) -> None:
    for args in (("runs", "list"), ("models", "list"), ("runs", "show", "abcd")):
        res = invoke("-p", str(tmp_path), *args)
        assert res.exit_code == 1, res.output
        assert "NOT_FOUND" in res.output and "not a loopml project" in res.output and "loopml init" in res.output
    assert not (tmp_path / ".loopml").exists()
