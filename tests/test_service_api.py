"""privagg serve over real HTTP on 127.0.0.1: security, the release functions, stored answers, consent, limits.

One server process for the module (a small synthetic World, SQLite).
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

import privagg as pa
from privagg.client import Client, ServiceError
from privagg.errors import BudgetExceededError, PrivaggInputError
from privagg.service.store import Store
from privagg.service.testing import ServiceProcess
from privagg.synth import generate_world

RATE = 600  # the server's default per client; the rate test gives its client a lower one


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    base = tmp_path_factory.mktemp("service")
    consent_world = generate_world(n_users=300, n_cells=40, days=2, seed=1)
    consent_world.save(base / "consent_world")
    (base / "catalogue.toml").write_text(
        '[datasets.synthetic]\nsynthetic = { n_users = 300, n_cells = 40, days = 2, seed = 0 }\ncap_epsilon = 100\n\n'
        '[datasets.consent]\nworld = "consent_world"\ncap_epsilon = 100\ncap_delta = 1e-3\n'
    )
    db = base / "service.sqlite"
    store = Store(db)
    tokens = {}
    for name, eps, delta in (("alice", 3.0, 0.0), ("bob", 3.0, 0.0), ("carol", 50.0, 1e-4)):
        tokens[name] = store.add_client(name, epsilon=eps, delta=delta, window="7D")[1]
    tokens["admin"] = store.add_client("admin", role="admin")[1]
    proc = ServiceProcess(db, ["--catalogue", str(base / "catalogue.toml"), "--rate-limit", str(RATE),
                               "--max-keys", "5000"], log=base / "serve.log").start()
    yield {"url": proc.url, "tokens": tokens, "store": store, "base": base, "consent_world": consent_world}
    proc.stop()
    store.close()


def call(svc, method, path, token=None, **kw):
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, svc["url"] + path, headers=headers, timeout=60, **kw)


def assert_refused(r, status):
    """Refused with ``status``, a one-line error and nothing else (no data, no traceback)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) <= {"error", "refused"}
    assert "\n" not in body["error"] and "Traceback" not in body["error"] and "File \"" not in body["error"]
    return body["error"]


def n_charges(svc) -> int:
    return len(svc["store"].charge_entries())


# --------------------------------------------------------------------------- authentication
def test_openapi_document_is_served(svc):
    doc = call(svc, "GET", "/openapi.json").json()
    assert "/v1/releases/{function}" in doc["paths"]
    assert "/v1/admin/clients" in doc["paths"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer pa_wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer"}])
def test_requests_without_a_valid_token_are_refused(svc, headers):
    before = n_charges(svc)
    for method, path in (("POST", "/v1/releases/footfall"), ("GET", "/v1/budget"), ("GET", "/v1/releases"),
                         ("GET", "/v1/admin/clients"), ("GET", "/v1/datasets")):
        r = call(svc, method, path, headers=dict(headers), json={"epsilon": 0.1} if method == "POST" else None)
        assert_refused(r, 401)
    assert n_charges(svc) == before


def test_a_revoked_token_is_refused(svc):
    admin = svc["tokens"]["admin"]
    r = call(svc, "POST", "/v1/admin/clients", admin, json={"name": "dave", "epsilon": 1.0})
    token = r.json()["token"]
    assert call(svc, "GET", "/v1/budget", token).status_code == 200
    assert call(svc, "POST", "/v1/admin/clients/dave/revoke", admin).json()["client"]["revoked"]
    assert "revoked" in assert_refused(call(svc, "POST", "/v1/releases/footfall", token, json={"epsilon": 0.1}), 401)
    assert_refused(call(svc, "GET", "/v1/budget", token), 401)


def test_tokens_are_stored_only_as_hashes(svc):
    import sqlalchemy as sa

    with svc["store"].engine.connect() as conn:
        dump = json.dumps([list(map(str, r)) for r in conn.execute(sa.text("SELECT * FROM clients"))])
    for token in svc["tokens"].values():
        assert token not in dump and len(token) >= 40


# --------------------------------------------------------------------------- isolation between clients
def test_a_client_cannot_read_another_clients_releases_or_budget(svc):
    alice, bob = svc["tokens"]["alice"], svc["tokens"]["bob"]
    r = call(svc, "POST", "/v1/releases/footfall", alice, json={"epsilon": 0.2, "level": "zone", "time_bin": "1D"})
    assert r.status_code == 200, r.text
    rid = r.json()["release_id"]
    assert_refused(call(svc, "GET", f"/v1/releases/{rid}", bob), 404)
    assert rid not in call(svc, "GET", "/v1/releases", bob).text
    assert_refused(call(svc, "POST", "/v1/compare", bob, json={"a": rid, "b": rid}), 404)
    budget = call(svc, "GET", "/v1/budget", bob).json()
    assert budget["client"] == "bob" and "alice" not in json.dumps(budget)
    assert all(b["spent"]["epsilon"] == 0.0 for b in budget["budgets"])
    own = call(svc, "GET", f"/v1/releases/{rid}", alice)
    assert own.json()["release_id"] == rid and own.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/v1/admin/clients", None),
    ("POST", "/v1/admin/clients", {"name": "mallory", "epsilon": 100.0}),
    ("POST", "/v1/admin/clients/bob/revoke", None),
    ("GET", "/v1/admin/budget", None),
    ("GET", "/v1/admin/log", None),
    ("POST", "/v1/admin/datasets/synthetic/consent", {"user_ids": [1], "opt_in": False}),
])
def test_a_client_cannot_call_admin_operations(svc, method, path, body):
    before = [c.public() for c in svc["store"].list_clients()]
    assert_refused(call(svc, method, path, svc["tokens"]["alice"], json=body), 403)
    assert [c.public() for c in svc["store"].list_clients()] == before
    assert svc["store"].consent_changes("synthetic") == {}


