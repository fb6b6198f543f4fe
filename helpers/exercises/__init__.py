"""The checkers of every notebook's exercises: one module ``nbNN.py`` per notebook.

Each module registers its exercises with ``helpers.checking.exercise`` when
imported. ``load_all`` imports every ``nb*`` module once, so ``check`` and
``progress`` know the whole series. A module that fails to import is
remembered (see ``load_errors``) instead of breaking the other notebooks.
"""

import importlib
import pkgutil
import sys

_loaded = False
_errors: dict[str, str] = {}


def load_all():
    """Import every ``nb*`` module of this package (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module.startswith("nb"):
            try:
                importlib.import_module(f"{__name__}.{module}")
            except Exception as error:  # noqa: BLE001 (one broken notebook must not hide the others)
                _errors[module] = f"{type(error).__name__}: {error}"
                print(
                    f"stepwise: the checks in {module}.py failed to load: {_errors[module]}",
                    file=sys.stderr,
                )


def load_errors() -> dict[str, str]:
    """{module name: error} for the modules that failed to import."""
    return dict(_errors)
