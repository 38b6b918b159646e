"""A screenshot of a `sharegpt-tools report` page in headless Debian Chromium (for the README).

  python scripts/report_screenshot.py data/report.html docs/report.png [--height 2200]

The same driver set-up is what tests/test_report.py uses to check the page in a real browser.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# Keep Chromium off this machine's closed network (it otherwise retries Google's hosts) and
# runnable as root in a container.
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)  # fmt: skip


class BrowserMissing(RuntimeError):
    """Debian's chromium / chromium-driver are not installed."""


def chromium_driver(width: int = 1280, height: int = 2400) -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        raise BrowserMissing(
            "Debian chromium + chromium-driver are missing: scripts/browser.sh installs them"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(chromedriver))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--height", type=int, default=2200, help="pixels of the page to keep")
    args = parser.parse_args()
    driver = chromium_driver(height=args.height)
    try:
        driver.get(args.page.resolve().as_uri())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
    print(args.out)


if __name__ == "__main__":
    main()
