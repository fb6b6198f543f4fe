"""The checkers of every notebook's exercises: one module ``nbNN.py`` per notebook.

Each module registers its exercises with ``helpers.checking.exercise`` when
imported. ``load(notebook)`` imports one notebook's module, so a check pays only
for its own notebook; ``load_all`` imports every ``nb*`` module, so ``progress``
knows the whole series. A module that fails to import is remembered (see
``load_errors``) instead of breaking the other notebooks.
"""

import importlib
import pkgutil
import sys

_tried: set[str] = set()
_errors: dict[str, str] = {}


def _modules():
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("nb"))


def _import(module):
    if module in _tried:
        return
    _tried.add(module)
    try:
        importlib.import_module(f"{__name__}.{module}")
    except Exception as error:  # noqa: BLE001 (one broken notebook must not hide the others)
        _errors[module] = f"{type(error).__name__}: {error}"
        print(f"stepwise: the checks in {module}.py failed to load: {_errors[module]}", file=sys.stderr)


def load(notebook):
    """Import the checkers of notebook ``notebook`` ("03"), if it has any (once)."""
    if f"nb{notebook}" in _modules():
        _import(f"nb{notebook}")


def load_all():
    """Import every ``nb*`` module of this package (once each)."""
    for module in _modules():
        _import(module)


def load_errors() -> dict[str, str]:
    """{module name: error} for the modules that failed to import."""
    return dict(_errors)
