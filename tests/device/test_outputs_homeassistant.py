"""Home Assistant MQTT discovery, read back from a real Mosquitto as HA reads it.

HA subscribes to `homeassistant/#`, validates each config against its platform's schema, then
subscribes to the entity's state topic and renders `value_template` (Jinja, with the JSON
payload as `value_json`) into the state. `HomeAssistantView` does the same with the retained
messages a subscriber that comes after the daemon gets, as HA does after its own restart.

The schema (what is required, and every key HA documents, so a misspelt key that HA would
silently ignore fails here) is transcribed from HA's pages:
https://www.home-assistant.io/integrations/mqtt/ (discovery topic, availability, device, origin),
https://www.home-assistant.io/integrations/sensor.mqtt/ and
https://www.home-assistant.io/integrations/binary_sensor.mqtt/.
"""

from __future__ import annotations

import json
import re
import socket

import jinja2
import pytest

from edgefer import __version__
from edgefer.device.daemon.config import MqttConfig, load_config
from edgefer.device.daemon.loop import build_sinks
from edgefer.device.daemon.outputs.homeassistant import Cameras
from edgefer.device.daemon.outputs.mqtt import MqttSink
from edgefer.labels import FER7
from tests.device.daemons import mqtt_overrides
from tests.device.mqtt_broker import Subscriber
from tests.polling import wait_for

# HA core's discovery topic matcher (homeassistant/components/mqtt/discovery.py), applied to
# the topic after the discovery prefix.
TOPIC_MATCHER = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
ENTITY_KEYS = {  # every MQTT entity: availability, device, origin and the rest
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "origin", "payload_available", "payload_not_available", "platform", "qos",
    "unique_id",
}  # fmt: skip
PLATFORMS = {  # component: (required keys, its own documented keys)
    "sensor": (
        {"state_topic"},
        {"device_class", "expire_after", "force_update", "last_reset_value_template",
         "options", "suggested_display_precision", "state_class", "state_topic",
         "unit_of_measurement", "value_template"},
    ),
    "binary_sensor": (
        {"state_topic"},
        {"device_class", "expire_after", "force_update", "off_delay", "payload_off",
         "payload_on", "state_topic", "value_template"},
    ),
}  # fmt: skip
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
ONE_CAMERA = Cameras(("default",), FER7, "edge")
ENTITIES_PER_CAMERA = 2 + len(FER7) + 2  # faces, expression, one per label, source, fps


class HomeAssistantView(Subscriber):
    """What HA would make of the broker's retained discovery and state messages."""

    def __init__(self, port: int, prefix: str = "homeassistant"):
        super().__init__(port, f"{prefix}/#")
        self.prefix = prefix
        self.client.subscribe("edgefer/#", qos=1)  # the state topics, as HA subscribes to them

    def latest(self) -> dict[str, bytes]:
        """{topic: newest payload}."""
        with self.lock:
            return {t: p for t, p, _ in self.messages}

    def configs(self) -> dict[str, dict]:
        """{config topic: config}, the ones not retracted (HA deletes on an empty payload)."""
        return {
            t: json.loads(p)
            for t, p in self.latest().items()
            if t.startswith(f"{self.prefix}/") and t.endswith("/config") and p
        }

    def states(self) -> dict[str, str | bool | None]:
        """{unique_id: state}, as HA renders it: a sensor's text, a binary sensor's True/False;
        None for `unknown` (the template rendered "None") or no state message yet."""
        latest, states = self.latest(), {}
        for topic, config in self.configs().items():
            payload = latest.get(config["state_topic"])
            value = None if payload is None else render(config["value_template"], payload)
            if TOPIC_MATCHER.match(topic.removeprefix(f"{self.prefix}/"))["component"] == (
                "binary_sensor"
            ):
                value = {config["payload_on"]: True, config["payload_off"]: False}.get(value)
            states[config["unique_id"]] = None if value == "None" else value
        return states


def render(template: str, payload: bytes) -> str:
    """HA's `value_template`: Jinja with the payload parsed as `value_json`."""
    return jinja2.Environment().from_string(template).render(value_json=json.loads(payload))


def mqtt_config(broker, tmp_path, **kw) -> MqttConfig:
    return MqttConfig(
        host="127.0.0.1",
        port=broker.port,
        spool_dir=tmp_path / "spool",
        homeassistant=True,
        **kw,
    )


def started(config: MqttConfig, cameras: Cameras = ONE_CAMERA) -> MqttSink:
    sink = MqttSink(config, cameras)
    sink.start()
    assert wait_for(sink.connected.is_set, 10)
    return sink


def announced(broker, count: int = ENTITIES_PER_CAMERA) -> HomeAssistantView:
    """A view holding `count` configs: retained ones, or live ones if it subscribed while the
    sink was still publishing them."""
    view = HomeAssistantView(broker.port)
    assert wait_for(lambda: len(view.configs()) == count, 10), sorted(view.configs())
    return view


