"""How long `guardchain report` takes on a run folder, how much the page weighs, and how long headless Chromium takes
to load and paint it. Goals (issue 16): the SmolLM2-135M certification's report written in under 2 s and under 2 MB.

    python3 bench/report_render.py /tmp/smol-cert            # after: guardchain certify --baseline smollm2-135m \\
                                                             #          --profile dev --out /tmp/smol-cert
    python3 bench/report_render.py RUN_DIR --repeats 5 --no-browser

Each repeat runs `guardchain report RUN_DIR --out <tmp>/report.html` in a fresh interpreter (what a user waits for:
start-up, plugin discovery, reading, drawing, writing). The browser figures come from the Navigation and Paint
Timing APIs of the system Chromium (`apt-get install chromium`; Playwright drives it, no `playwright install`).
Wrap a timing run in `flock /tmp/bench.lock` on a shared machine. Prints one line per figure and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from guardchain.report.browser import CHROMIUM_ARGS, chromium_path

GOAL_SECONDS = 2.0
GOAL_BYTES = 2 << 20


def write_times(run_dir: Path, out: Path, repeats: int) -> list[float]:
    """Wall seconds of each ``guardchain report`` run."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "guardchain.core", "report", str(run_dir), "--out", str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"guardchain report failed: {done.stderr.strip()}")
    return times


def browser_times(page_file: Path, repeats: int) -> list[tuple[float, float]]:
    """``(load event end, first contentful paint)`` in seconds per load, in a fresh page each time."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium found (apt-get install -y chromium), or pass --no-browser")
    out = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # painted
            load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            paint = page.evaluate(
                "(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: NaN}).startTime"
            )
            out.append((load / 1000.0, paint / 1000.0))
            page.close()
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        times = write_times(args.run_dir, out, args.repeats)
        size = out.stat().st_size
        for index, seconds in enumerate(times):
            print(f"guardchain report, run {index}: {seconds:.2f} s")
        median = statistics.median(times)
        print(f"median {median:.2f} s (goal < {GOAL_SECONDS:.0f} s); page {size / 1024:.0f} KiB (goal < 2 MiB)")
        if not args.no_browser:
            loads = browser_times(out, args.repeats)
            for index, (load, paint) in enumerate(loads):
                print(f"chromium, load {index}: load event {load:.3f} s, first contentful paint {paint:.3f} s")
            print(f"median load event {statistics.median(x for x, _ in loads):.3f} s")
        ok = median < GOAL_SECONDS and size < GOAL_BYTES
        print("goals met" if ok else "GOALS NOT MET")


if __name__ == "__main__":
    main()
