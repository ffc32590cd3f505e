"""Start-up time of the ``llada`` command line.

Prints the median wall-clock seconds of ``llada --help`` and ``llada infill --help`` (and of the
same through ``python -m llada_cli``), each run in a fresh subprocess. It asserts nothing; the goal
is to stay under 0.3 s, which needs torch to stay unimported by help (check with
``python -X importtime -m llada_cli --help``).

Usage: python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def wall_seconds(command: list[str], runs: int) -> list[float]:
    """Wall time of ``runs`` executions of ``command`` (after one warm-up run)."""
    subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default 7)")
    runs = parser.parse_args().runs
    launchers = {"python -m llada_cli": [sys.executable, "-m", "llada_cli"]}
    exe = shutil.which("llada")
    if exe:
        launchers = {"llada": [exe], **launchers}
    print(f"median wall seconds over {runs} runs")
    for name, launcher in launchers.items():
        for args in (["--help"], ["infill", "--help"]):
            times = wall_seconds([*launcher, *args], runs)
            label = f"{name} {' '.join(args)}"
            print(f"  {label:<36} {statistics.median(times):.3f} s  (min {min(times):.3f})")


if __name__ == "__main__":
    main()
