"""Response times of ``surgicalai web`` measured in headless Chromium: server start to the first page
with the sample CT, a slice scroll and a 3-D rotation answered at the client, and the delay before a
second browser shows a change made in the first. Runs Testing/test_web_browser.py (which measures them),
writes the numbers to benchmarks/results_web.json and, with --screenshots, the panel pictures to docs/.

    python benchmarks/bench_web.py [--screenshots]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def stock_trame_slicer_first_page() -> float:
    """The peer: Kitware's own trame-slicer segmentation app (no case loaded), spawn to first view frame."""
    import urllib.request

    sys.path.insert(0, str(ROOT / "Testing"))
    from web_support import free_port, make_driver, wait_for

    driver = make_driver()
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "trame_slicer.app.segmentation_app", "--server", "--host",
                             "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).status == 200
            except OSError:
                return False
        wait_for(up, 240, interval=0.1, what="the stock app")
        driver.get(f"http://127.0.0.1:{port}/")
        wait_for(lambda: driver.execute_script(
            "return [...document.querySelectorAll('img.image-display-area')].some(i => i.naturalWidth > 0)"),
            120, what="a view frame")
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(10)
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", action="store_true", help="also write docs/web_*.png")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results_web.json"
    env = dict(os.environ, SURGICALAI_WEB_TIMINGS=str(out), OMP_NUM_THREADS="1", SURGICALAI_WEB_STRICT_TIMING="1")
    if args.screenshots:
        env["SURGICALAI_WEB_SCREENSHOTS"] = str(ROOT / "docs")
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "Testing/test_web_browser.py"], cwd=ROOT, env=env)
    timings = json.loads(out.read_text())
    timings["peer_trame_slicer_app_first_frame_s"] = stock_trame_slicer_first_page()
    timings["machine"] = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
                          "python": platform.python_version(), "load_1min": os.getloadavg()[0]}
    out.write_text(json.dumps(timings, indent=1))
    print(f"first page with the sample CT: {timings['first_page_s']:.1f} s after spawn "
          f"(server ready {timings['server_ready_s']:.1f} s)")
    for key, what in (("slice_scroll_ms", "slice scroll"), ("rotate_3d_ms", "3-D rotation")):
        if key in timings:
            print(f"{what}: median {np.median(timings[key]):.0f} ms, max {max(timings[key]):.0f} ms ({timings[key]})")
    print(f"peer, trame-slicer's own segmentation app (empty scene): first view frame "
          f"{timings['peer_trame_slicer_app_first_frame_s']:.1f} s after spawn")
    if "sync_ms" in timings:
        print(f"second browser follows a change in {timings['sync_ms']:.0f} ms")
    return rc


if __name__ == "__main__":
    sys.exit(main())