def event(kind: str, **fields) -> dict:
    return {"id": f"id-{kind}", "camera": "default", "type": kind, **fields}


def test_every_config_has_what_home_assistant_requires(broker, tmp_path):
    sink = started(mqtt_config(broker, tmp_path))
    announced(broker).stop()  # all on the broker now
    view = announced(broker)  # as HA after its restart
    node = f"edgefer_{re.sub(r'[^a-zA-Z0-9_-]', '_', socket.gethostname())}"
    with view.lock:
        retained = {t: r for t, _, r in view.messages if t.endswith("/config")}
    assert all(retained.values()), "discovery configs must be retained"
    components = []
    for topic, config in view.configs().items():
        match = TOPIC_MATCHER.fullmatch(topic.removeprefix("homeassistant/"))
        assert match and match["node_id"] == node, topic
        required, own = PLATFORMS[match["component"]]
        components.append(match["component"])
        assert required <= set(config), (topic, required - set(config))
        assert set(config) <= ENTITY_KEYS | own, (topic, set(config) - ENTITY_KEYS - own)
        assert config["state_topic"] == "edgefer/default/state"
        assert config["unique_id"].startswith(f"{node}_default_")
        assert config["availability_topic"] == "edgefer/available"
        assert (config["payload_available"], config["payload_not_available"]) == (
            "online",
            "offline",
        )
        device = config["device"]
        assert set(device) <= DEVICE_KEYS
        assert device["identifiers"] == [f"{node}_default"]  # one device: the camera
        assert device["model"] == "edge" and device["sw_version"] == __version__
        assert config["origin"]["name"] == "edgefer" and set(config["origin"]) <= ORIGIN_KEYS
        if match["component"] == "binary_sensor":
            assert {"payload_on", "payload_off", "value_template"} <= set(config)
        if config.get("device_class") == "enum":
            assert config["options"] == list(FER7)
    assert sorted(components) == ["binary_sensor"] * (len(FER7) + 1) + ["sensor"] * 3
    unique_ids = [c["unique_id"] for c in view.configs().values()]
    assert len(set(unique_ids)) == len(unique_ids)
    sink.close()
    view.stop()


def test_the_state_topics_carry_what_the_entities_show(broker, tmp_path):
    sink = started(mqtt_config(broker, tmp_path))
    for e in [
        event("source_up", source="0"),
        event("face_appeared", track=1, label="happy"),
        event("face_appeared", track=2, label="sad"),
        event("expression_changed", track=2, label="happy", previous="sad"),
        event("face_appeared", track=3, label="angry"),
        event("summary", fps=12.5),
    ]:
        sink.send(e)
    view = announced(broker)
    node = next(iter(view.configs().values()))["device"]["identifiers"][0]
    expected = {
        f"{node}_faces": "3",
        f"{node}_expression": "happy",  # 2 happy, 1 angry
        f"{node}_source": True,
        f"{node}_fps": "12.5",
        **{f"{node}_expression_{label}": label in ("happy", "angry") for label in FER7},
    }
    assert wait_for(lambda: view.states() == expected, 10), view.states()
    for e in [
        event("face_left", track=1),
        event("face_left", track=2),
        event("face_left", track=3),
        event("source_down", source="0", cause="gone"),
    ]:
        sink.send(e)
    expected |= {f"{node}_faces": "0", f"{node}_expression": None, f"{node}_source": False}
    expected |= {f"{node}_expression_{label}": False for label in FER7}
    assert wait_for(lambda: view.states() == expected, 10), view.states()
    sink.close()
    view.stop()
    late = announced(broker)  # retained: HA restarted now would show the same
    assert wait_for(lambda: late.states() == expected, 10), late.states()
    late.stop()


def test_nothing_is_known_before_the_first_events(broker, tmp_path):
    """Source and FPS unknown (not "offline", not 0) until an event says; nobody in view."""
    sink = started(mqtt_config(broker, tmp_path))
    view = announced(broker)
    assert wait_for(lambda: "edgefer/default/state" in view.latest(), 10)
    states = {k.rpartition("default_")[2]: v for k, v in view.states().items()}
    assert states["faces"] == "0"
    assert states["source"] is None and states["fps"] is None and states["expression"] is None
    sink.close()
    view.stop()


def test_unique_ids_and_devices_are_the_same_after_a_restart(broker, tmp_path):
    def identities(view):
        return {
            t: (c["unique_id"], c["device"]["identifiers"], c["state_topic"])
            for t, c in view.configs().items()
        }

    sink = started(mqtt_config(broker, tmp_path))
    first = announced(broker)
    before = identities(first)
    sink.close()
    first.stop()
    live = HomeAssistantView(broker.port)  # the first run's configs come retained, then

    def republished():  # the restarted daemon's, live
        with live.lock:
            return {t for t, _, retained in live.messages if t in before and not retained}

    sink = started(mqtt_config(broker, tmp_path))
    assert wait_for(lambda: republished() == set(before), 10)
    assert identities(live) == before
    sink.close()
    live.stop()


