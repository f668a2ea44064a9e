"""The HTTP service (FastAPI): differentially private aggregates for accredited third parties, and nothing else.

Every request but ``/v1/health`` and the OpenAPI document carries
``Authorization: Bearer TOKEN``. A client sees its own releases and budget
only; an administrator manages clients and consent and reads the log and the
caps. Errors are JSON ``{"error": "one line"}``: 400 for a bad request (the
library's message), 401 no or bad or revoked token, 403 not allowed or
budget refused, 404 nothing of yours by that name, 409 idempotency key
reused for another request, 413 too large, 429 rate limit, 504 time limit;
never a traceback.

Endpoints
---------
``GET  /v1/datasets``                       the catalogue (public facts: window, cells)
``POST /v1/releases/{function}``            a release; body: ``dataset`` and the function's parameters
``GET  /v1/releases``, ``/v1/releases/{id}`` the client's own releases
``POST /v1/compare``                        compare two of the client's releases (no cost)
``GET  /v1/budget``                         the client's budget per dataset in the current window
``GET/POST /v1/admin/clients``, ``POST /v1/admin/clients/{name}/revoke``
``GET  /v1/admin/budget``, ``GET /v1/admin/log``, ``POST /v1/admin/datasets/{name}/consent``
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from privagg.errors import BudgetExceededError, PrivaggInputError
from privagg.service.store import Client, Store, check_name

API = "/v1"


@dataclass(frozen=True)
class Settings:
    """How the service runs.

    Attributes
    ----------
    db
        Database URL or SQLite path (:class:`~privagg.service.store.Store`).
    catalogue
        TOML catalogue (:mod:`privagg.service.catalogue`); ``None``: one synthetic dataset.
    synthetic
        Options of the default synthetic World (``n_users``, ``n_cells``, ``days``, ``seed``).
    cap_epsilon, cap_delta
        Global cap of datasets whose catalogue entry gives none.
    max_body
        Largest request body, bytes.
    rate_limit, rate_period
        At most ``rate_limit`` requests per client in any ``rate_period`` seconds.
    time_limit
        Seconds a release may take before the request is answered 504 (the release finishes and is stored).
    max_keys
        Most keys an answer may hold (larger requests are refused before anything is computed).
    workers
        Threads computing releases at once.
    """

    db: str = "privagg-service.sqlite"
    catalogue: str | None = None
    synthetic: tuple[tuple[str, Any], ...] = ()
    cap_epsilon: float = 10.0
    cap_delta: float = 1e-6
    max_body: int = 64 * 1024
    rate_limit: int = 120
    rate_period: float = 60.0
    time_limit: float = 60.0
    max_keys: int = 200_000
    workers: int = 8


class Problem(Exception):
    """An HTTP error with a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


