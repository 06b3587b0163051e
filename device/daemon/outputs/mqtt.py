"""Events to an MQTT broker with paho-mqtt: QoS 1, in order, and nothing lost while it is away.

Every event goes to the on-disk spool first; one sender thread publishes the oldest spooled
event, waits for the broker's PUBACK, and only then removes it. So the order holds, a broker
outage only delays delivery, and a daemon killed with the broker down delivers the spooled
events after its restart (consumers deduplicate on the event id: QoS 1 is at-least-once).

The connection is logged when it changes (refused and why, lost, back) and shown in status();
a full spool disk costs the oldest events, counted, not the daemon.

Topics (Frigate's convention of a prefix, a retained availability topic, and the camera next):
    <prefix>/available                "online" (retained) while connected; "offline" via the
                                      last will
    <prefix>/<camera>/events/<type>   every event of that camera as JSON (all cameras' events:
                                      <prefix>/+/events/#)
    <prefix>/<camera>/source          "online" / "offline" (retained): the camera's state, as
                                      its last source_up / source_down event said, so a
                                      subscriber that comes later still learns it is offline

With `homeassistant = true`, also Home Assistant's discovery configs and each camera's state
(homeassistant.py): <prefix>/<camera>/state, retained, QoS 1. A state is not an event: only the
newest matters, so it skips the spool and goes out from the sender between events, and again
after every reconnect, so the broker holds the truth whenever HA (re)subscribes.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import sys
import threading
import time

import paho.mqtt.client as mqtt

from edgefer.device.daemon.config import MqttConfig
from edgefer.device.daemon.events import SOURCE_STATE
from edgefer.device.daemon.outputs.base import Health, Sink, one_line, state_of
from edgefer.device.daemon.outputs.homeassistant import (
    Cameras,
    CameraStates,
    config_filter,
    discovery_configs,
)
from edgefer.device.daemon.outputs.spool import Spool
from edgefer.errors import EdgeferError

# paho doubles the wait between reconnect attempts up to this. Capped low: after a broker
# outage, delivery resumes at most this long after the broker is back (at 30 s it took 21 s).
MAX_RECONNECT_DELAY = 5
SPOOLED = "events stay spooled until it connects"


class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, config: MqttConfig, cameras: Cameras | None = None):
        """`cameras`: what Home Assistant discovery announces; needed with homeassistant on."""
        self.spool = Spool(config.spool_dir / "mqtt.sqlite", config.spool_max_bytes)
        super().__init__(f"mqtt spool {self.spool.path}")
        self.config = config
        self.address = f"{config.host}:{config.port}"
        self.available = f"{config.topic_prefix}/available"
        discovery = config.homeassistant
        self.discovery = discovery_configs(config, cameras) if discovery else {}
        self.states = CameraStates(config, cameras) if discovery else None
        try:
            self.client = self._client(config)
        except EdgeferError:
            self.spool.close()
            raise
        self.link = Health("mqtt", "connecting")
        self.memory = Health("mqtt spool", "ok")
        if self.spool.in_memory:
            self.memory.fail(
                "spool_in_memory",
                f"{self.spool.path}: {self.spool.in_memory}",
                "spooling in memory until the daemon restarts (a restart loses what is not "
                "yet delivered)",
            )
        # PUBACKed message ids. paho calls on_publish holding its own message lock, which
        # publish() needs too: a queue (never held while waiting) cannot deadlock with it.
        self.acks: queue.Queue[int] = queue.Queue()
        self.connected = threading.Event()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.flush_seconds = 2.0  # how long close() waits for the spool to empty
        self.sender = threading.Thread(target=self._send_loop, name="edgefer-mqtt", daemon=True)

    def _client(self, config: MqttConfig) -> mqtt.Client:
        """A client set up but not connected (start() connects)."""
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.client_id or "")
        client.will_set(self.available, "offline", qos=1, retain=True)
        if config.username:
            password = config.password.get_secret_value() if config.password else None
            client.username_pw_set(config.username, password)
        if config.tls:
            try:
                client.tls_set(ca_certs=str(config.ca_file) if config.ca_file else None)
            except (OSError, ValueError) as exc:
                raise EdgeferError(
                    f"{config.ca_file}: cannot load the CA certificates ({one_line(exc)})"
                ) from None
        client.reconnect_delay_set(min_delay=1, max_delay=MAX_RECONNECT_DELAY)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_config
        return client

    def start(self) -> None:
        self.spool.recount()
        self.client.connect_async(self.config.host, self.config.port, keepalive=30)
        self.client.loop_start()
        self.sender.start()

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:  # CONNACK refused: bad credentials, client id, protocol
            self.link.fail(
                "disconnected", f"connection refused by {self.address}: {reason}", SPOOLED
            )
            return
        client.publish(self.available, "online", qos=1, retain=True)
        if self.states is not None:
            self._announce(client)
        self.connected.set()
        self.wake.set()
        self.link.recover("connected", f"connected to {self.address}")

    def _announce(self, client: mqtt.Client) -> None:
        """Publish the discovery configs, and have the sender publish every camera's state.

        What to retract is read back from the broker: subscribed to every config this node may
        have published, it hands over the retained ones at once, and `_on_config` empties those
        not published now (a camera, or an expression, that went since). The broker is what HA
        reads, so this holds when a file kept beside the spool would not: a wiped spool dir, a
        daemon moved to another disk, a config retracted by hand."""
        client.subscribe(config_filter(self.config), qos=1)
        for topic, payload in self.discovery.items():
            client.publish(topic, payload, qos=1, retain=True)
        self.states.all_changed()

    def _on_config(self, client, userdata, message):
        """A discovery config the broker held for this node: retract it if it is not current,
        with its camera's state if the camera went. Only retained ones, those of an earlier
        run: a live one is someone publishing now."""
        if not message.retain or not message.payload or message.topic in self.discovery:
            return
        client.publish(message.topic, b"", qos=1, retain=True)
        orphaned = self.states.orphaned(message.payload)
        if orphaned is not None:
            client.publish(orphaned, b"", qos=1, retain=True)

    def _on_connect_fail(self, client, userdata):
        """No connection (refused, unreachable, TLS). paho calls this inside its `except
        OSError` without passing the error on: sys.exception() is that error."""
        exc = sys.exception()
        cause = one_line(exc) if exc else "failed"
        self.link.fail("disconnected", f"cannot connect to {self.address}: {cause}", SPOOLED)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected and not self.stopping.is_set():
            why = f" ({reason})" if flags.is_disconnect_packet_from_server else ""
            self.link.fail("disconnected", f"connection to {self.address} lost{why}", SPOOLED)

    def _on_publish(self, client, userdata, mid, reason, properties):
        self.acks.put(mid)

    def succeed(self, previous: Sink) -> None:
        """The cameras' states as the events so far made them: a camera that stays keeps what
        Home Assistant shows (its source up, its faces), as no new event would say it again."""
        if self.states is not None and getattr(previous, "states", None) is not None:
            self.states.carry(previous.states)

    def _store(self, event: dict) -> sqlite3.Error | None:
        topic = f"{self.config.topic_prefix}/{event['camera']}/events/{event['type']}"
        try:
            full = self.spool.append(topic, json.dumps(event, separators=(",", ":")).encode())
        finally:  # spooled or not (a full disk must not freeze what HA shows), and after it
            if self.states is not None:
                self.states.see(event)
        self.wake.set()
        return full

    def _send_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self._send_oldest()
            except sqlite3.Error as exc:  # the spool's disk: retried, never the sender's end
                self.writing.fail(state_of(exc), one_line(exc), "delivery waits for it")
                self.stopping.wait(1)
            except Exception as exc:  # noqa: BLE001 - a message paho refuses: the same
                self.link.fail("failing", f"cannot publish: {one_line(exc)}", SPOOLED)
                self.stopping.wait(1)

    def _send_oldest(self) -> None:
        self._publish_states()
        item = self.spool.peek() if self.connected.is_set() else None
        if item is None:
            self.wake.wait(0.5)
            self.wake.clear()
        elif self._publish(item[1], item[2]):
            self._remove(item[0])
            camera_topic, _, kind = item[1].rsplit("/", 2)  # <prefix>/<camera>, events, type
            state = SOURCE_STATE.get(kind)
            if state is not None:  # after its event, so the two never disagree for long
                self.client.publish(f"{camera_topic}/source", state, qos=1, retain=True)

    def _publish_states(self) -> None:
        """The cameras' changed states, retained, without waiting for their PUBACKs: an event
        backlog after an outage must not hold up what is true now."""
        if self.states is not None and self.connected.is_set():
            for topic, payload in self.states.take():
                self.client.publish(topic, payload, qos=1, retain=True)

    def _publish(self, topic: str, payload: bytes) -> bool:
        """Publish and wait for the PUBACK; False if stopping first. If the connection drops
        meanwhile, paho keeps the message and resends it after the reconnect: publishing it
        again ourselves would duplicate it."""
        while not self.acks.empty():  # acks of the status messages
            self.acks.get_nowait()
        mid = self.client.publish(topic, payload, qos=1).mid
        while not self.stopping.is_set():
            with contextlib.suppress(queue.Empty):
                if self.acks.get(timeout=0.5) == mid:
                    return True
        return False

    def _remove(self, item_id: int) -> None:
        """Remove a delivered event, retrying while the spool's disk refuses: publishing it
        again instead would deliver it twice."""
        while True:
            try:
                self.spool.remove(item_id)
                return
            except sqlite3.Error as exc:
                self.writing.fail(state_of(exc), one_line(exc), "delivery waits for it")
                if self.stopping.wait(1):
                    return

    def depth(self) -> int:
        return self.spool.depth()

    def dropped(self) -> int:
        return self.unstored + self.spool.evicted

    def _health(self) -> Health:
        return next(
            h for h in (self.writing, self.memory, self.link) if h.failing or h is self.link
        )

    def _close(self) -> None:
        """Deliver what the spool holds (briefly), say offline, disconnect; the rest stays
        spooled."""
        try:
            self._flush()
            self.stopping.set()
            self.wake.set()
            if self.sender.is_alive():
                self.sender.join(5)  # it sees `stopping` within a second
            self._publish_states()  # the last events' (the face_left of the shutdown)
            if self.connected.is_set():
                with contextlib.suppress(RuntimeError, ValueError):  # the connection went
                    self.client.publish(
                        self.available, "offline", qos=1, retain=True
                    ).wait_for_publish(2)
            self.client.disconnect()
            self.client.loop_stop()
        finally:
            self.spool.close()

    def _flush(self) -> None:
        """Wait up to flush_seconds for the sender to empty the spool, while connected."""
        end = time.monotonic() + self.flush_seconds
        while self.connected.is_set() and self.spool.depth() and time.monotonic() < end:
            time.sleep(0.05)
