"""The benchmark's AWS IoT arithmetic over the firmware's own counters."""

from host_tools.bench import iot as bench_iot


def end(sent, received, connects, subscribes, pubacks):
    return {"mqtt_sent": sent, "mqtt_received": received, "mqtt_connects": connects,
            "mqtt_subscribes": subscribes, "mqtt_pubacks": pubacks,
            "mqtt_bytes_out": 200 * sent, "mqtt_bytes_in": 2000 * received}


def test_metered_messages_count_subscribe_packets_and_device_pubacks_as_counted():
    # Boot subscribes once; later sessions reconnect twice each into the kept session.
    ends = [end(3, 2, 3, 1, 0), end(6, 4, 5, 1, 0), end(9, 6, 7, 1, 1), end(12, 8, 9, 1, 1)]
    traffic = bench_iot.per_session(ends)
    assert traffic["mqtt_subscribes"] == 0 and traffic["mqtt_pubacks"] == 0
    assert traffic["mqtt_bytes_in"] == 4000
    assert bench_iot.metered_messages(traffic) == 3 + 2 + 2  # bytes are not messages

    clean_sessions = [end(3 * n, 2 * n, 2 * n, 2 * n, 2 * n) for n in range(1, 4)]
    assert bench_iot.metered_messages(bench_iot.per_session(clean_sessions)) == 3 + 2 + 2 + 2 + 2
