"""`make bench` / `python -m bench [name ...]`: run the benchmarks, write JSON, print tables."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import bench
from bench.harness import bench_context, report
from conf.logging import configure_logging


def available() -> list[str]:
    return sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    args = parser.parse_args()
    configure_logging("WARNING")
    for name in args.names or available():
        module = importlib.import_module(f"bench.bench_{name}")
        with bench_context() as ctx:
            report(name, module.run(ctx))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