def test_an_administrator_makes_no_releases(svc):
    assert_refused(call(svc, "POST", "/v1/releases/footfall", svc["tokens"]["admin"], json={"epsilon": 0.1}), 403)


# --------------------------------------------------------------------------- malformed, oversized, injected
@pytest.mark.parametrize("content,status", [
    (b'{"epsilon": 0.1', 400),
    (b"[1, 2]", 400),
    (b'"text"', 400),
    (b'\xff\xfe', 400),
    (json.dumps({"epsilon": 0.1, "pad": "x" * 70_000}).encode(), 413),
])
def test_malformed_and_oversized_bodies_are_refused(svc, content, status):
    before = n_charges(svc)
    r = call(svc, "POST", "/v1/releases/footfall", svc["tokens"]["alice"], content=content,
             headers={"Content-Type": "application/json"})
    assert_refused(r, status)
    assert n_charges(svc) == before


def test_an_oversized_body_without_content_length_is_refused(svc):
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    r = call(svc, "POST", "/v1/releases/footfall", svc["tokens"]["alice"], content=chunks())
    assert_refused(r, 413)


@pytest.mark.parametrize("path,body,status", [
    ("/v1/releases/footfall", {"epsilon": 0.1, "dataset": "synthetic'; DROP TABLE clients; --"}, 404),
    ("/v1/releases/footfall", {"epsilon": 0.1, "dataset": "../../etc/passwd"}, 404),
    ("/v1/releases/segment_stats", {"epsilon": 0.1, "by": ["age_band); DROP TABLE charges; --"]}, 400),
    ("/v1/releases/segment_stats", {"epsilon": 0.1, "measure": "mean", "column": "arpu' OR '1'='1",
                                    "bounds": {"lower": 0, "upper": 10}}, 400),
    ("/v1/releases/footfall", {"epsilon": 0.1, "level": "zone; DROP TABLE log"}, 400),
    ("/v1/releases/footfall%3B%20DROP%20TABLE%20log", {"epsilon": 0.1}, 404),
    ("/v1/releases/__init__", {"epsilon": 0.1}, 404),
    ("/v1/releases/footfall", {"epsilon": 0.1, "__class__": "x"}, 400),
])
def test_injection_in_names_is_refused(svc, path, body, status):
    before = n_charges(svc)
    assert_refused(call(svc, "POST", path, svc["tokens"]["alice"], json=body), status)
    assert n_charges(svc) == before
    assert {c.name for c in svc["store"].list_clients()} >= {"alice", "bob", "carol", "admin"}


def test_injection_in_client_names_is_refused(svc):
    admin = svc["tokens"]["admin"]
    for name in ("x'; DROP TABLE clients; --", "<script>alert(1)</script>", "a" * 65, ""):
        assert_refused(call(svc, "POST", "/v1/admin/clients", admin, json={"name": name, "epsilon": 1.0}), 400)
    assert_refused(call(svc, "GET", "/v1/releases/' OR '1'='1", svc["tokens"]["alice"]), 404)
    assert "x'; DROP" not in {c.name for c in svc["store"].list_clients()}


