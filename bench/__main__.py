"""Run every benchmark module in this package (``python -m bench [NAME...]``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    chosen = [n for n in names if not argv or n in argv]
    if not chosen:
        print(f"no benchmark named {' '.join(argv)}; have: {' '.join(names)}", file=sys.stderr)
        return 2
    failed = 0
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if run is None:
            continue
        print(f"== {name} ==", flush=True)
        failed += 0 if run() else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
