"""The daemon's status page in a real browser (Debian's chromium, headless): it loads, its script
renders what the daemon sees from live /status data, one panel per camera (faces with their
scores as bars, the last hour's expressions as a stacked strip), its console stays free of
errors (a style the CSP refused would be one), it fetches nothing from anywhere but the daemon,
and each camera's preview appears only with `preview = true`."""

from __future__ import annotations

import json
import math
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
IMAGES = (
    "[...document.images].map(i => [i.closest('section').dataset.camera,"
    " i.naturalWidth, i.naturalHeight])"
)
PANELS = "[...document.querySelectorAll('section[data-camera]')].map(s => s.dataset.camera)"
# Each face row of a camera's panel as the page shows it: the bars' widths as a share of their
# track, measured from the layout (what a person sees), and their colours as computed.
FACES = """[...document.querySelectorAll(`section[data-camera=${CAMERA}] .faces tr`)].map(r => ({
  track: r.cells[0].textContent,
  label: r.querySelector('.expression').textContent,
  box: r.querySelector('.box').textContent,
  top: [...r.querySelectorAll('.score.top')].map(s => s.dataset.label),
  scores: [...r.querySelectorAll('.score')].map(s => ({
    label: s.dataset.label,
    text: s.querySelector('.label').textContent,
    pct: s.querySelector('.pct').textContent,
    share: s.querySelector('.fill').getBoundingClientRect().width
         / s.querySelector('.bar').getBoundingClientRect().width,
    colour: getComputedStyle(s.querySelector('.fill')).backgroundColor,
  })),
}))"""
# A camera's timeline strip: each minute's segments, bottom first, with their drawn height as a
# share of the column's, and the legend's colours.
TIMELINE = """(() => {
  const panel = document.querySelector(`section[data-camera=${CAMERA}]`);
  const strip = panel.querySelector('.strip');
  return {
    end: Number(strip.dataset.end),
    columns: [...strip.children].map(c => [...c.children].map(s => ({
      label: s.dataset.label,
      count: Number(s.dataset.count),
      share: s.getBoundingClientRect().height / c.getBoundingClientRect().height,
      colour: getComputedStyle(s).backgroundColor,
    }))),
    legend: Object.fromEntries([...panel.querySelectorAll('.legend li')].map(
      li => [li.textContent, getComputedStyle(li.querySelector('.swatch')).backgroundColor])),
    marks: [...panel.querySelectorAll('.marks span')].map(s => s.textContent),
  };
})()"""


def text(page, selector: str) -> str:
    return page.evaluate(f"document.querySelector({selector!r}).textContent")


def visible(page, selector: str) -> bool:
    return page.evaluate(f"document.querySelector({selector!r}).checkVisibility()")


def faces(page, camera: str) -> list[dict]:
    return page.evaluate(FACES.replace("${CAMERA}", json.dumps(camera)))


def timeline(page, camera: str) -> dict:
    return page.evaluate(TIMELINE.replace("${CAMERA}", json.dumps(camera)))


def status(daemon) -> dict:
    code, body = get(daemon.url + "/status")
    assert code == 200, body
    return json.loads(body)


def js_round(x: float) -> int:
    return math.floor(x + 0.5)  # Math.round: halves go up (Python's round goes to even)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    browser = Browser(tmp_path_factory.mktemp("browser"))
    yield browser
    browser.close()


