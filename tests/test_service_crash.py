"""The server killed with SIGKILL during a release; after a restart the ledger and the log agree, no answer
was returned without a charge, and a retry is answered under the first charge. Also the time limit: a
release that outlasts it is kept and returned to the same request later, charged once.

A fault-injection pause after the charge (``PRIVAGG_SERVICE_PAUSE_AFTER_CHARGE``) holds the release
between its charge and its noise, so that the kill lands exactly there.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from privagg.service.run import PAUSE_ENV
from privagg.service.store import Store
from privagg.service.testing import SMALL_WORLD, ServiceProcess

BODY = {"epsilon": 0.4, "level": "zone", "time_bin": "1D"}


@pytest.fixture()
def state(tmp_path):
    base = tmp_path
    store = Store(base / "service.sqlite")
    token = store.add_client("victim", epsilon=1.0)[1]
    yield {"base": base, "db": base / "service.sqlite", "store": store, "token": token}
    store.close()


def post(url: str, token: str, body: dict, key: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/releases/footfall", json=body, timeout=timeout,
                      headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def wait_for(predicate, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_sigkill_between_charge_and_answer_then_restart(state):
    store, token, key = state["store"], state["token"], uuid.uuid4().hex
    got: dict = {}
    server = ServiceProcess(state["db"], SMALL_WORLD, env={PAUSE_ENV: "60"}, log=state["base"] / "serve1.log").start()

    def ask() -> None:
        try:
            got["response"] = post(server.url, token, BODY, key, timeout=90)
        except httpx.TransportError as exc:
            got["error"] = exc

    asker = threading.Thread(target=ask)
    asker.start()
    wait_for(lambda: len(store.charge_entries()) == 1)  # charged; the release sleeps before its noise
    server.kill()
    asker.join(30)
    assert "response" not in got and isinstance(got.get("error"), httpx.TransportError)

    # Nothing was answered, and the ledger, the stored answers and the log agree on that.
    report = store.consistency()
    assert report["consistent"], report["problems"]
    assert (report["charges"], report["answered"], report["interrupted"]) == (1, 0, 1)
    client = store.get_client("victim")
    assert store.budget(client, "synthetic")["spent"]["epsilon"] == pytest.approx(0.4)  # spent, never refunded

    # After a restart (now with a time limit shorter than a release), the retry (same key) is computed under the
    # first charge; the client is told to come back, and then receives it: charged once in all.
    server = ServiceProcess(state["db"], [*SMALL_WORLD, "--time-limit", "0.5"], env={PAUSE_ENV: "1.5"},
                            log=state["base"] / "serve2.log").start()
    try:
        r = post(server.url, token, BODY, key)
        assert r.status_code == 504 and "same request again" in r.json()["error"], r.text
        wait_for(lambda: store.consistency()["answered"] == 1)
        r = post(server.url, token, BODY, key)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["cached"] and answer["budget"]["spent"]["epsilon"] == pytest.approx(0.4)
        report = store.consistency()
        assert report["consistent"], report["problems"]
        assert (report["charges"], report["answered"], report["interrupted"]) == (1, 1, 0)
        release_log = [e for e in store.log_entries() if e["action"] == "release"]
        assert "interrupted attempt reused" in release_log[-1]["outcome"]
        # Every answer the client received has its charge in the ledger.
        assert answer["release_id"] in {c["release_id"] for c in store.charge_entries()}

        # A new request over the time limit: 504, kept, then returned at no further cost.
        body, key2 = {**BODY, "epsilon": 0.2, "time_bin": "12h"}, uuid.uuid4().hex
        assert post(server.url, token, body, key2).status_code == 504
        wait_for(lambda: store.consistency()["answered"] == 2)
        r = post(server.url, token, body, key2)
        assert r.status_code == 200 and r.json()["cached"]
        assert len(store.charge_entries()) == 2 and store.consistency()["consistent"]
    finally:
        server.stop()


def test_sigkill_with_many_releases_in_flight(state):
    """Killed while 12 fresh releases run: every answer a client received has its charge, and after the
    kill the ledger, the stored answers and the log agree (whatever moment the kill fell on)."""
    store, token = state["store"], state["token"]
    server = ServiceProcess(state["db"], SMALL_WORLD, log=state["base"] / "serve-many.log").start()
    received: list[dict] = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        try:
            r = post(server.url, token, {"epsilon": 0.05, "level": "zone", "time_bin": "1h",
                                         "ci_level": round(0.5 + i / 100, 2)}, uuid.uuid4().hex, timeout=60)
        except httpx.TransportError:
            return
        if r.status_code == 200:
            with lock:
                received.append(r.json())

    askers = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in askers:
        t.start()
    wait_for(lambda: len(received) >= 1 or len(store.charge_entries()) >= 3)
    server.kill()
    for t in askers:
        t.join(60)
    report = store.consistency()
    assert report["consistent"], report["problems"]
    by_release = {c["release_id"]: c for c in store.charge_entries() if c["release_id"]}
    for answer in received:
        charge = by_release[answer["release_id"]]
        assert charge["epsilon"] == answer["cost"]["epsilon"] == 0.05
    assert report["charges"] == report["answered"] + report["interrupted"]
