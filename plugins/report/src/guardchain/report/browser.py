"""The system Chromium the report is checked and timed in (tests and ``bench/report_render.py``).

Debian's ``chromium`` package, driven by Playwright with ``executable_path`` (never ``playwright install``). The
flags keep a headless Chromium off the network entirely (no background updates, sync or component downloads), so
a request seen while a report is open can only come from the page itself.
"""

from __future__ import annotations

import shutil

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> str | None:
    """The system's Chromium (``apt-get install chromium``), if any."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None