def assert_shows_the_face(page, daemon, event_log, camera: str = "default") -> None:
    """The camera's panel shows a face that camera tracked: a track id from its events in the
    log, one of the model's labels with its scores, and a box inside the 640x480 frame. The page
    the server sends has no panel at all, so only the script, from /status, can have put it
    there."""
    labels = daemon.service.model.manifest.labels
    panel = f"section[data-camera={camera!r}]"
    rows = []

    def face_rows():
        tracked = {
            str(e["track"])
            for e in events_of(event_log)
            if e["type"] == "face_appeared" and e["camera"] == camera
        }
        rows[:] = [r for r in faces(page, camera) if r["track"] in tracked and r["label"] in labels]
        return rows

    assert wait_for(face_rows, 30), (page.evaluate(PANELS), faces(page, camera))
    face = rows[0]
    assert [s["label"] for s in face["scores"]] == list(labels)
    assert all(0 <= s["share"] <= 1 for s in face["scores"])
    x, y, w, h = (int(v) for v in face["box"].split(", "))
    assert 0 <= x < x + w <= 640 and 0 <= y < y + h <= 480
    assert visible(page, "#live") and not visible(page, f"{panel} .no-faces")
    assert text(page, "#health") == "ok" and text(page, "#model") == "edge on cpu (bundle edge)"
    # What "auto", the default, runs on the bundled model:
    assert text(page, f"{panel} .detector") == "blazeface-track"
    assert "face_appeared: " in text(page, f"{panel} .event-counts")
    assert f"face_appeared · track {face['track']}" in text(page, f"{panel} .recent-events")
    assert text(page, f"{panel} .source").startswith("streaming")
    assert wait_for(lambda: float(text(page, f"{panel} .fps")) > 0, 5)  # two frames make a rate
    shown = text(page, f"{panel} .source")  # frames read so far: it must go on changing, live
    assert wait_for(lambda: text(page, f"{panel} .source") != shown, 5)


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
    assert page.evaluate(PANELS) == ["default"]
    assert page.evaluate(IMAGES) == [] and not visible(page, "section .preview")
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
    assert wait_for(lambda: page.evaluate(IMAGES) == [["default", 640, 480]], 10)
    assert page.evaluate("location.href") == daemon.url + "/"  # the token left the address
    assert daemon.url + "/preview.jpg?camera=default" in page.requested_urls()
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
    assert wait_for(lambda: visible(page, "#login"), 10) and not visible(page, "#live")
    page.evaluate(
        f"document.getElementById('token').value = {TOKEN!r};"
        "document.getElementById('login').requestSubmit()"
    )
    assert_shows_the_face(page, daemon, tmp_path / "events.jsonl")
    assert not visible(page, "#login")
    errors = page.console_errors()  # the browser logs the one refused request, nothing else
    assert len(errors) == 1 and "401" in errors[0], errors


def cameras_config(path, video, events, names) -> None:
    """A config with a [cameras.NAME] table per name, each on the test video, preview on."""
    tables = "".join(
        f'[cameras.{name}]\nsource = {{ uri = "{video}", loop = true }}\n' for name in names
    )
    path.write_text(
        f'{tables}[outputs.jsonl]\npath = "{events}"\n'
        "[events]\nsummary_interval = 1\n[server]\nport = 0\npreview = true\n"
    )


def test_two_cameras_get_a_panel_each_with_their_own_faces_and_preview(
    browser, tmp_path, slow_face_video, run_daemon
):
    config_file, events = tmp_path / "edgefer.toml", tmp_path / "events.jsonl"
    cameras_config(config_file, slow_face_video, events, ["a", "b"])
    daemon = run_daemon(load_config(config_file, environ={}), config_file)
    page = browser.open(daemon.url + "/")
    for camera in ("a", "b"):
        assert_shows_the_face(page, daemon, events, camera)
    assert page.evaluate(PANELS) == ["a", "b"]
    shown = status(daemon)
    assert set(shown["cameras"]) == {"a", "b"} and shown["fps"] > 0
    assert wait_for(lambda: sorted(page.evaluate(IMAGES)) == [["a", 640, 480], ["b", 640, 480]])
    urls = page.requested_urls()
    assert {f"{daemon.url}/preview.jpg?camera={c}" for c in "ab"} <= set(urls)
    assert page.console_errors() == []
    assert_only_local(page, daemon)

    # A reload that drops camera b: its panel goes; a's stays the same element (keyed by name).
    page.evaluate("document.querySelector('section[data-camera=a]').keep = true")
    cameras_config(config_file, slow_face_video, events, ["a"])
    daemon.service.reload_requested.set()
    assert wait_for(lambda: page.evaluate(PANELS) == ["a"], 10), page.evaluate(PANELS)
    assert page.evaluate("document.querySelector('section[data-camera=a]').keep")
    assert wait_for(lambda: page.evaluate(IMAGES) == [["a", 640, 480]], 5)