def test_a_client_id_names_the_node(broker, tmp_path):
    """Set, it is the node (so two daemons on one host stay two devices in HA)."""
    sink = started(mqtt_config(broker, tmp_path, client_id="kitchen.cam"))
    view = announced(broker)
    config = view.configs()["homeassistant/sensor/edgefer_kitchen_cam/default_faces/config"]
    assert config["unique_id"] == "edgefer_kitchen_cam_default_faces"
    assert config["device"]["name"] == "kitchen.cam default"
    sink.close()
    view.stop()


def test_a_camera_removed_between_two_starts_is_retracted(broker, tmp_path):
    sink = started(mqtt_config(broker, tmp_path), Cameras(("default", "porch"), FER7, "edge"))
    sink.send(event("face_appeared", track=1, label="happy", camera="porch"))
    before = announced(broker, 2 * ENTITIES_PER_CAMERA)
    porch = {t for t, c in before.configs().items() if c["state_topic"] == "edgefer/porch/state"}
    assert len(porch) == ENTITIES_PER_CAMERA
    assert wait_for(lambda: before.states()[f"{_node(before)}_porch_faces"] == "1")
    sink.close()
    sink = started(mqtt_config(broker, tmp_path))  # the porch camera is gone from the config
    assert wait_for(lambda: all(before.latest()[t] == b"" for t in porch), 10)
    assert wait_for(lambda: before.latest()["edgefer/porch/state"] == b"", 10)
    assert all(before.latest()[t] for t in before.configs() if t not in porch)
    sink.close()
    before.stop()
    after = announced(broker)  # nothing of the porch left on the broker
    assert not porch & set(after.latest()) and "edgefer/porch/state" not in after.latest()
    after.stop()


def test_an_expression_the_new_model_lacks_is_retracted(broker, tmp_path):
    sink = started(mqtt_config(broker, tmp_path))
    announced(broker).stop()
    sink.close()
    sink = started(mqtt_config(broker, tmp_path), Cameras(("default",), ("sad", "fear"), "x"))
    view = announced(broker, 2 + 2 + 2)
    assert sorted(c["name"] for c in view.configs().values()) == [
        "Camera",
        "Expression",
        "FPS",
        "Faces",
        "Fear",
        "Sad",
    ]
    sink.close()
    view.stop()


def test_configs_and_states_are_published_again_after_a_reconnect(broker, tmp_path):
    """The broker runs without persistence: restarted, it holds nothing until the daemon
    republishes, which it must do for HA (or HA restarted meanwhile) to see the truth, though
    nothing changed meanwhile."""
    sink = started(mqtt_config(broker, tmp_path))
    sink.send(event("face_appeared", track=1, label="fear"))
    sink.send(event("summary", fps=7.0))
    view = announced(broker)
    camera = f"{_node(view)}_default"
    wanted = {f"{camera}_faces": "1", f"{camera}_expression": "fear", f"{camera}_fps": "7.0"}
    assert wait_for(lambda: wanted.items() <= view.states().items(), 10), view.states()
    view.stop()
    broker.kill()
    assert wait_for(lambda: not sink.connected.is_set(), 10)
    broker.start()
    assert wait_for(sink.connected.is_set, 15)
    view = announced(broker)
    assert wait_for(lambda: wanted.items() <= view.states().items(), 10), view.states()
    sink.close()
    view.stop()


def test_the_daemon_announces_its_camera_and_what_it_sees(
    config_file, tmp_path, broker, run_daemon
):
    """The real daemon on the test video: the bundle's labels become the entities, and the
    face in the video, the source and the FPS (summaries every second) their states."""
    overrides = [*mqtt_overrides(broker, tmp_path), "outputs.mqtt.homeassistant=true"]
    daemon = run_daemon(load_config(config_file, overrides, environ={}), config_file)
    labels = daemon.service.model.manifest.labels
    view = HomeAssistantView(broker.port)
    assert wait_for(lambda: len(view.configs()) == 2 + len(labels) + 2, 30), view.configs()
    node = _node(view)
    camera = f"{node}_default"
    expression = view.configs()[f"homeassistant/sensor/{node}/default_expression/config"]
    assert expression["options"] == list(labels)
    assert expression["device"]["model"] == daemon.service.bundle

    def showing_the_face() -> bool:
        states = view.states()
        up, fps = states[f"{camera}_source"], states[f"{camera}_fps"]
        return states[f"{camera}_faces"] == "1" and up is True and fps not in (None, "0.0")

    assert wait_for(showing_the_face, 30), view.states()
    assert view.states()[f"{camera}_expression"] in labels
    view.stop()


