"""Import single modules of apache-airflow-client without its package ``__init__`` files.

``airflow_client.client/__init__.py`` (and ``.api`` / ``.models``) import all ~155 generated modules: ~1 s, most
of `llmops dags list`'s wall time. We register those three packages as empty modules with the right
``__path__`` so ``airflow_client.client.api.dag_api`` loads only itself and the models it names. The stand-ins
complete themselves on first use of a missing attribute (they run the real ``__init__`` then), so other code
doing ``from airflow_client.client import ApiClient`` still works.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

_PACKAGES = ("airflow_client.client", "airflow_client.client.api", "airflow_client.client.models")


def _install_stand_in(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None or spec.loader is None:
        raise ImportError(name)
    mod = types.ModuleType(name)
    mod.__path__ = list(spec.submodule_search_locations)
    mod.__spec__ = spec
    mod.__file__ = spec.origin
    mod.__package__ = name
    completed = {"done": False}

    def __getattr__(attr: str) -> Any:  # noqa: N807 - a module-level __getattr__ (PEP 562)
        if attr.startswith("__"):
            raise AttributeError(attr)
        if importlib.util.find_spec(f"{name}.{attr}") is not None:  # a submodule: load just that
            return importlib.import_module(f"{name}.{attr}")
        if not completed["done"]:  # a name the real __init__ defines: run it in this module, once
            completed["done"] = True
            spec.loader.exec_module(mod)  # type: ignore[union-attr]
            if attr in mod.__dict__:
                return mod.__dict__[attr]
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    mod.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, mod)


def import_module(name: str) -> types.ModuleType:
    """``importlib.import_module`` for an airflow_client module, skipping the eager package imports."""
    try:
        for pkg in _PACKAGES:
            _install_stand_in(pkg)
    except ImportError:
        pass  # an unexpected layout: the normal (slower) import below still works
    return importlib.import_module(name)
