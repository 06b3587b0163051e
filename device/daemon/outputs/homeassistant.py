"""Home Assistant MQTT discovery: each camera a device in HA, with its entities and their state.

Follows HA's MQTT discovery convention (https://www.home-assistant.io/integrations/mqtt/, "MQTT
Discovery"): one retained JSON config per entity on

    <ha_prefix>/<component>/<node_id>/<camera>_<entity>/config

HA validates each payload as it validates its YAML: the platform's required keys must be there,
unknown ones are ignored, and an empty payload on a config topic removes the entity. The keys
used here are those of the sensor (https://www.home-assistant.io/integrations/sensor.mqtt/) and
binary sensor (https://www.home-assistant.io/integrations/binary_sensor.mqtt/) platforms, plus
the shared `unique_id`, `availability_topic`, `device` and `origin` blocks of the MQTT page.

Per camera, HA gets one device with: faces in view (sensor), the dominant expression (an enum
sensor whose value is the label), one binary sensor per expression ("someone is happy"), the
source (a connectivity binary sensor) and the FPS (sensor). They are available while the
daemon's `<prefix>/available` says "online".

All of a camera's entities read ONE retained JSON state topic, `<prefix>/<camera>/state`, each
through a `value_template` (the pattern of HA's own multi-sensor discovery example). One message
per change is one consistent snapshot: "2 faces" and "someone is happy" never disagree for a
moment, as separate topics published one after another could, and the broker holds one retained
message per camera instead of one per value. Unknown values are JSON null, which the templates
render as "None": HA's MQTT platforms take the payload "None" as the state `unknown`.

This module only builds topics and payloads; `MqttSink` publishes them.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass

from edgefer import __version__
from edgefer.device.daemon.config import MqttConfig
from edgefer.device.daemon.events import SOURCE_STATE

ON, OFF = "ON", "OFF"  # the binary sensors' payload_on / payload_off in the state JSON


@dataclass(frozen=True)
class Cameras:
    """What the daemon runs, as discovery needs it: its cameras' names, the expressions its model tells apart, and the bundle's name (the device model HA shows).
    Compared on reload: a change rebuilds the MQTT sink, whose start retracts what went."""

    names: tuple[str, ...]
    labels: tuple[str, ...]
    model: str


def slug(text: str) -> str:
    """`text` as HA allows it in a discovery topic's node and object ids: [a-zA-Z0-9_-]."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)


def node_name(config: MqttConfig) -> str:
    """Who this daemon is to HA, stable across restarts: the MQTT client id if one is set (the
    broker already insists that it is unique: a second client with it disconnects the first),
    else the host name, which is what the operator knows the device by. paho's generated client
    id (no `client_id` set) is new at every start, and would make every restart a new device.
    Two daemons on one host, or hosts cloned from one image and never renamed, need a
    `client_id` each."""
    return config.client_id or socket.gethostname()


def node_id(config: MqttConfig) -> str:
    """The discovery topics' node id, and the root of every unique id and device identifier:
    prefixed, because unique ids share one namespace with every other MQTT device in HA."""
    return f"edgefer_{slug(node_name(config))}"


def state_topic(config: MqttConfig, camera: str) -> str:
    return f"{config.topic_prefix}/{camera}/state"


def config_filter(config: MqttConfig) -> str:
    """Every discovery config this daemon may have published, in any run."""
    return f"{config.homeassistant_prefix}/+/{node_id(config)}/+/config"


def _entities(labels: tuple[str, ...]) -> list[tuple[str, str, dict]]:
    """(component, key, platform-specific config) per entity of a camera; the key names the
    entity in its topic and unique id, and must never change (HA keys its settings on it)."""
    entities = [
        (
            "sensor",
            "faces",
            {
                "name": "Faces",
                "icon": "mdi:face-recognition",
                "state_class": "measurement",
                "value_template": "{{ value_json.faces }}",
            },
        ),
        (
            "sensor",
            "expression",
            {
                "name": "Expression",
                "icon": "mdi:emoticon-outline",
                "device_class": "enum",
                "options": list(labels),
                "value_template": "{{ value_json.expression }}",
            },
        ),
    ]
    for label in labels:
        entities.append(
            (
                "binary_sensor",
                f"expression_{slug(label)}",
                {
                    "name": label.capitalize(),
                    "payload_on": ON,
                    "payload_off": OFF,
                    "value_template": f"{{{{ value_json.expressions[{json.dumps(label)}] }}}}",
                },
            )
        )
    entities += [
        (
            "binary_sensor",
            "source",
            {
                "name": "Camera",
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "payload_on": SOURCE_STATE["source_up"],
                "payload_off": SOURCE_STATE["source_down"],
                "value_template": "{{ value_json.source }}",
            },
        ),
        (
            "sensor",
            "fps",
            {
                "name": "FPS",
                "entity_category": "diagnostic",
                "state_class": "measurement",
                "unit_of_measurement": "fps",
                "value_template": "{{ value_json.fps }}",
            },
        ),
    ]
    return entities