def test_each_camera_is_a_device_with_its_own_state(broker, tmp_path):
    """Two cameras: two devices, each entity reading its own camera's state topic, and an
    event of one camera changes that camera's entities only."""
    sink = started(mqtt_config(broker, tmp_path), Cameras(("door", "hall"), FER7, "edge"))
    view = announced(broker, 2 * ENTITIES_PER_CAMERA)
    node = _node(view)
    devices = {tuple(c["device"]["identifiers"]) for c in view.configs().values()}
    assert devices == {(f"{node}_door",), (f"{node}_hall",)}
    for config in view.configs().values():
        camera = config["device"]["identifiers"][0].removeprefix(f"{node}_")
        assert config["state_topic"] == f"edgefer/{camera}/state"
        assert config["unique_id"].startswith(f"{node}_{camera}_")
    sink.send(event("face_appeared", track=1, label="happy", camera="hall"))
    wanted = {f"{node}_hall_faces": "1", f"{node}_hall_expression_happy": True}
    assert wait_for(lambda: wanted.items() <= view.states().items(), 10), view.states()
    assert view.states()[f"{node}_door_faces"] == "0"
    assert view.states()[f"{node}_door_expression_happy"] is False
    sink.close()
    view.stop()


def test_without_homeassistant_nothing_is_announced(broker, tmp_path):
    config = MqttConfig(host="127.0.0.1", port=broker.port, spool_dir=tmp_path / "spool")
    sink = MqttSink(config, ONE_CAMERA)
    sink.start()
    view = HomeAssistantView(broker.port)
    sink.send(event("face_appeared", track=1, label="happy"))
    assert wait_for(lambda: view.events(), 10)
    assert not view.configs() and "edgefer/default/state" not in view.latest()
    sink.close()
    view.stop()


def test_the_mqtt_sink_is_rebuilt_when_what_it_announces_changes(tmp_path):
    """A reload that changes the bundle's labels must re-announce: same cameras, same sink."""
    overrides = ["outputs.mqtt.host=127.0.0.1", "outputs.mqtt.port=1"]
    overrides += [f"outputs.mqtt.spool_dir={tmp_path}", "outputs.mqtt.homeassistant=true"]
    config = load_config(None, overrides, environ={})
    first = build_sinks(config, cameras=ONE_CAMERA)
    kept = build_sinks(config, first, Cameras(("default",), FER7, "edge"))
    assert kept["mqtt"] is first["mqtt"]
    other = build_sinks(config, first, Cameras(("default",), ("sad", "fear"), "edge"))
    assert other["mqtt"][1] is not first["mqtt"][1]
    for sinks in (first, other):
        sinks["mqtt"][1].close()


def test_a_camera_added_on_reload_leaves_the_others_states_as_they_were(broker, tmp_path):
    """Adding the hall rebuilds the sink (new entities to announce); the door's camera was up
    and its face in view before, and no new event will say so again: the new sink must carry
    that over, not announce the door as unknown with nobody in view."""
    config = load_config(
        None,
        [*mqtt_overrides(broker, tmp_path), "outputs.mqtt.homeassistant=true"],
        environ={},
    )
    first = build_sinks(config, cameras=Cameras(("door",), FER7, "edge"))
    first["mqtt"][1].start()
    first["mqtt"][1].send(event("source_up", camera="door"))
    first["mqtt"][1].send(event("face_appeared", track=1, label="sad", camera="door"))
    second = build_sinks(config, first, Cameras(("door", "hall"), FER7, "edge"))
    first["mqtt"][1].close()
    second["mqtt"][1].start()
    view = announced(broker, 2 * ENTITIES_PER_CAMERA)
    door = f"{_node(view)}_door"
    wanted = {f"{door}_source": True, f"{door}_faces": "1", f"{door}_expression": "sad"}
    assert wait_for(lambda: wanted.items() <= view.states().items(), 10), view.states()
    second["mqtt"][1].close()
    view.stop()


@pytest.mark.parametrize("prefix", ["", "home/#", "home/+/x"])
def test_a_homeassistant_prefix_that_cannot_be_published_to_is_one_line(prefix):
    from edgefer.errors import EdgeferError

    with pytest.raises(EdgeferError) as err:
        load_config(
            None,
            ["outputs.mqtt.host=h", f'outputs.mqtt.homeassistant_prefix="{prefix}"'],
            environ={},
        )
    assert "outputs.mqtt.homeassistant_prefix" in str(err.value)
    assert "\n" not in str(err.value)


def _node(view: HomeAssistantView) -> str:
    """The node id the view's configs were published under."""
    topic = next(iter(view.configs()))
    return TOPIC_MATCHER.match(topic.removeprefix("homeassistant/"))["node_id"]
