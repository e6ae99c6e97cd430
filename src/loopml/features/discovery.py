"""Finding definitions in the user's code: the module-level objects of a module or ``.py`` file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from loopml.errors import InvalidInputError
from loopml.features.models import Entity, FeatureView, OnDemandFeature

__all__ = ["load_definitions"]


def load_definitions(target: str, project_dir: Path) -> list[Entity | FeatureView | OnDemandFeature]:
    """Import ``target`` and return the Entity, FeatureView and OnDemandFeature objects it defines at module level.

    Args:
        target: a ``.py`` file (relative to ``project_dir`` or absolute) or a module name
            importable from ``project_dir``.
        project_dir: the project folder.

    Returns:
        The objects in definition order (a view's entities may come after it: apply sorts that out).

    Raises:
        InvalidInputError: the file or module cannot be found or fails to import, or defines nothing.
    """
    root = str(project_dir)
    if root not in sys.path:
        sys.path.insert(0, root)
    module: Any
    try:
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = project_dir / path
        if target.endswith(".py") or path.is_file():
            if not path.is_file():
                raise InvalidInputError(f"feature definitions file {target!r} does not exist ({path})")
            name = f"loopml_features_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise InvalidInputError(f"{path} cannot be imported as Python")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except InvalidInputError:
        raise
    except ModuleNotFoundError as e:
        raise InvalidInputError(f"feature definitions module {target!r} cannot be imported from {root}: {e}") from None
    except Exception as e:
        raise InvalidInputError(f"feature definitions {target!r} failed to import: {type(e).__name__}: {e}") from e
    found = [v for v in vars(module).values() if isinstance(v, Entity | FeatureView | OnDemandFeature)]
    if not found:
        raise InvalidInputError(
            f"{target!r} defines no Entity, FeatureView or OnDemandFeature at module level; nothing to apply"
        )
    return found
