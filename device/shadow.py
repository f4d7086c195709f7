# The AWS IoT classic shadow link: configuration in (delta, get), status and
# statistics out (reported), over our MQTT client.
#
# Boards without PSRAM hold one TLS connection at a time (DESIGN.md §3). Then
# the app suspends the link around each Spotify call: suspend() cancels the
# link task and closes the socket at once, so the motion path waits for no
# MQTT round trip; resume() reconnects in the background and `get` fetches
# whatever desired state changed meanwhile.
#
# The same connection carries the device's own topics (e.g. the token push),
# which are not part of the shadow.
#
# What AWS IoT meters is kept down: the link connects with a persistent session
# (AWS keeps one for an hour by default), so a reconnect finds its subscriptions
# and sends no SUBSCRIBE; all topics go in one SUBSCRIBE when one is needed. The
# shadow's answers come at QoS 0: a message lost with a dropped link is fetched
# again by the `get` after every connect, and QoS 1 would only add a PUBACK, a
# metered message, per delivery. The device's own topics stay at QoS 1: the broker
# keeps such messages for the session while the link is down (e.g. during a
# Spotify call), and nothing else would bring them back.
import asyncio
import random
from time import ticks_diff, ticks_ms

from micropython import const

import log
from core import backoff, shadowdoc
from net.mqtt import MqttError

_RECEIVE_MS = const(1000)
_RETRY_BASE_MS = const(1000)
_RETRY_CAP_MS = const(300000)
_FLUSH_POLL_MS = const(50)
SECTIONS = ("config", "status", "stats", "ota")
_ANSWERS = ("update/delta", "update/rejected", "get/accepted", "get/rejected")


