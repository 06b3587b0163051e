"""Events to an MQTT broker with paho-mqtt: QoS 1, in order, and nothing lost while it is away.

Every event goes to the on-disk spool first; one sender thread publishes the oldest spooled
event, waits for the broker's PUBACK, and only then removes it. So the order holds, a broker
outage only delays delivery, and a daemon killed with the broker down delivers the spooled
events after its restart (consumers deduplicate on the event id: QoS 1 is at-least-once).

Topics (Frigate's convention of a prefix and a retained availability topic):
    <prefix>/available       "online" (retained) while connected; "offline" via the last will
    <prefix>/events/<type>   every event as JSON
"""

from __future__ import annotations

import json
import queue
import threading

import paho.mqtt.client as mqtt

from edgefer.device.daemon_config import MqttConfig
from edgefer.device.outputs.spool import Spool

PUBACK_TIMEOUT = 5.0


class MqttSink:
    def __init__(self, config: MqttConfig):
        self.config = config
        self.spool = Spool(config.spool_dir / "mqtt.sqlite", config.spool_max_bytes)
        self.available = f"{config.topic_prefix}/available"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.client_id or "")
        client.will_set(self.available, "offline", qos=1, retain=True)
        if config.username:
            password = config.password.get_secret_value() if config.password else None
            client.username_pw_set(config.username, password)
        if config.tls:
            client.tls_set(ca_certs=str(config.ca_file) if config.ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # PUBACKed message ids. paho calls on_publish holding its own message lock, which
        # publish() needs too: a queue (never held while waiting) cannot deadlock with it.
        self.acks: queue.Queue[int] = queue.Queue()
        self.client = client
        self.connected = threading.Event()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        client.connect_async(config.host, config.port, keepalive=30)
        client.loop_start()
        self.sender = threading.Thread(target=self._send_loop, name="edgefer-mqtt", daemon=True)
        self.sender.start()

    def _on_connect(self, client, userdata, flags, reason, properties):
        if not reason.is_failure:
            client.publish(self.available, "online", qos=1, retain=True)
            self.connected.set()
            self.wake.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, reason, properties):
        self.acks.put(mid)

    def send(self, event: dict) -> None:
        topic = f"{self.config.topic_prefix}/events/{event['type']}"
        self.spool.append(topic, json.dumps(event, separators=(",", ":")).encode())
        self.wake.set()

    def _send_loop(self) -> None:
        while not self.stopping.is_set():
            item = self.spool.peek() if self.connected.is_set() else None
            if item is None:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            item_id, topic, payload = item
            while not self.acks.empty():  # acks of the status messages
                self.acks.get_nowait()
            mid = self.client.publish(topic, payload, qos=1).mid
            # Wait for this message's PUBACK. If the connection drops meanwhile, paho keeps the
            # message and resends it after the reconnect: publishing it again ourselves would
            # duplicate it.
            while not self.stopping.is_set():
                try:
                    if self.acks.get(timeout=0.5) == mid:
                        self.spool.remove(item_id)
                        break
                except queue.Empty:
                    continue

    def depth(self) -> int:
        return self.spool.depth()

    def close(self, flush_seconds: float = 2.0) -> None:
        """Deliver what the spool holds (briefly), say offline, disconnect; the rest stays spooled."""
        deadline = threading.Event()
        timer = threading.Timer(flush_seconds, deadline.set)
        timer.start()
        while self.connected.is_set() and self.spool.depth() and not deadline.is_set():
            deadline.wait(0.05)
        timer.cancel()
        self.stopping.set()
        self.wake.set()
        self.sender.join(PUBACK_TIMEOUT + 1)
        if self.connected.is_set():
            self.client.publish(self.available, "offline", qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self.spool.close()
