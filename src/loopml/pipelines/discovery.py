"""Finding the project's pipelines: the modules ``loopml.toml`` names under ``[pipelines]``."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from loopml.config import Settings
from loopml.errors import ConfigError
from loopml.pipelines.pipeline import PIPELINES, Pipeline

__all__ = ["discover"]


def discover(settings: Settings) -> dict[str, Pipeline]:
    """Import every module listed in ``[pipelines] modules`` and return the pipelines they define.

    Module names are resolved from the project folder; ``.py`` paths are relative to it.

    Raises:
        ConfigError: a listed module cannot be found or fails to import (the error says which).
    """
    root = str(settings.project_dir)
    if root not in sys.path:
        sys.path.insert(0, root)
    for entry in settings.pipeline_modules:
        try:
            if entry.endswith(".py"):
                path = (settings.project_dir / entry).resolve()
                if not path.is_file():
                    raise ConfigError(f"pipeline module {entry!r} listed in loopml.toml does not exist ({path})")
                name = f"loopml_pipelines_{path.stem}"
                if name not in sys.modules:
                    spec = importlib.util.spec_from_file_location(name, path)
                    assert spec is not None and spec.loader is not None
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    spec.loader.exec_module(module)
            else:
                importlib.import_module(entry)
        except ConfigError:
            raise
        except ModuleNotFoundError as e:
            raise ConfigError(
                f"pipeline module {entry!r} listed in loopml.toml cannot be imported from {root}: {e}"
            ) from None
        except Exception as e:
            raise ConfigError(f"pipeline module {entry!r} failed to import: {type(e).__name__}: {e}") from e
    return dict(PIPELINES)


