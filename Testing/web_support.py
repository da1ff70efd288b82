"""Helpers for the browser tests of ``surgicalai web``: a data folder with good and bad inputs, the
server as a subprocess on a free loopback port, and headless Chromium through Selenium (Debian's
``chromium`` and ``chromium-driver``; nothing is downloaded)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,800")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
        import trame_slicer  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (pip install -e '.[dev]')"
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            return f"{exe} is absent (apt-get install chromium chromium-driver; scripts/setup.sh does it)"
    return None


needs_browser = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data_folder(folder: Path) -> Path:
    """A case, a broken image, a 'DICOM' folder without images and a short synthetic endoscopy video."""
    import cv2

    from SurgicalAICore.resources import sample_ct_path

    shutil.copy(sample_ct_path(), folder / "case.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    (folder / "no_series").mkdir()
    (folder / "no_series" / "notes.dcm").write_text("not a DICOM file")
    (folder / "endo").mkdir()
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(40, 220, (256, 320, 3), dtype=np.uint8), (0, 0), 3)
    writer = cv2.VideoWriter(str(folder / "endo" / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 256))
    for k in range(6):  # a textured, vignetted scene drifting sideways
        frame = np.roll(base, 4 * k, axis=1).astype(np.float32)
        yy, xx = np.mgrid[:256, :320]
        frame *= (1.2 - np.hypot(yy - 128, xx - 160) / 220.0)[..., None]
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    return folder


class WebServer:
    """``surgicalai web`` as a subprocess; ``ready_s`` is the time from spawn to its ready line."""

    def __init__(self, data: Path, host: str = "127.0.0.1", extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.data = data
        self.host = host
        env = dict(os.environ, OMP_NUM_THREADS="1", VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow",
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "SegmentationAI"), str(ROOT / "SurgicalDepth")]))
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "surgicalai.cli", "web", "--data", str(data), "--host", host,
             "--port", str(self.port), *extra], stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        self.ready_s = self._wait_ready(240)
        self.token = self._printed_token()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def _wait_ready(self, timeout: float) -> float:
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"surgicalai web exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            if "SurgicalAI web: ready" in self.output():
                return time.perf_counter() - self.started
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"surgicalai web was not ready in {timeout} s:\n{self.output()[-3000:]}")

    def _printed_token(self) -> str | None:
        for line in self.output().splitlines():
            if "?token=" in line:
                return line.rsplit("?token=", 1)[1].strip()
        return None

    def get(self, path: str, cookie: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path.lstrip("/"))
        if cookie:
            request.add_header("Cookie", cookie)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def scene(self) -> dict:
        query = f"?token={self.token}" if self.token else ""
        status, body = self.get("api/scene" + query)
        assert status == 200, body
        return json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def make_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='surgicalai-chromium-')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    return driver


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def text_of(driver, element_id: str) -> str:
    return driver.execute_script("const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
                                 element_id)


def set_state(driver, **values) -> None:
    """Set trame state from the page, as a select or field in it would."""
    driver.execute_script("for (const [k, v] of Object.entries(arguments[0])) window.trame.state.set(k, v);", values)


def click(driver, element_id: str) -> None:
    element = driver.find_element("id", element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


# JS: the view images (slice views have a slider in their grid cell, the 3-D view has none)
VIEW_IMAGES_JS = """
return Array.from(document.querySelectorAll('.layout-grid-item')).map(cell => {
  const img = cell.querySelector('img.image-display-area');
  return img ? {three_d: !cell.querySelector('.v-slider'), w: img.naturalWidth, h: img.naturalHeight,
                src: img.src} : null; }).filter(Boolean);
"""


def view_image(driver, three_d: bool):
    """The <img> element of the 3-D view or of the first slice view."""
    cells = driver.find_elements("css selector", ".layout-grid-item")
    for cell in cells:
        if not cell.find_elements("css selector", "img.image-display-area"):
            continue
        is_3d = not cell.find_elements("css selector", ".v-slider")
        if is_3d == three_d:
            return cell.find_element("css selector", "img.image-display-area")
    raise AssertionError("view not found")


def element_pixels(element) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"))


# JS: note the time of the first real input event on a view (a wheel step, or a move with a button held)
# and of the first new frame the view shows after it: the response time the user sees.
ARM_JS = """
const [img, kind] = arguments;
const probe = {t_in: null, t_out: null};
window.__saiProbe = probe;
const area = img.closest('.remote-controlled-area');
const onInput = (e) => {
  if (probe.t_in === null && (e.type === 'wheel' || e.buttons)) probe.t_in = performance.now();
};
area.addEventListener(kind === 'wheel' ? 'wheel' : 'pointermove', onInput, {capture: true});
const before = img.src;
new MutationObserver((_m, observer) => {
  if (probe.t_in !== null && img.src !== before) { probe.t_out = performance.now(); observer.disconnect(); }
}).observe(img, {attributes: true, attributeFilter: ['src']});
"""


def response_ms(driver, img, kind: str) -> float:
    """Milliseconds from a real (WebDriver) wheel step or drag on a view to its next frame; -1 if none came."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    driver.execute_script(ARM_JS, img, kind)
    actions = ActionChains(driver)
    if kind == "wheel":
        actions.scroll_from_origin(ScrollOrigin.from_element(img), 0, 120)
    else:
        actions.move_to_element(img).click_and_hold().move_by_offset(20, 0).move_by_offset(20, 5).release()
    actions.perform()
    try:
        wait_for(lambda: driver.execute_script("return window.__saiProbe.t_out"), 10, interval=0.02)
    except AssertionError:
        return -1.0
    probe = driver.execute_script("return window.__saiProbe")
    return round(probe["t_out"] - probe["t_in"], 1)
