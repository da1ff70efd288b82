"""``surgicalai web`` driven in headless Chromium: the first page, the segmentation story (Apply,
Cancel, Apply, segments, 3-D view), bad input, a hostile upload, two browsers in one session, the
endoscopy story and the response time of the views. Assertions read the page and the server's scene."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from web_support import (
    WebServer,
    click,
    element_pixels,
    make_data_folder,
    make_driver,
    needs_browser,
    response_ms,
    set_state,
    text_of,
    view_image,
    wait_for,
)

pytestmark = [needs_browser, pytest.mark.slow]
TIMINGS: dict = {}
# The targets (first page <= 10 s, views answer <= 150 ms) are asserted where timing is meaningful (a quiet
# machine, benchmarks/bench_web.py sets this); on a shared, overloaded CI runner they are measured and printed.
STRICT = os.environ.get("SURGICALAI_WEB_STRICT_TIMING") == "1"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data_folder(tmp_path_factory.mktemp("webdata"))


@pytest.fixture(scope="module")
def browser():
    driver = make_driver()  # started before the server, so its start-up is not counted as the server's
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(data, browser):
    srv = WebServer(data, extra=("--max-upload-mb", "1"))
    browser.get(srv.url)
    wait_for(lambda: text_of(browser, "sai-case-name").endswith("Sample CT"), 90, what="the sample case")
    wait_for(lambda: view_image(browser, three_d=False).get_attribute("naturalWidth") not in (None, "0"), 90,
             what="a slice image")
    TIMINGS["first_page_s"] = time.perf_counter() - srv.started
    TIMINGS["server_ready_s"] = srv.ready_s
    yield srv
    srv.stop()
    if os.environ.get("SURGICALAI_WEB_TIMINGS"):
        with open(os.environ["SURGICALAI_WEB_TIMINGS"], "w") as f:
            json.dump(TIMINGS, f, indent=1)


def save_screenshot(driver, name: str) -> None:
    """Screenshots for docs/ when asked for (SURGICALAI_WEB_SCREENSHOTS=folder)."""
    folder = os.environ.get("SURGICALAI_WEB_SCREENSHOTS")
    if folder:
        driver.save_screenshot(os.path.join(folder, f"web_{name}.png"))


def open_tool(driver, tool):
    click(driver, f"sai-tool-{tool}")
    wait_for(lambda: driver.find_elements("id", {"CasePanel": "sai-case-panel", "SegmentationPanel": "sai-seg-panel",
                                                 "EndoscopyPanel": "sai-endo-panel"}[tool]), 5, what=tool)


def message(driver) -> tuple[str, bool]:
    el = driver.find_element("id", "sai-message")
    return el.text, el.get_attribute("data-error") == "true"


def test_first_page_shows_the_sample_ct(server, browser):
    scene = server.scene()
    assert [n["name"] for n in scene["nodes"] if n["class"] == "vtkMRMLScalarVolumeNode"] == ["Sample CT"]
    pixels = element_pixels(view_image(browser, three_d=False))
    assert pixels.std() > 20, "the slice view shows no image"
    print(f"first page with the sample CT {TIMINGS['first_page_s']:.1f} s after the server was started")
    save_screenshot(browser, "case")
    assert TIMINGS["first_page_s"] <= 10 or not STRICT


def test_bad_inputs_leave_the_scene_unchanged(server, browser):
    open_tool(browser, "CasePanel")
    before = server.scene()
    for path, expected in (("broken.nii.gz", "Cannot read image"), ("no_series", "DICOM"),
                           ("../etc/passwd", "outside the data folder")):
        set_state(browser, sai_case_path=path)
        click(browser, "sai-load-case")
        wait_for(lambda e=expected: e in message(browser)[0], 10, what=f"the message for {path}")
        assert message(browser)[1], f"{path}: not shown as an error"
    assert server.scene() == before


def test_hostile_and_oversized_uploads_are_refused(server, browser, data):
    before = server.scene()
    outside = data.parent / "evil.nii.gz"
    # what the page's file input hands over, with names and contents a hostile client chooses
    send = ("window.trame.state.set('sai_upload', "
            "new File([new Uint8Array(arguments[1]).fill(arguments[2])], arguments[0]));")
    browser.execute_script(send, "../evil.nii.gz", 64, 31)
    wait_for(lambda: "not a plain file name" in message(browser)[0], 10, what="the traversal refusal")
    assert not outside.exists() and not (data / "uploads").exists()
    browser.execute_script(send, "big.nii.gz", 1_100_000, 31)
    wait_for(lambda: "over the 1.00 MB limit" in message(browser)[0], 20, what="the size refusal")
    browser.execute_script(send, "fake.nrrd", 64, 1)
    wait_for(lambda: "does not contain .nrrd data" in message(browser)[0], 10, what="the type refusal")
    assert server.scene() == before
    assert not (data / "uploads").exists()


def test_views_answer_within_150_ms(server, browser):
    slice_img, three_d_img = view_image(browser, three_d=False), view_image(browser, three_d=True)
    time.sleep(2)  # let the renders that follow the page's start settle
    scroll = [response_ms(browser, slice_img, "wheel") for _ in range(5)]
    rotate = [response_ms(browser, three_d_img, "drag") for _ in range(5)]
    TIMINGS["slice_scroll_ms"] = scroll
    TIMINGS["rotate_3d_ms"] = rotate
    assert min(scroll) > 0 and min(rotate) > 0, f"a view did not answer: {scroll} {rotate}"
    print(f"slice scroll {scroll} ms, 3-D rotation {rotate} ms")
    assert (np.median(scroll) <= 150 and np.median(rotate) <= 150) or not STRICT, f"slow: {scroll} / {rotate} ms"


def test_segmentation_story_with_cancel(server, browser):
    open_tool(browser, "SegmentationPanel")
    assert "abdomen-ct-unet (bundled)" in browser.find_element("id", "sai-seg-panel").text  # the model chosen
    click(browser, "sai-apply")
    wait_for(lambda: browser.find_elements("id", "sai-cancel"), 30, what="the Cancel button")
    click(browser, "sai-cancel")
    status = browser.find_element("id", "sai-job-message")
    wait_for(lambda: status.get_attribute("data-state") in ("cancelled", "done"), 60, what="the cancel")
    assert status.get_attribute("data-state") == "cancelled", status.text
    assert not [n for n in server.scene()["nodes"] if n["class"] == "vtkMRMLSegmentationNode"]

    click(browser, "sai-apply")
    progress = []
    def finished():
        progress.append(float(browser.find_element("id", "sai-progress").get_attribute("aria-valuenow") or 0))
        return status.get_attribute("data-state") == "done"
    wait_for(finished, 120, interval=0.2, what="the segmentation")
    assert any(0 < p < 100 for p in progress), f"no intermediate progress seen: {sorted(set(progress))}"
    rows = wait_for(lambda: browser.find_elements("css selector", ".sai-segment-row"), 10, what="segment rows")
    names = [r.find_elements("tag name", "td")[1].text for r in rows]
    assert "liver" in names and len(rows) == 9
    segs = [n for n in server.scene()["nodes"] if n["class"] == "vtkMRMLSegmentationNode"]
    assert len(segs) == 1 and sorted(segs[0]["segments"]) == sorted(names)

    three_d = view_image(browser, three_d=True)
    wait_for(lambda: three_d.get_attribute("naturalWidth") not in (None, "0"), 20, what="a 3-D frame")
    time.sleep(1.0)
    pixels = element_pixels(three_d).reshape(-1, 3).astype(int)
    assert pixels.std(axis=0).max() > 10, "the 3-D view is uniform"
    colours = [r.get_attribute("data-color") for r in rows]
    liver = np.array([int(colours[names.index("liver")][i:i + 2], 16) for i in (1, 3, 5)])
    # shaded surfaces: some pixel has the liver's hue (direction of its RGB), allowing for lighting
    unit = pixels / np.maximum(np.linalg.norm(pixels, axis=1, keepdims=True), 1)
    assert (unit @ (liver / np.linalg.norm(liver)) > 0.995).sum() > 50, "no liver-coloured surface in 3-D"
    save_screenshot(browser, "segmentation")

    click(browser, "sai-save-seg")
    wait_for(lambda: "results/segmentation.seg.nrrd" in message(browser)[0], 20, what="the save")
    assert (server.data / "results" / "segmentation.seg.nrrd").stat().st_size > 1000


def test_two_browsers_follow_each_other(server, browser, data):
    other = make_driver()
    try:
        other.get(server.url)
        wait_for(lambda: text_of(other, "sai-case-title").startswith("Case:"), 90, what="the second page")
        open_tool(browser, "CasePanel")
        set_state(browser, sai_case_path="case.nii.gz")
        click(browser, "sai-load-case")
        seen = {}

        def both_show_it():  # when each page shows the new case: the delay between them is the sync
            for name, driver in (("self", browser), ("other", other)):
                if name not in seen and text_of(driver, "sai-case-title").endswith("case"):
                    seen[name] = time.perf_counter()
            return len(seen) == 2

        wait_for(both_show_it, 60, interval=0.01, what="the change in both browsers")
        TIMINGS["sync_ms"] = round(1000 * abs(seen["other"] - seen["self"]), 1)
        assert TIMINGS["sync_ms"] < 1000
        assert [n["name"] for n in server.scene()["nodes"] if n["name"] == "case"] == ["case"]
    finally:
        other.quit()


def test_endoscopy_story(server, browser):
    open_tool(browser, "EndoscopyPanel")
    set_state(browser, sai_endo_source="endo/clip.mp4", sai_endo_frames=3)
    click(browser, "sai-endo-run")
    wait_for(lambda: browser.find_elements("id", "sai-endo-depth"), 90, interval=0.2, what="depth maps")
    # the shared depth panel's recorded run: one browser over video, depth and point-cloud sequences
    sequences = {n["name"]: n["items"] for n in server.scene()["nodes"] if n["class"] == "vtkMRMLSequenceNode"}
    assert sequences == {f"clip {role} sequence": 3 for role in ("video", "depth", "pointcloud")}
    assert element_pixels(browser.find_element("id", "sai-endo-depth")).std() > 5
    click(browser, "sai-endo-target")
    wait_for(lambda: message(browser)[0].startswith("Target:"), 30, what="the target")
    click(browser, "sai-endo-register")
    wait_for(lambda: browser.find_elements("id", "sai-endo-quality"), 60, what="registration quality")
    assert "RMS" in text_of(browser, "sai-endo-quality")
    click(browser, "sai-endo-overlay-btn")
    wait_for(lambda: browser.find_elements("id", "sai-endo-overlay"), 30, what="the overlay")
    # the shared panel's fusion: one registered frame is not enough, said in one line
    click(browser, "sai-endo-fuse")
    wait_for(lambda: message(browser)[0].startswith("Fusion needs at least two"), 30, what="fusion's refusal")
    assert message(browser)[1]
    browser.execute_script("document.getElementById('sai-endo-frame').scrollIntoView({block: 'center'});")
    save_screenshot(browser, "endoscopy")


def test_token_is_required_off_loopback(data, browser):
    srv = WebServer(data, host="0.0.0.0", extra=("--no-sample",))
    try:
        assert srv.token and len(srv.token) >= 24
        status, body = srv.get("index.html")
        assert status == 403 and "token" in body
        assert srv.get("api/scene")[0] == 403
        assert srv.get(f"api/scene?token={srv.token[:-1]}x")[0] == 403
        browser.get(srv.url)
        assert "access token is required" in browser.find_element("tag name", "body").text
        browser.get(f"{srv.url}?token={srv.token}")
        wait_for(lambda: text_of(browser, "sai-case-title").startswith("Case:"), 90, what="the page with token")
        assert srv.scene()["nodes"]
    finally:
        srv.stop()
