"""Project folders: ``loopml.toml``, the ``.gitignore`` entry and the local store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GITIGNORE_ENTRY", "InitResult", "init_project"]

GITIGNORE_ENTRY = ".loopml/"
_GITIGNORE_EQUIVALENTS = {".loopml", ".loopml/", "/.loopml", "/.loopml/", ".loopml/*", "/.loopml/*"}


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_project` did."""

    project_dir: Path
    config_file: Path
    config_action: str  # created | overwritten | kept
    gitignore: Path
    gitignore_action: str  # created | appended | unchanged
    metadata_url: str
    artifact_root: str


def _update_gitignore(path: Path) -> str:
    if not path.exists():
        path.write_text(f"# loopml local store (metadata database and artifacts)\n{GITIGNORE_ENTRY}\n")
        return "created"
    content = path.read_text()
    if any(line.strip() in _GITIGNORE_EQUIVALENTS for line in content.splitlines()):
        return "unchanged"
    sep = "" if content == "" or content.endswith("\n") else "\n"
    with path.open("a") as f:
        f.write(f"{sep}{GITIGNORE_ENTRY}\n")
    return "appended"


def init_project(project_dir: str | os.PathLike[str], *, force: bool = False, keep_existing: bool = False) -> InitResult:
    """Make ``project_dir`` a loopml project: ``loopml.toml``, ``.gitignore`` entry, migrated store.

    Args:
        project_dir: the folder, created if needed.
        force: overwrite an existing ``loopml.toml``.
        keep_existing: keep an existing ``loopml.toml`` silently (the demo re-runs on one folder).

    Returns:
        What was created or changed.

    Raises:
        AlreadyExistsError: ``loopml.toml`` exists and neither ``force`` nor ``keep_existing`` is set.
        StoreError: the store cannot be opened or migrated.
    """
    from loopml.config import CONFIG_FILE, CONFIG_TEMPLATE, load_settings
    from loopml.errors import AlreadyExistsError, ConfigError

    d = Path(project_dir).expanduser().resolve()
    if d.exists() and not d.is_dir():
        raise ConfigError(f"cannot initialise {d}: it is a file, not a folder; choose another path")
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / CONFIG_FILE
    if cfg.exists() and keep_existing:
        config_action = "kept"
    elif cfg.exists() and not force:
        raise AlreadyExistsError(
            f"{cfg} already exists; this folder is already a loopml project. "
            "Pass --force to overwrite the file with the defaults, or edit it by hand",
            path=str(cfg),
        )
    else:
        config_action = "overwritten" if cfg.exists() else "created"
        cfg.write_text(CONFIG_TEMPLATE)
    gitignore = d / ".gitignore"
    gitignore_action = _update_gitignore(gitignore)

    from loopml.storage import get_backend

    settings = load_settings(d)
    get_backend(settings)  # creates and migrates the metadata database
    return InitResult(d, cfg, config_action, gitignore, gitignore_action, settings.metadata_url, settings.artifact_root)