def discovery_configs(config: MqttConfig, cameras: Cameras) -> dict[str, bytes]:
    """{config topic: retained JSON payload} for every entity of every camera."""
    node = node_id(config)
    origin = {"name": "edgefer", "sw_version": __version__}
    configs = {}
    for camera in cameras.names:
        device = {
            "identifiers": [f"{node}_{slug(camera)}"],
            "name": f"{node_name(config)} {camera}",
            "manufacturer": "edgefer",
            "model": cameras.model,
            "sw_version": __version__,
        }
        for component, key, specific in _entities(cameras.labels):
            object_id = f"{slug(camera)}_{key}"
            payload = {
                **specific,
                "unique_id": f"{node}_{object_id}",
                "state_topic": state_topic(config, camera),
                "availability_topic": f"{config.topic_prefix}/available",
                "payload_available": "online",
                "payload_not_available": "offline",
                "qos": 1,
                "device": device,
                "origin": origin,
            }
            topic = f"{config.homeassistant_prefix}/{component}/{node}/{object_id}/config"
            configs[topic] = json.dumps(payload, separators=(",", ":")).encode()
    return configs


class CameraState:
    """What one camera's entities show, followed from its events: the open tracks' labels
    (face_appeared, expression_changed, face_left), the FPS of the last summary, and the source
    as the last source_up / source_down said."""

    def __init__(self, labels: tuple[str, ...]):
        self.labels = labels
        self.tracks: dict[int, str] = {}  # open track -> its label, in the order they appeared
        self.fps: float | None = None
        self.source: str | None = None

    def see(self, event: dict) -> bool:
        """Take `event` in; whether the state JSON changed."""
        before = self.payload()
        kind = event["type"]
        if kind in ("face_appeared", "expression_changed"):
            self.tracks[event["track"]] = event["label"]
        elif kind == "face_left":
            self.tracks.pop(event["track"], None)
        elif kind == "summary":
            self.fps = event.get("fps")
        elif kind in SOURCE_STATE:
            self.source = SOURCE_STATE[kind]
        return self.payload() != before

    def payload(self) -> bytes:
        """The state JSON. The dominant expression is the commonest label among the faces in
        view (a tie goes to the face that appeared first); null with nobody in view."""
        shown = Counter(self.tracks.values())
        return json.dumps(
            {
                "faces": len(self.tracks),
                "expression": shown.most_common(1)[0][0] if shown else None,
                "expressions": {label: ON if shown[label] else OFF for label in self.labels},
                "fps": self.fps,
                "source": self.source,
            },
            separators=(",", ":"),
        ).encode()


class CameraStates:
    """Every camera's state, and which cameras changed since their state was last taken for
    publishing. The camera loop feeds it; the MQTT sender takes from it: hence the lock."""

    def __init__(self, config: MqttConfig, cameras: Cameras):
        self.prefix = config.topic_prefix
        self.topics = {name: state_topic(config, name) for name in cameras.names}
        self.states = {name: CameraState(cameras.labels) for name in cameras.names}
        self.changed = set(cameras.names)  # nothing published yet
        self.lock = threading.Lock()

    def see(self, event: dict) -> None:
        """Route `event` to its camera's state; an event of a camera that is not configured
        (any more) changes nothing."""
        camera = event["camera"]
        with self.lock:
            state = self.states.get(camera)
            if state is not None and state.see(event):
                self.changed.add(camera)

    def carry(self, old: CameraStates) -> None:
        """Take the states of the cameras `old` also follows, where the labels are the same
        (other labels: the old tracks' labels mean nothing now)."""
        with self.lock, old.lock:
            for name, state in old.states.items():
                if name in self.states and state.labels == self.states[name].labels:
                    self.states[name] = state

    def all_changed(self) -> None:
        """After a (re)connect: the broker may hold an older state (or none); publish all."""
        with self.lock:
            self.changed = set(self.states)

    def orphaned(self, retracted: bytes) -> str | None:
        """The state topic a retracted discovery config read, if it is this daemon's and no
        camera's now (its camera went): to be cleared too, so that nothing of a camera that is
        gone stays retained. None for a config that is not JSON with a state_topic."""
        try:
            topic = json.loads(retracted).get("state_topic")
        except (ValueError, AttributeError):
            return None
        ours = isinstance(topic, str) and topic.startswith(f"{self.prefix}/")
        return topic if ours and topic not in self.topics.values() else None

    def take(self) -> list[tuple[str, bytes]]:
        """(state topic, state JSON) of every camera changed since the last take."""
        with self.lock:
            taken = [(self.topics[c], self.states[c].payload()) for c in sorted(self.changed)]
            self.changed.clear()
            return taken