# --------------------------------------------------------------------------- request bodies
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReleaseBody(BaseModel):
    """Parameters of a release: ``dataset`` and the library function's keyword arguments."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"dataset": "synthetic", "epsilon": 0.5, "level": "zone", "time_bin": "1D"}]})
    dataset: str | None = Field(None, description="dataset of the catalogue (default: the only one, or 'synthetic')")
    epsilon: Any = Field(None, description="pure DP loss (discrete Laplace)")
    rho: Any = Field(None, description="zCDP loss (discrete Gaussian)")
    delta: Any = None
    level: Any = Field(None, description="cell, zone or district")
    time_bin: Any = Field(None, description="15min .. 1D, or null for the whole window")
    keys: Literal["public", "private"] | None = Field(None, description="public key domain (default) or private selection")


class CompareBody(Strict):
    a: str
    b: str
    on: list[str] | None = None
    shift: dict[str, Any] | None = None
    level: float = 0.95
    nonnegative: bool = True


class ClientBody(Strict):
    name: str
    epsilon: float = 0.0
    delta: float = 0.0
    window: str = "7D"
    datasets: list[str] | None = None
    role: Literal["client", "admin"] = "client"
    rate_limit: int | None = None


class ConsentBody(Strict):
    user_ids: list[int] = Field(..., max_length=100_000)
    opt_in: bool


# --------------------------------------------------------------------------- limits
class BodyLimit:
    """ASGI middleware refusing bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    return await _send_error(send, 413, self._message())
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            # The service speaks JSON only: a body is read as JSON whatever content type the client named.
            headers = [(n, v) for n, v in scope.get("headers", []) if n != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        # Read the whole body first (it is small by then), so that an oversized one sent in chunks without
        # Content-Length is refused with 413 before the application parses any of it.
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await _send_error(send, 413, self._message())
            if not message.get("more_body", False):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"request body larger than {self.limit:,} bytes. Fix: send a smaller request."


async def _send_error(send: Any, status: int, message: str) -> None:
    import json

    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """At most ``limit`` requests per client (or the client's own limit) in any ``period`` seconds (sliding
    window, in memory)."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period = limit, period
        self._seen: dict[int, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def admit(self, client: Client) -> None:
        now = time.monotonic()
        with self._lock:
            limit = client.rate_limit or self.limit
            q = self._seen[client.id]
            while q and q[0] <= now - self.period:
                q.popleft()
            if len(q) >= limit:
                wait = max(1, int(q[0] + self.period - now + 1))
                raise Problem(429, f"client {client.name!r} sent more than {limit} requests in {self.period:g} s. "
                                   f"Fix: retry in {wait} s.", {"Retry-After": str(wait)})
            q.append(now)


# --------------------------------------------------------------------------- the app
def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application (datasets loaded and registered now, so a bad catalogue fails at start)."""
    from privagg import __version__
    from privagg.service.catalogue import load_catalogue

    settings = settings or Settings()
    store = Store(settings.db)
    catalogue = load_catalogue(settings.catalogue, synthetic_options=dict(settings.synthetic),
                               cap_epsilon=settings.cap_epsilon, cap_delta=settings.cap_delta)
    for ds in catalogue.values():
        store.register_dataset(ds.name, ds.cap_epsilon, ds.cap_delta)
    limiter = RateLimiter(settings.rate_limit, settings.rate_period)
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="privagg-release")
    locks: dict[tuple[int, str], threading.Lock] = collections.defaultdict(threading.Lock)
    locks_guard = threading.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        pool.shutdown(wait=False, cancel_futures=True)
        store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="privagg service",
        version=__version__,
        description="Differentially private mobility aggregates for accredited third parties: per-client budgets "
                    "renewing per window, a global cap per dataset, an append-only log.",
    )
    app.state.store, app.state.catalogue, app.state.settings = store, catalogue, settings
    app.add_middleware(BodyLimit, limit=settings.max_body)

    @app.middleware("http")
    async def _no_store(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        # Answers and budgets are for their client only: no shared cache keeps them.
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(PrivaggInputError)
    async def _input(_: Request, exc: PrivaggInputError) -> JSONResponse:
        from privagg.service.run import ResponseTooLarge

        return JSONResponse({"error": _one_line(exc)}, status_code=413 if isinstance(exc, ResponseTooLarge) else 400)

    @app.exception_handler(BudgetExceededError)
    async def _budget(_: Request, exc: BudgetExceededError) -> JSONResponse:
        return JSONResponse({"error": _one_line(exc), "refused": "budget"}, status_code=403)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        what = str(first.get("msg", "invalid request"))
        if first.get("type") == "json_invalid":
            return JSONResponse({"error": "the body is not valid JSON. Fix: send a JSON object."}, status_code=400)
        return JSONResponse({"error": _one_line(f"{where}: {what}. Fix: correct {where} (see /openapi.json).")},
                            status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = "no such endpoint. Fix: see /openapi.json." if exc.status_code == 404 else str(exc.detail)
        return JSONResponse({"error": text}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); nothing about your request was "
                                      "published. Fix: retry later, and report it to the operator."},
                            status_code=500)

    # -- authentication ------------------------------------------------------------------------------
    def caller(authorization: str | None = Header(None)) -> Client:
        if not authorization:
            raise Problem(401, "no token. Fix: send the header 'Authorization: Bearer TOKEN'.",
                          {"WWW-Authenticate": "Bearer"})
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or len(token) > 200:
            raise Problem(401, "malformed Authorization header. Fix: send 'Authorization: Bearer TOKEN'.",
                          {"WWW-Authenticate": "Bearer"})
        found = store.authenticate(token.strip())
        if found is None:
            raise Problem(401, "unknown token. Fix: use the token printed by `privagg clients add`.",
                          {"WWW-Authenticate": "Bearer"})
        if found == "revoked":
            raise Problem(401, "this token was revoked. Fix: ask the operator for a new client.",
                          {"WWW-Authenticate": "Bearer"})
        assert isinstance(found, Client)
        limiter.admit(found)
        return found

    def client_only(who: Client = Depends(caller)) -> Client:
        if who.is_admin:
            raise Problem(403, "administrators manage the service and make no releases. Fix: use a client's token.")
        return who

    def admin_only(who: Client = Depends(caller)) -> Client:
        if not who.is_admin:
            raise Problem(403, "this is an administrator's operation. Fix: use an administrator's token.")
        return who

    def dataset_for(who: Client, name: str | None) -> Any:
        if name is None:
            allowed = [d for d in catalogue if who.may_use(d)]
            name = allowed[0] if len(allowed) == 1 else ("synthetic" if "synthetic" in allowed else None)
            if name is None:
                raise PrivaggInputError(f"dataset not given. Fix: send \"dataset\": one of {allowed}.")
        if not isinstance(name, str) or name not in catalogue or not who.may_use(name):
            # The same answer whether the dataset does not exist or is not the client's: no catalogue probing.
            shown = name if isinstance(name, str) and len(name) <= 64 else "(given)"
            raise Problem(404, f"no dataset {shown!r} for client {who.name!r}. Fix: see GET {API}/datasets.")
        return catalogue[name]

    # -- public ------------------------------------------------------------------------------------------
    @app.get(f"{API}/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    # -- clients -------------------------------------------------------------------------------------------
    @app.get(f"{API}/datasets")
    def list_datasets(who: Client = Depends(caller)) -> dict[str, Any]:
        return {"datasets": [d.describe() for n, d in catalogue.items() if who.is_admin or who.may_use(n)]}

    @app.post(f"{API}/releases/{{function}}")
    async def release(function: str, body: ReleaseBody, who: Client = Depends(client_only),
                      idempotency_key: str | None = Header(None)) -> JSONResponse:
        from privagg.service.run import FUNCTIONS, request_hash, run_release

        params = body.model_dump(exclude_unset=True)
        if function not in FUNCTIONS:
            raise Problem(404, f"there is no release function {function[:40]!r}. Fix: use one of {', '.join(FUNCTIONS)}.")
        ds = dataset_for(who, params.pop("dataset", None))
        h = request_hash(ds.name, function, params)
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200 or not idempotency_key.isprintable():
                raise PrivaggInputError("Idempotency-Key must be 1-200 printable characters. Fix: e.g. a UUID.")
            if not store.idempotent(who, idempotency_key, h):
                raise Problem(409, "this Idempotency-Key was used for another request. Fix: a new key for a new request.")

        def work() -> tuple[dict[str, Any], bool]:
            with locks_guard:
                lock = locks[(who.id, h)]
            with lock:  # identical requests of one client, one at a time: the second gets the first's answer
                stored = store.answer_for(who, h)
                if stored is not None:
                    store.record(client=who.name, action="repeat", dataset=ds.name, statistic=stored["statistic"],
                                 parameters=stored["request"], release_id=stored["release_id"],
                                 answer_digest=None, outcome="stored answer returned; nothing charged")
                    return stored, True
                return run_release(store, who, ds, function, params, settings.max_keys), False

        future = asyncio.get_running_loop().run_in_executor(pool, work)
        try:
            answer, repeated = await asyncio.wait_for(asyncio.shield(future), settings.time_limit)
        except asyncio.TimeoutError:
            raise Problem(504, f"the release took longer than {settings.time_limit:g} s. It goes on, and if it is "
                               "charged its answer is kept. Fix: send the same request again later to receive it at "
                               "no further cost.") from None
        except PermissionError:
            raise Problem(401, "this token was revoked. Fix: ask the operator for a new client.") from None
        except BudgetExceededError as exc:
            store.record(client=who.name, action="refused", dataset=ds.name, statistic=function,
                         parameters={"function": function, **params}, outcome=_one_line(exc))
            raise
        except PrivaggInputError as exc:
            store.record(client=who.name, action="invalid", dataset=ds.name, statistic=function,
                         parameters={"function": function, **params}, outcome=_one_line(exc))
            raise
        except Exception as exc:
            store.record(client=who.name, action="error", dataset=ds.name, statistic=function,
                         parameters={"function": function, **params},
                         outcome=f"internal error ({type(exc).__name__}); nothing returned")
            raise
        out = {**answer, "cached": repeated, "charged": {"epsilon": 0.0, "delta": 0.0} if repeated else answer["cost"],
               "budget": store.budget(who, ds.name)}
        return JSONResponse(out)

    @app.get(f"{API}/releases")
    def my_releases(who: Client = Depends(caller)) -> dict[str, Any]:
        return {"client": who.name, "releases": store.list_releases(who)}

    @app.get(f"{API}/releases/{{release_id}}")
    def my_release(release_id: str, who: Client = Depends(caller)) -> dict[str, Any]:
        answer = store.release(who, release_id) if len(release_id) <= 64 else None
        if answer is None:
            raise Problem(404, f"client {who.name!r} has no release with this id. Fix: see GET {API}/releases.")
        return answer

    @app.post(f"{API}/compare")
    def compare(body: CompareBody, who: Client = Depends(client_only)) -> dict[str, Any]:
        import json

        import privagg as pa
        from privagg.service.run import release_from_json

        sides = []
        for name in (body.a, body.b):
            answer = store.release(who, name) if len(name) <= 64 else None
            if answer is None:
                raise Problem(404, f"client {who.name!r} has no release with id {name[:64]!r}. Fix: see GET {API}/releases.")
            sides.append(release_from_json(answer))
        cmp = pa.compare(sides[0], sides[1], on=body.on, shift=body.shift, level=body.level,
                         nonnegative=body.nonnegative)
        table = cmp.to_pandas()
        split = json.loads(table.to_json(orient="split", date_format="iso", date_unit="s", index=False))
        store.record(client=who.name, action="compare", parameters={"a": body.a, "b": body.b, "on": body.on,
                                                                    "shift": body.shift, "level": body.level},
                     outcome=f"{len(table)} keys compared (post-processing, no cost)")
        return {"describe": cmp.describe(), "on": list(cmp.on), "level": cmp.level, "method": cmp.method,
                "notes": list(cmp.notes), "table": {"columns": split["columns"], "data": split["data"]}}

    @app.get(f"{API}/budget")
    def my_budget(who: Client = Depends(client_only)) -> dict[str, Any]:
        return {"client": who.name, "budgets": [store.budget(who, n) for n in catalogue if who.may_use(n)]}

    # -- administrators --------------------------------------------------------------------------------
    @app.get(f"{API}/admin/clients")
    def admin_clients(_: Client = Depends(admin_only)) -> dict[str, Any]:
        return {"clients": [c.public() for c in store.list_clients()]}

    @app.post(f"{API}/admin/clients")
    def admin_add(body: ClientBody, who: Client = Depends(admin_only)) -> dict[str, Any]:
        for d in body.datasets or ():
            if check_name(d, "dataset") not in catalogue:
                raise PrivaggInputError(f"dataset {d!r} is not in the catalogue. Fix: one of {sorted(catalogue)}.")
        client, token = store.add_client(body.name, epsilon=body.epsilon, delta=body.delta, window=body.window,
                                         datasets=body.datasets, role=body.role, rate_limit=body.rate_limit)
        return {"client": client.public(), "token": token,
                "note": "the token is shown once; only its hash is stored"}

    @app.post(f"{API}/admin/clients/{{name}}/revoke")
    def admin_revoke(name: str, who: Client = Depends(admin_only)) -> dict[str, Any]:
        check_name(name, "client name")
        if store.get_client(name) is None:
            raise Problem(404, f"there is no client {name!r}. Fix: see GET {API}/admin/clients.")
        return {"client": store.revoke_client(name, by=who.name).public()}

    @app.get(f"{API}/admin/budget")
    def admin_budget(_: Client = Depends(admin_only)) -> dict[str, Any]:
        per_client = []
        for c in store.list_clients():
            if not c.is_admin:
                per_client.append({"client": c.name, "budgets": [store.budget(c, n) for n in catalogue if c.may_use(n)]})
        return {"caps": store.caps(), "clients": per_client}

    @app.get(f"{API}/admin/log")
    def admin_log(_: Client = Depends(admin_only)) -> dict[str, Any]:
        return {"log": store.log_entries(), "consistency": store.consistency()}

    @app.post(f"{API}/admin/datasets/{{name}}/consent")
    def admin_consent(name: str, body: ConsentBody, who: Client = Depends(admin_only)) -> dict[str, Any]:
        if name not in catalogue:
            raise Problem(404, f"no dataset {name[:64]!r}. Fix: see GET {API}/datasets.")
        n = store.set_consent(name, body.user_ids, body.opt_in, by=who.name)
        return {"dataset": name, "changed": n, "opt_in": body.opt_in}

    return app


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
