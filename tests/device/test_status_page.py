"""The daemon's status page in a real browser (Debian's chromium, headless): it loads, its script
renders what the daemon sees from live /status data, its console stays free of errors, it
fetches nothing from anywhere but the daemon, and the camera preview appears only with
`preview = true`."""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from edgefer.device.daemon.config import load_config
from tests.device.browser import Browser
from tests.device.daemons import events_of, get
from tests.polling import wait_for

TOKEN = "t0k-for-the-page"
TRACK_ROWS = (
    "[...document.querySelectorAll('#tracks tr')].map(r => [...r.cells].map(c => c.textContent))"
)
IMAGES = "[...document.images].map(i => [i.id, i.naturalWidth, i.naturalHeight])"


def text(page, element_id: str) -> str:
    return page.evaluate(f"document.getElementById({element_id!r}).textContent")


def visible(page, element_id: str) -> bool:
    return page.evaluate(f"document.getElementById({element_id!r}).checkVisibility()")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    browser = Browser(tmp_path_factory.mktemp("browser"))
    yield browser
    browser.close()


def assert_shows_the_face(page, daemon, event_log) -> None:
    """The page's table shows a face the daemon tracked: a track id from its event log, one of
    the model's labels with its score, and a box inside the 640x480 frame. The table is empty in
    the HTML the server sends, so only the script, from /status, can have put it there."""
    labels = set(daemon.service.pipeline.labels)

    rows = []

    def face_rows():
        tracked = {str(e["track"]) for e in events_of(event_log) if e["type"] == "face_appeared"}
        shown = page.evaluate(TRACK_ROWS)
        rows[:] = [row for row in shown if row[0] in tracked and row[1] in labels]
        return rows

    assert wait_for(face_rows, 30), page.evaluate(TRACK_ROWS)
    track, _, score, box = rows[0]
    assert 0 < float(score) <= 1
    x, y, w, h = (int(v) for v in box.split(", "))
    assert 0 <= x < x + w <= 640 and 0 <= y < y + h <= 480
    assert visible(page, "live") and not visible(page, "no-faces")
    assert "face_appeared: " in text(page, "event-counts")
    assert f"face_appeared · track {track}" in text(page, "recent-events")
    assert text(page, "source").startswith("streaming") and text(page, "model") == (
        "edge on cpu, haar face detector"
    )
    assert wait_for(lambda: float(text(page, "fps")) > 0, 5)  # two frames make a rate
    shown = text(page, "source")  # frames read so far: it must go on changing, live
    assert wait_for(lambda: text(page, "source") != shown, 5)


def assert_only_local(page, daemon) -> None:
    urls = page.requested_urls()
    assert daemon.url + "/status" in urls
    assert all(
        u.startswith(daemon.url + "/") or urlsplit(u).scheme in ("blob", "data") for u in urls
    ), urls


def test_the_page_shows_live_detections_and_no_preview_by_default(
    browser, config_file, tmp_path, run_daemon
):
    daemon = run_daemon(load_config(config_file, environ={}), config_file)
    page = browser.open(daemon.url + "/")
    assert_shows_the_face(page, daemon, tmp_path / "events.jsonl")
    assert page.evaluate(IMAGES) == [] and not visible(page, "camera")
    assert get(daemon.url + "/preview.jpg")[0] == 404
    assert page.console_errors() == []
    assert_only_local(page, daemon)


def test_with_a_token_and_preview_on_the_page_shows_the_annotated_camera(
    browser, config_file, tmp_path, run_daemon
):
    config = load_config(
        config_file, ["server.preview=true"], environ={"EDGEFER_SERVER__TOKEN": TOKEN}
    )
    daemon = run_daemon(config, config_file)
    page = browser.open(f"{daemon.url}/#token={TOKEN}")
    assert_shows_the_face(page, daemon, tmp_path / "events.jsonl")
    assert wait_for(lambda: page.evaluate(IMAGES) == [["preview", 640, 480]], 10)
    assert page.evaluate("location.href") == daemon.url + "/"  # the token left the address
    assert page.console_errors() == []
    assert_only_local(page, daemon)

    assert get(daemon.url + "/preview.jpg")[0] == 401
    request = urllib.request.Request(
        daemon.url + "/preview.jpg", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
    box_green = (image[..., 1] > 150) & (image[..., 0] < 90) & (image[..., 2] < 90)
    assert box_green.sum() > 400  # the face's box is drawn (the video itself has no such green)


def test_without_the_token_the_page_asks_for_it_and_then_shows_the_face(
    browser, config_file, tmp_path, run_daemon
):
    config = load_config(config_file, environ={"EDGEFER_SERVER__TOKEN": TOKEN})
    daemon = run_daemon(config, config_file)
    page = browser.open(daemon.url + "/")
    assert wait_for(lambda: visible(page, "login"), 10) and not visible(page, "live")
    page.evaluate(
        f"document.getElementById('token').value = {TOKEN!r};"
        "document.getElementById('login').requestSubmit()"
    )
    assert_shows_the_face(page, daemon, tmp_path / "events.jsonl")
    assert not visible(page, "login")
    errors = page.console_errors()  # the browser logs the one refused request, nothing else
    assert len(errors) == 1 and "401" in errors[0], errors
