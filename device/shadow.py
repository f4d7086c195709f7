# The AWS IoT classic shadow link: configuration in (delta, get), status and
# statistics out (reported), over our MQTT client.
#
# Boards without PSRAM hold one TLS connection at a time (DESIGN.md §3). Then
# the app closes the link around each Spotify call, and even unloads its code
# (cloud.py): what the link must remember lives in a cloud.LinkMemory.
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

from micropython import const

import log
from core import backoff, shadowdoc
from net.mqtt import MqttError

_RECEIVE_MS = const(1000)
_RETRY_BASE_MS = const(1000)
_RETRY_CAP_MS = const(300000)
_ANSWERS = ("update/delta", "update/rejected", "get/accepted", "get/rejected")


class ShadowLink:
    def __init__(self, client, thing, memory, answer_desired, read_section, answer_ota=None,
                 on_up=None, topics=(), on_message=None):
        """memory: a cloud.LinkMemory (what is due, the last version, the traffic);
        answer_desired(config) -> shadow state that acknowledges it;
        read_section(name) -> the current reported value of a section in memory.due;
        answer_ota(desired ota) -> shadow state to send, or None;
        on_up() once the link is subscribed; on_message(topic, payload) for `topics`."""
        self.client = client
        client.sink = self._sink  # shadow answers stream through the field scanner
        self.thing = thing
        self.memory = memory
        self._topic = "$aws/things/" + thing + "/shadow/"
        self._answer_desired = answer_desired
        self._read_section = read_section
        self._answer_ota = answer_ota
        self._on_up = on_up
        self._topics = topics
        self._on_message = on_message
        self._want_get = False
        self._got = None  # version of the last get answer acted on in this session
        self.up = False

    async def run(self):
        """The link, connected again after each failure, until its task is cancelled
        (then the owner calls close())."""
        attempt = 0
        while True:
            try:
                await self._session()
            except (MqttError, OSError, ValueError, MemoryError) as e:
                # Out of memory too: the link is a task of its own, which nothing would
                # start again; a retry after the backoff finds the heap collected.
                failed = getattr(e, "kind", None) or repr(e)
            attempt = 1 if self.up else attempt + 1  # a link that was up starts over
            await self.close()
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
        memory = self.memory
        subscribe = not (client.session_present and memory.subscribed)
        if subscribe:
            memory.subscribed = False
            await client.subscribe_all([(self._topic + suffix, 0) for suffix in _ANSWERS]
                                       + [(topic, 1) for topic in self._topics])
            memory.subscribed = True
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
            if memory.due or memory.desired_due:
                await self._update()

    async def close(self):
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
                self.memory.all_due()  # a new thing: our first report creates it
            else:
                log.event("error", error="shadow_rejected", code=doc.get("code"),
                          detail=str(doc.get("message"))[:80])
            return
        version = shadowdoc.version(doc)
        last = self.memory.version
        ota = None
        if suffix == "get/accepted":
            if version is not None and version == self._got:
                return  # a second answer to one version: the get after a delta crossed one
            self._got = version
            # The whole document: act only when desired and reported differ.
            pending = doc.get("state.delta") is not None
            desired = shadowdoc.wanted(doc, "get") if pending else None
            ota = shadowdoc.wanted(doc, "get", "ota") if pending else None
        elif version is not None and last is not None and version <= last:
            log.event("shadow_stale", version=version)
            return
        else:
            desired = shadowdoc.wanted(doc, "delta")
            # A delta holds only the leaves of desired.ota that differ from reported:
            # the whole request comes with a get.
            if self._answer_ota and shadowdoc.wanted(doc, "delta", "ota") is not None:
                self._want_get = True
        if version is not None:
            self.memory.version = version
        update = {}
        if desired is not None:
            shadowdoc.merge(update, self._answer_desired(desired))
        if ota is not None and self._answer_ota:
            shadowdoc.merge(update, self._answer_ota(ota))
        if update:
            await self._update(update)

    async def _update(self, state=None):
        """Publish `state` plus every section due; a section stays due until sent."""
        memory = self.memory
        names = list(memory.due)
        desired = memory.desired_due
        memory.desired_due = {}
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
                memory.desired_due.setdefault(name, value)
            raise
        for name in names:
            memory.due.discard(name)

    async def _publish(self, suffix, document):
        size = await self.client.publish_json(self._topic + suffix, document)
        self.memory.sent += 1
        self.memory.bytes_out += size

    def _count_in(self, payload):
        self.memory.received += 1
        self.memory.bytes_in += len(payload)

    def _next_token(self):
        # AWS refuses a clientToken over 64 bytes; a thing name may have 128.
        self.memory.token += 1
        return "%s-%d" % (self.thing[:48], self.memory.token)
