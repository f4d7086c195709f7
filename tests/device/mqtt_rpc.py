# Drives net.mqtt under MicroPython for tests/device/test_mqtt.py: one JSON command
# a line on stdin, one "RPC <json>" answer a line on stdout.
import asyncio
import json
import sys
import time

from net import mqtt, tls

client = None


def read(path):
    with open(path, "rb") as f:
        return f.read()


def init(host, port, client_id, ca, cert, key, **options):
    global client
    if client is not None:
        client.close()
    ctx = tls.context([read(ca)], read(cert), read(key))
    client = mqtt.Client(host, port, client_id, ctx, **options)


async def connect(clean=True):
    await client.connect(clean)
    return client.session_present


async def subscribe(topic, qos=1):
    return (await client.subscribe_all([(topic, qos)]))[0]


async def subscribe_all(topics):
    return await client.subscribe_all([tuple(t) for t in topics])


async def publish(topic, payload="", qos=0, retain=False, size=None):
    await client.publish(topic, "x" * size if size else payload, qos, retain)


async def receive(timeout_ms=None):
    message = await client.receive(timeout_ms)
    return None if message is None else [message[0], message[1].decode()]


async def receive_all(window_ms):
    """Every message that arrives until window_ms pass without one."""
    got = []
    while True:
        message = await receive(window_ms)
        if message is None:
            return got
        got.append(message)


async def publish_while_receiving(topic, count):
    """One task publishes QoS 1 while another receives: either may read the other's acks."""
    got = []

    async def receiver():
        while len(got) < count:
            message = await client.receive(2000)
            if message is None:
                return
            got.append(message[1].decode())

    async def publisher():
        for n in range(count):
            await client.publish(topic, str(n), 1)

    task = asyncio.create_task(receiver())
    await publisher()
    await task
    return got


async def disconnect():
    await client.disconnect()


def status():
    return {name: getattr(client, name)
            for name in ("connected", "connects", "subscribes", "pubacks", "pings", "skipped",
                         "dropped")}


def close():
    client.close()


OPS = {name: globals()[name] for name in (
    "init", "connect", "subscribe", "subscribe_all", "publish", "receive", "receive_all",
    "publish_while_receiving", "disconnect", "status", "close")}


def answer(reply):
    print("RPC " + json.dumps(reply))


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        args = json.loads(line)
        op = OPS[args.pop("op")]
        start = time.ticks_ms()
        try:
            result = op(**args)
            if hasattr(result, "send"):  # a coroutine
                result = asyncio.run(result)
            reply = {"ok": result}
        except mqtt.MqttError as e:
            reply = {"error": e.kind, "detail": e.detail, "code": e.code}
        reply["ms"] = time.ticks_diff(time.ticks_ms(), start)
        answer(reply)


main()
