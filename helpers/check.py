"""Check an exercise from the command line.

python -m helpers.check 03.2 my_sgd.py:SGD   # verdict; exit 0 passed, 1 failed,
                                             #          2 not attempted or usage error
python -m helpers.check --progress
python -m helpers.check --hint 03.2 [N]
"""

import argparse
import importlib.util
import sys
import types
from pathlib import Path

from helpers.checking import _find, _unknown, check, hint, progress

USAGE_ERROR = 2


def load(spec):
    """The object ``Name`` from ``path/to/file.py:Name``."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise ValueError(f"expected path/to/file.py:Name, got {spec!r}")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no such file: {path}")
    module_spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(file.resolve().parent))  # let the file import its neighbours
    try:
        module_spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f"{path} defines no {name!r}") from None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m helpers.check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("exercise", nargs="?", help="exercise id, e.g. 03.2")
    parser.add_argument("candidate", nargs="?", help="path/to/file.py:Name")
    parser.add_argument("--progress", action="store_true", help="print the progress table")
    parser.add_argument("--hint", metavar="ID", help="print the next hint of exercise ID")
    args = parser.parse_args(argv)

    if args.progress:
        print(progress())
        return 0
    if args.hint:
        n = int(args.exercise) if args.exercise else None
        print(hint(args.hint, n))
        return 0
    if not (args.exercise and args.candidate):
        parser.print_usage(sys.stderr)
        return USAGE_ERROR
    if _find(args.exercise) is None:  # imports only that notebook's checkers
        print(_unknown(args.exercise), file=sys.stderr)
        return USAGE_ERROR
    try:
        candidate = load(args.candidate)
    except Exception as error:  # noqa: BLE001 (any error in the learner's file)
        print(f"cannot load {args.candidate}: {type(error).__name__}: {error}", file=sys.stderr)
        return USAGE_ERROR
    result = check(args.exercise, candidate, strict=False)
    print(result)
    return {"passed": 0, "failed": 1}.get(result.status, USAGE_ERROR)


class _CallableModule(types.ModuleType):
    """Importing this module rebinds the name ``helpers.check`` from the function to the module;
    calling the module keeps ``from helpers import check; check("03.2", …)`` working anyway."""

    __call__ = staticmethod(check)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