class ShadowLink:
    def __init__(self, client, thing, answer_desired, read_section, answer_ota=None,
                 on_up=None, topics=(), on_message=None):
        """answer_desired(config) -> shadow state that acknowledges it;
        read_section(name) -> the current reported value of a section in SECTIONS;
        answer_ota(desired ota) -> shadow state to send, or None;
        on_up() once the link is subscribed; on_message(topic, payload) for `topics`."""
        self.client = client
        client.sink = self._sink  # shadow answers stream through the field scanner
        self.thing = thing
        self._topic = "$aws/things/" + thing + "/shadow/"
        self._answer_desired = answer_desired
        self._read_section = read_section
        self._answer_ota = answer_ota
        self._on_up = on_up
        self._topics = topics
        self._on_message = on_message
        self._subscribed = False  # in the broker's session, by this boot
        self._allowed = asyncio.Event()
        self._allowed.set()
        self._task = None
        self._due = set(SECTIONS)  # everything goes out after the first connect
        self._desired_due = {}  # desired keys to set (None deletes) with the next update
        self._want_get = False
        self._version = None  # of the last desired state applied
        self._got = None  # version of the last get answer acted on in this session
        self._token = 0
        self.up = False
        self.sent = 0
        self.received = 0
        self.bytes_out = 0
        self.bytes_in = 0

    # -- what the app calls -------------------------------------------------

    def report(self, *sections):
        """Send these sections with the next update (coalesced)."""
        for name in sections:
            self._due.add(name)

    def set_desired(self, section, value):
        """Write desired.<section> with the next update (None deletes it)."""
        self._desired_due[section] = value

    async def flush(self, timeout_ms=15000):
        """Wait until everything due has gone out, or timeout_ms: a caller makes one
        state visible before the next replaces it. False on timeout."""
        started = ticks_ms()
        while self._due or self._desired_due:
            if ticks_diff(ticks_ms(), started) >= timeout_ms:
                return False
            await asyncio.sleep_ms(_FLUSH_POLL_MS)
        return True

    async def suspend(self):
        """Close the link now (one TLS connection at a time); resume() reopens it."""
        self._allowed.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        await self._close()

    def resume(self):
        self._allowed.set()

    async def run(self):
        attempt = 0
        while True:
            await self._allowed.wait()
            try:
                self._task = asyncio.create_task(self._session())
                await self._task
                failed = None
            except asyncio.CancelledError:
                failed = None  # suspended
            except (MqttError, OSError, ValueError, MemoryError) as e:
                # Out of memory too: the link is a task of its own, which nothing would
                # start again; a retry after the backoff finds the heap collected.
                failed = getattr(e, "kind", None) or repr(e)
            self._task = None
            await self._close()
            if failed is None:
                attempt = 0
                continue
            attempt += 1
            log.event("error", error="shadow_link", detail=failed, attempt=attempt)
            await asyncio.sleep_ms(
                backoff.delay_ms(attempt, random.random(), _RETRY_BASE_MS, _RETRY_CAP_MS)
            )

    # -- the link -----------------------------------------------------------

    def _sink(self, topic):
        return None if topic in self._topics else shadowdoc.Message()

    async def _session(self):
        client = self.client
        await client.connect(clean=False)
        # The first connect of a boot subscribes even to a kept session: one left by an
        # earlier firmware version may hold other topics or another QoS.
        subscribe = not (client.session_present and self._subscribed)
        if subscribe:
            self._subscribed = False
            await client.subscribe_all([(self._topic + suffix, 0) for suffix in _ANSWERS]
                                       + [(topic, 1) for topic in self._topics])
            self._subscribed = True
        self.up = True
        self._got = None
        log.event("shadow_up", subscribed=subscribe)
        if self._on_up:
            self._on_up()
        await self._publish("get", {"clientToken": self._next_token()})
        while True:
            message = await client.receive(_RECEIVE_MS)
            if message is not None:
                self._count_in(message[1])
                await self._handle(message[0], message[1])
            if self._want_get:
                self._want_get = False
                await self._publish("get", {"clientToken": self._next_token()})
            if self._due or self._desired_due:
                await self._update()

    async def _close(self):
        if self.up:
            self.up = False
            log.event("shadow_down")
        try:
            await self.client.disconnect()
        except Exception:  # out of memory too: the link task must live on to reconnect
            self.client.close()

    async def _handle(self, topic, payload):
        if topic in self._topics:
            if self._on_message:
                self._on_message(topic, payload)
            return
        suffix = topic[len(self._topic):] if topic.startswith(self._topic) else topic
        if suffix not in _ANSWERS:
            return  # e.g. a topic a kept session holds from an earlier firmware version
        doc, problem = payload.result()
        if problem:
            log.event("error", error="shadow_message", detail=problem, topic=suffix)
            return
        if suffix in ("update/rejected", "get/rejected"):
            if suffix == "get/rejected" and doc.get("code") == 404:
                self._due.update(SECTIONS)  # a new thing: our first report creates it
            else:
                log.event("error", error="shadow_rejected", code=doc.get("code"),
                          detail=str(doc.get("message"))[:80])
            return
        version = shadowdoc.version(doc)
        ota = None
        if suffix == "get/accepted":
            if version is not None and version == self._got:
                return  # a second answer to one version: the get after a delta crossed one
            self._got = version
            # The whole document: act only when desired and reported differ.
            pending = doc.get("state.delta") is not None
            desired = shadowdoc.wanted(doc, "get") if pending else None
            ota = shadowdoc.wanted(doc, "get", "ota") if pending else None
        elif version is not None and self._version is not None and version <= self._version:
            log.event("shadow_stale", version=version)
            return
        else:
            desired = shadowdoc.wanted(doc, "delta")
            # A delta holds only the leaves of desired.ota that differ from reported:
            # the whole request comes with a get.
            if self._answer_ota and shadowdoc.wanted(doc, "delta", "ota") is not None:
                self._want_get = True
        if version is not None:
            self._version = version
        update = {}
        if desired is not None:
            shadowdoc.merge(update, self._answer_desired(desired))
        if ota is not None and self._answer_ota:
            shadowdoc.merge(update, self._answer_ota(ota))
        if update:
            await self._update(update)

    async def _update(self, state=None):
        """Publish `state` plus every section due; a section stays due until sent."""
        names = list(self._due)
        desired = self._desired_due
        self._desired_due = {}
        state = state or {}
        if names:
            reported = state.get("reported") or {}
            for name in names:
                reported[name] = self._read_section(name)
            state["reported"] = reported
        if desired:
            shadowdoc.merge(state, {"desired": desired})
        try:
            if state:
                await self._publish("update", {"state": state,
                                               "clientToken": self._next_token()})
        except BaseException:
            for name, value in desired.items():  # not sent: still due
                self._desired_due.setdefault(name, value)
            raise
        for name in names:
            self._due.discard(name)

    async def _publish(self, suffix, document):
        size = await self.client.publish_json(self._topic + suffix, document)
        self.sent += 1
        self.bytes_out += size

    def _count_in(self, payload):
        self.received += 1
        self.bytes_in += len(payload)

    def _next_token(self):
        # AWS refuses a clientToken over 64 bytes; a thing name may have 128.
        self._token += 1
        return "%s-%d" % (self.thing[:48], self._token)
