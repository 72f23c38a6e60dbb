"""`python -m benchmarks [NAME ...] [--quick]`: run every benchmark, or only those named.

Each benchmarks/bench_*.py module's main() runs in turn; a name is ``batch`` or ``bench_batch``. Each writes its
results JSON to benchmarks/results/."""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(HERE.parent))  # tests.support is importable from the repo root
    names = available()
    # options (``--quick``) are left in sys.argv for the benchmarks that read them
    wanted = [
        a if a.startswith("bench_") else f"bench_{a}"
        for a in (argv if argv is not None else sys.argv[1:])
        if not a.startswith("-")
    ]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    failed = []
    for name in wanted or names:
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' results
            traceback.print_exc()
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