def test_each_face_shows_its_seven_scores_as_bars_as_wide_as_the_scores(
    browser, config_file, run_daemon
):
    # Tracks that stay open without frames: once the capture stops, the face's scores hold
    # still, and the page and /status can be compared to the pixel.
    config = load_config(config_file, ["tracking.lost_after=600"], environ={})
    daemon = run_daemon(config, config_file)
    page = browser.open(daemon.url + "/")
    assert wait_for(lambda: faces(page, "default"), 30)
    daemon.service.cameras["default"].capture.stop()

    tracks, shown = {}, []

    def same_as_status():
        tracks.clear()
        tracks.update((str(t["track"]), t) for t in status(daemon)["cameras"]["default"]["tracks"])
        shown[:] = faces(page, "default")
        return (
            tracks
            and sorted(tracks) == sorted(f["track"] for f in shown)
            and all(
                abs(bar["share"] - tracks[f["track"]]["scores"].get(bar["label"], -1)) < 0.002
                for f in shown
                for bar in f["scores"]
            )
        )

    # Retried until the page has polled after the last frame; a bar that is not its score's
    # width (to a quarter of a pixel of 120) never gets there.
    assert wait_for(same_as_status, 10), (tracks, shown)
    legend = timeline(page, "default")["legend"]
    for face in shown:
        scores = tracks[face["track"]]["scores"]
        assert [s["label"] for s in face["scores"]] == list(scores)  # the model's order
        for bar in face["scores"]:
            assert bar["text"] == bar["label"]
            assert bar["pct"] == f"{js_round(scores[bar['label']] * 100)}%"
            assert bar["colour"] == legend[bar["label"]]  # the timeline's colour for the label
        assert face["top"] == [max(scores, key=scores.get)]
        assert face["label"] == tracks[face["track"]]["label"]
    assert page.console_errors() == []


def test_the_timeline_stacks_the_last_hour_by_minute_as_status_counts_it(
    browser, config_file, run_daemon
):
    daemon = run_daemon(load_config(config_file, environ={}), config_file)
    page = browser.open(daemon.url + "/")
    assert wait_for(lambda: faces(page, "default"), 30)
    # The video's one face is always happy: the daemon's timeline also gets a second face's
    # frames, sad and surprised, in the current minute, so there is a stack to draw.
    counter = daemon.service.cameras["default"].timeline
    others = [counter.labels.index("sad")] * 20 + [counter.labels.index("surprise")] * 10

    def consistent():
        """The page's strip, with /status read just before and just after it, all three in the
        same minute, the newest minute seen by both: within a minute counts only grow, so the
        page's newest counts lie between the two reads'."""
        before = status(daemon)["cameras"]["default"]["timeline"]
        if sum(n > 0 for n in before["counts"][-1]) < 3:  # at the start, or in a new minute
            counter.add(others)
            return False
        shown = timeline(page, "default")
        after = status(daemon)["cameras"]["default"]["timeline"]
        if not before["end"] == shown["end"] == after["end"]:
            return False
        newest = {s["label"]: s["count"] for s in shown["columns"][-1]}
        labels = after["labels"]
        low, high = before["counts"][-1], after["counts"][-1]
        found[:] = [shown, after]
        return all(lo <= newest.get(label, 0) <= hi for label, lo, hi in zip(labels, low, high))

    found = []
    assert wait_for(consistent, 10), found
    shown, counted = found
    labels, legend = counted["labels"], shown["legend"]
    assert list(legend) == labels and len(set(legend.values())) == len(labels)
    assert shown["marks"][0] == "-60 min" and shown["marks"][-1] == "now"
    assert len(shown["columns"]) == len(counted["counts"]) == 60

    newest = shown["columns"][-1]
    assert len(newest) >= 3, newest  # happy, sad and surprise at least
    total = sum(s["count"] for s in newest)
    assert [s["label"] for s in newest] == [  # in the model's order (drawn bottom up), none empty
        label for label in labels if any(s["label"] == label for s in newest)
    ]
    for segment in newest:
        assert segment["count"] > 0
        assert abs(segment["share"] - segment["count"] / total) < 0.02  # a pixel of 60
        assert segment["colour"] == legend[segment["label"]]
    assert abs(sum(s["share"] for s in newest) - 1) < 0.02  # stacked to the full height

    for column, counts in zip(shown["columns"][:-1], counted["counts"][:-1]):  # complete minutes
        assert {s["label"]: s["count"] for s in column} == {
            label: n for label, n in zip(labels, counts) if n
        }
    assert sum(not column for column in shown["columns"]) >= 58  # it ran for seconds, not minutes
    # The heights and colours were set through CSSOM, which the CSP allows; a style attribute is
    # refused, and the console would have said so, as it does here.
    assert page.console_errors() == []
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    assert ["Content Security Policy" in e for e in page.console_errors()] == [True]