# --------------------------------------------------------------------------- the library's errors
@pytest.mark.parametrize("function,params", [
    ("footfall", {"epsilon": -1}),
    ("footfall", {"epsilon": 0.1, "rho": 0.1}),
    ("footfall", {"epsilon": 0.1, "level": "planet"}),
    ("footfall", {"epsilon": 0.1, "time_bin": "7min"}),
    ("dwell_times", {"epsilon": 0.1, "edges": [5, 1]}),
    ("segment_stats", {"epsilon": 0.1, "measure": "median", "by": ["age_band"]}),
])
def test_errors_are_the_librarys_one_line_messages(svc, function, params):
    world = generate_world(n_users=300, n_cells=40, days=2, seed=0)
    with pytest.raises(PrivaggInputError) as expected:
        getattr(pa, function)(world, **{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    r = call(svc, "POST", f"/v1/releases/{function}", svc["tokens"]["alice"], json=params)
    assert assert_refused(r, 400) == " ".join(str(expected.value).split())


def test_answers_too_large_are_refused_before_anything_is_charged(svc):
    before = n_charges(svc)
    r = call(svc, "POST", "/v1/releases/footfall", svc["tokens"]["alice"],
             json={"epsilon": 0.1, "level": "cell", "time_bin": "15min"})
    assert "keys" in assert_refused(r, 413)
    assert n_charges(svc) == before


# --------------------------------------------------------------------------- budgets, repeats, idempotency
def test_budget_falls_and_refuses_beyond_it(svc):
    bob = Client(svc["url"], svc["tokens"]["bob"])
    start = bob.budget()[0]["remaining"]["epsilon"]
    rel = bob.footfall(epsilon=0.5, level="district", time_bin="1D")
    assert bob.budget()[0]["remaining"]["epsilon"] == pytest.approx(start - 0.5)
    assert rel.privacy.epsilon == 0.5
    with pytest.raises(BudgetExceededError, match="left in this 7D window"):
        bob.footfall(epsilon=start, level="district", time_bin="6h")
    assert bob.budget()[0]["remaining"]["epsilon"] == pytest.approx(start - 0.5)


def test_a_repeated_request_returns_the_stored_answer_at_no_cost(svc):
    alice = Client(svc["url"], svc["tokens"]["alice"])
    first = alice.visits(epsilon=0.25, level="zone", time_bin="6h")
    spent = alice.budget()[0]["spent"]["epsilon"]
    before = n_charges(svc)
    again = alice.visits(epsilon=0.25, level="zone", time_bin="6h")
    assert again.cached and again.charged == {"epsilon": 0.0, "delta": 0.0}
    assert again.release_id == first.release_id
    assert again.to_pandas().equals(first.to_pandas())
    assert alice.budget()[0]["spent"]["epsilon"] == spent and n_charges(svc) == before


def test_an_idempotency_key_is_never_charged_twice_nor_reused(svc):
    alice = svc["tokens"]["alice"]
    key = uuid.uuid4().hex
    body = {"epsilon": 0.2, "level": "zone", "time_bin": "12h"}
    before = n_charges(svc)
    r1 = call(svc, "POST", "/v1/releases/footfall", alice, json=body, headers={"Idempotency-Key": key})
    r2 = call(svc, "POST", "/v1/releases/footfall", alice, json=body, headers={"Idempotency-Key": key})
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["release_id"] == r2.json()["release_id"] and n_charges(svc) == before + 1
    other = {**body, "time_bin": "3h"}
    assert "Idempotency-Key" in assert_refused(
        call(svc, "POST", "/v1/releases/footfall", alice, json=other, headers={"Idempotency-Key": key}), 409)
    assert n_charges(svc) == before + 1


# --------------------------------------------------------------------------- the Python client
def test_the_python_client_has_the_librarys_functions(svc):
    carol = Client(svc["url"], svc["tokens"]["carol"])
    rel = carol.footfall(epsilon=0.5, level="zone", time_bin="1D")
    assert isinstance(rel, pa.Release) and rel.key_columns == ("zone_id", "time")
    assert str(rel.to_pandas()["time"].dtype).startswith("datetime64")
    assert rel.privacy.formally_private and "epsilon=0.5" in rel.privacy.describe()
    assert carol.visits(epsilon=0.5, level="district").key_columns == ("district_id", "time")
    assert "dwell_min" in carol.dwell_times(epsilon=0.5, level="district").key_columns
    assert carol.dwell_mean(epsilon=0.5, level="district").privacy.statistic == "dwell_mean"
    assert carol.od_flows(epsilon=0.5, level="district", time_bin=None).privacy.statistic == "od_flows"
    seg = carol.segment_stats(epsilon=0.5, by=["age_band"], level="district", time_bin=None)
    assert seg.key_columns[0] == "age_band" and "district_id" in seg.key_columns
    mean = carol.segment_stats(epsilon=0.5, by=["age_band"], measure="mean", column="arpu",
                               bounds={"lower": 0, "upper": 100})
    assert mean.privacy.statistic == "segment_mean"
    week = carol.footfall(epsilon=0.5, level="zone", time_bin="12h")
    cmp = carol.compare(week.release_id, week, on=["zone_id", "time"])
    assert cmp.on == ("zone_id", "time") and len(cmp) == len(week)
    served = call(svc, "POST", "/v1/compare", svc["tokens"]["carol"],
                  json={"a": week.release_id, "b": week.release_id, "on": ["zone_id", "time"]}).json()
    assert served["on"] == ["zone_id", "time"] and len(served["table"]["data"]) == len(cmp)
    assert served["table"]["columns"] == list(cmp.to_pandas().columns)
    assert carol.release(week.release_id).to_pandas().equals(week.to_pandas())
    assert {r["release_id"] for r in carol.releases()} >= {rel.release_id, week.release_id}
    with pytest.raises(PrivaggInputError, match="level='planet'"):
        carol.footfall(epsilon=0.1, level="planet")
    with pytest.raises(ServiceError) as err:
        Client(svc["url"], "pa_wrong").footfall(epsilon=0.1)
    assert err.value.status == 401


# --------------------------------------------------------------------------- consent
def test_an_opt_out_takes_effect_for_every_later_release(svc):
    """All subscribers of the 'consent' dataset opt out: a release with private keys then has no key at all.

    Before the opt-out, districts hold ~100 subscribers each against a selection threshold of ~16 (Laplace
    scale 1 with max_partitions=1): false-failure probability below 1e-30. After it, there are no
    contributions, so no key can be selected (deterministic).
    """
    carol = Client(svc["url"], svc["tokens"]["carol"])
    params = dict(dataset="consent", epsilon=1.0, delta=1e-6, keys="private", level="district", time_bin=None,
                  bounds={"max_partitions": 1})
    assert len(carol.footfall(**params)) > 0
    ids = [int(u) for u in svc["consent_world"].users["user_id"]]
    admin = svc["tokens"]["admin"]
    r = call(svc, "POST", "/v1/admin/datasets/consent/consent", admin, json={"user_ids": ids, "opt_in": False})
    assert r.json()["changed"] == len(ids)
    assert len(carol.footfall(**params, ci_level=0.9)) == 0
    assert len(carol.visits(**params)) == 0
    call(svc, "POST", "/v1/admin/datasets/consent/consent", admin, json={"user_ids": ids, "opt_in": True})
    assert len(carol.footfall(**params, ci_level=0.8)) > 0


# --------------------------------------------------------------------------- limits, log, report
def test_requests_beyond_the_rate_limit_are_refused(svc):
    admin = svc["tokens"]["admin"]
    token = call(svc, "POST", "/v1/admin/clients", admin,
                 json={"name": "eager", "epsilon": 1.0, "rate_limit": 5}).json()["token"]
    codes = [call(svc, "GET", "/v1/budget", token).status_code for _ in range(5)]
    assert codes == [200] * 5
    r = call(svc, "GET", "/v1/budget", token)
    assert "more than 5 requests" in assert_refused(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
    assert call(svc, "GET", "/v1/budget", svc["tokens"]["bob"]).status_code == 200  # per client


def test_the_log_and_the_report(svc, tmp_path):
    from privagg.cli import main

    admin = svc["tokens"]["admin"]
    token = call(svc, "POST", "/v1/admin/clients", admin, json={"name": "logged", "epsilon": 0.3}).json()["token"]
    logged = {"epsilon": 0.3, "level": "zone", "time_bin": "1D"}
    for params, status in ((logged, 200), (logged, 200), ({**logged, "ci_level": 0.9}, 403),
                           ({"epsilon": 0.1, "level": "planet"}, 400)):
        assert call(svc, "POST", "/v1/releases/footfall", token, json=params).status_code == status
    call(svc, "POST", "/v1/admin/clients/logged/revoke", admin)
    call(svc, "POST", "/v1/admin/datasets/consent/consent", admin, json={"user_ids": [], "opt_in": False})
    entries = call(svc, "GET", "/v1/admin/log", admin).json()
    assert entries["consistency"]["consistent"], entries["consistency"]
    actions = {e["action"] for e in entries["log"]}
    assert {"charge", "release", "repeat", "refused", "invalid", "client_add", "client_revoke", "consent"} <= actions
    for e in entries["log"]:
        assert "value" not in json.dumps(e["parameters"])  # records of releases, never released values
    out = tmp_path / "report.html"
    assert main(["service", "report", "--db", str(svc["base"] / "service.sqlite"), "--out", str(out)]) == 0
    text = out.read_text()
    from privagg.harness.report import CSS

    assert CSS in text and "ledger and the log agree" in text and "alice" in text
    assert "<script>" not in text


def test_the_clients_command(tmp_path, capsys):
    from privagg.cli import main

    db = str(tmp_path / "cli.sqlite")
    assert main(["clients", "add", "shop", "--epsilon", "2", "--window", "1D", "--dataset", "synthetic", "--db", db]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("pa_") and len(token) > 40
    assert main(["clients", "add", "shop", "--epsilon", "2", "--db", db]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["clients", "add", "bad", "--epsilon", "1", "--window", "3min", "--db", db]) == 2
    assert "window '3min'" in capsys.readouterr().err
    assert main(["clients", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "shop" in listed and "per 1D" in listed and token not in listed
    assert main(["clients", "revoke", "shop", "--db", db]) == 0
    store = Store(db)
    assert store.authenticate(token) == "revoked"
    store.close()


def test_serve_refuses_a_port_in_use(svc, capsys):
    from privagg.cli import main

    port = int(svc["url"].rsplit(":", 1)[1])
    assert main(["serve", "--db", str(svc["base"] / "other.sqlite"), "--port", str(port)]) == 2
    assert "cannot listen there" in capsys.readouterr().err


def test_consent_in_a_world_folder_is_read_again_at_each_release(tmp_path):
    import os

    from privagg.service.catalogue import from_folder

    world = generate_world(n_users=100, n_cells=20, days=1, seed=2)
    world.save(tmp_path / "w")
    store = Store(tmp_path / "consent.sqlite")
    ds = from_folder("w", tmp_path / "w", 1.0, 0.0)
    assert ds.current(store).users["opt_in"].sum() == world.users["opt_in"].sum()
    users = world.users.copy()
    users["opt_in"] = False
    path = next((tmp_path / "w").glob("users.*"))
    users.to_parquet(path, index=False) if path.suffix == ".parquet" else users.to_csv(path, index=False)
    os.utime(path, (1, 1))  # a new modification time even within the file system's clock resolution
    assert not ds.current(store).users["opt_in"].any()
    store.set_consent("w", [int(users["user_id"].iloc[0])], True, by="test")
    assert ds.current(store).users["opt_in"].sum() == 1
    store.close()


@pytest.mark.parametrize("text,message", [
    ("datasets = 1", "names no dataset"),
    ("[datasets.a]\ncap_epsilon = 1", "exactly one of world"),
    ("[datasets.a]\nsynthetic = { n_users = 10 }\ncolour = 'red'", "unknown key(s) ['colour']"),
    ("[datasets.a]\nsynthetic = { n_users = 10 }\ncap_epsilon = -1", "cap_epsilon = -1"),
    ("[datasets.a]\nsynthetic = { n_users = 10000000, days = 7 }", "subscriber-days"),
    ("[datasets.'a b']\nsynthetic = { n_users = 10 }", "not a valid name"),
    ("[datasets", "not valid TOML"),
])
def test_bad_catalogues_are_refused_in_one_line(tmp_path, text, message):
    from privagg.service.catalogue import load_catalogue

    path = tmp_path / "catalogue.toml"
    path.write_text(text)
    with pytest.raises(PrivaggInputError) as err:
        load_catalogue(path)
    assert message in str(err.value) and "Fix:" in str(err.value)
