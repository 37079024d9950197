"""python-etcd3 (PyPI ``etcd3`` 0.12.0) doing put, get, watch against one endpoint.

Runs in python-etcd3's own venv (scripts/etcd3-venv.sh) with the pure-Python protobuf
runtime, never in the project's: it imports nothing from the project. Usage:
``python etcd3_watch.py HOST PORT``; prints one JSON document, the transcript, which
tests/client/test_python_etcd3.py compares between raftkv and etcd. Every wait is bounded.
"""

import json
import sys
import threading

import etcd3

WAIT = 10.0


def meta(m):
    return {"key": m.key.decode(), "create": m.create_revision, "mod": m.mod_revision,
            "version": m.version}


def event(ev):
    kind = type(ev).__name__  # PutEvent / DeleteEvent
    prev = ev.prev_value.decode() if getattr(ev, "prev_value", None) else None
    return [kind, ev.key.decode(), ev.value.decode(), ev.mod_revision, ev.version, prev]


def main():
    client = etcd3.client(host=sys.argv[1], port=int(sys.argv[2]), timeout=WAIT)
    out = {}
    client.put("/e3/a", "1")
    client.put("/e3/b", "2")
    client.put("/e3/a", "3")
    client.delete("/e3/b")
    value, m = client.get("/e3/a")
    out["get"] = [value.decode(), meta(m)]
    out["get_prefix"] = [[v.decode(), meta(m)] for v, m in client.get_prefix("/e3/")]

    # history: a prefix watch from revision 1 (iterator form), the first four events
    events, cancel = client.watch_prefix("/e3/", start_revision=1, prev_kv=True)
    got = []
    for ev in events:
        got.append(event(ev))
        if len(got) == 4:
            break
    cancel()
    out["watch_prefix_rev1"] = got

    # live: a callback watch on one key, then a put and a delete of it
    seen, done = [], threading.Event()

    def callback(resp):
        for ev in getattr(resp, "events", []):
            seen.append(event(ev))
        if len(seen) >= 2:
            done.set()

    wid = client.add_watch_callback("/e3/c", callback, prev_kv=True)
    client.put("/e3/c", "5")
    client.delete("/e3/c")
    out["callback_done"] = done.wait(WAIT)
    client.cancel_watch(wid)
    out["watch_callback"] = seen

    # watch_once: a single event, written from another thread after the watch starts
    timer = threading.Timer(0.2, client.put, ("/e3/d", "6"))
    timer.start()
    try:
        out["watch_once"] = event(client.watch_once("/e3/d", timeout=WAIT,
                                                    start_revision=m.mod_revision + 1))
    finally:
        timer.join()
    client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
