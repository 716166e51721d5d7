"""The explorer's web server: a FastAPI app that serves the page and a JSON API over rnnscope.app.explorer.

    create_app(report_dir=None, report_builder=None, workers=None, limits=LIMITS)  ->  FastAPI app
    serve(host="127.0.0.1", port=8765, open_browser=False, report_dir=None, workers=None)   (rnnscope serve)

Routes (every /api/... takes the model parameters below as a query string; the README has examples). HEAD on any
of them answers as GET does, without the body: the same status and headers, computed the same way (_HeadAsGet).

    GET /                    the explorer page (static/index.html)
    GET /static/NAME         index.html, app.js, style.css, and plotly.min.js from the installed plotly
                             package (importlib.resources); any other name, "..", "%2e%2e" or an absolute
                             path is 404: a fixed table of files, never a path joined from the request
    GET /api/meta            limits, presets, choices and gamma of every activation: what the page builds from
    GET /api/presets         the presets (explorer.PRESETS)
    GET /api/explore         {"config", "profile", "spectrum", "activation", "seconds"}: what the page draws
    GET /api/profile         the object of `rnnscope profile --json` (analysis.Profile.to_dict() + model, ...)
    GET /api/spectrum        W_hh, its eigenvalues and singular values, gamma, rho, sigma_max, verdict, note
    GET /api/activation      phi, phi' and the histogram of the arguments of phi along the trajectory
    GET /api/bptt            the object of `rnnscope bptt --json` over the first T_h <= 200 steps, + heatmap
    GET /api/heatmap         the same without the full tables and gradients (what the page draws)
    GET /api/memory          the curse of memory: dynamics.memory.memory_sensitivity(...).to_dict() for the plain,
                             normalised and exponential cases, + closed-form curves (explorer_modern.memory_view);
                             parameters lambdas (comma-separated, in (0, 1)), rho, sequences, seed
    GET /api/report          {"status": "ready" | "generating" | "failed" | "idle", "source", "error"}
    GET /report/             the claims report: report_dir (e.g. the rnnscope-report/ of `rnnscope demo`) when
                             given, else generated on first visit (rnnscope.seeds.claims + report.write_report, about a
                             minute) into a temporary folder deleted at shutdown; a waiting page meanwhile

Model parameters: cell, activation, hidden, length, batch, one of gain | rho | sigma_max, input_scale, init,
bias, seed, and the modern cells' options r_min, r_max (lru), dt_min, dt_max (mamba) (explorer.ExplorerConfig;
a modern cell takes no W_hh scale, init or bias: explorer_modern). Errors: 422 {"error": "what: expected X, got Y"}
for a malformed or out-of-range value, an unknown or repeated parameter, or a setting over the budget of what its
endpoint computes (explorer.check_budget: the spectrum its eigen- and singular values, the activation its unroll,
profile and explore the profile's T B S^3, bptt and heatmap their (t, k) table; memory explorer_modern's
check_memory_budget), refused before it is queued; 404 for anything else.

Concurrency: the computations (explore, profile, spectrum, activation, bptt, heatmap, memory) run in a pool of
`workers` processes (rnnscope.app.web.pool.ComputePool; default os.cpu_count()), one computation per process at a
time on one torch thread, in arrival order; each worker renders its answer to JSON bytes, which the server relays
with Server-Timing compute (in the worker) and wait (queue and transfer). A client that disconnects cancels its
work: waiting, it leaves the queue; running, its worker is killed and replaced (499 in the log, nobody to answer).
A worker that dies is replaced and its request run once more; a second death answers that request alone with 503.
The pool starts and stops with the app (lifespan): no worker is left behind. A script that runs the app itself
(create_app, background) keeps its code under `if __name__ == "__main__":` (the workers import the main script;
notebooks and `rnnscope serve` need nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.resources
import socket
import sys
import tempfile
import threading
import time
from html import escape
from pathlib import Path
from typing import Callable, Literal

import torch
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...core.activations import ACTIVATIONS as ACTIVATION_FUNCTIONS
from ...core.vocab import ACTIVATIONS, ANALYSIS_KINDS, CELL_KINDS, MODERN_KINDS
from ...core.errors import InputError
from ...core.version import VERSION
from ..explorer import BIASES, EXPLORER_INITS, LIMITS, SCALES, ExplorerConfig, Limits, check_budget, presets
from ..explorer_modern import (ACTIVATED, DEFAULT_ACTIVATION, MEMORY_CASES, MEMORY_DEFAULTS, OPTIONS,
                               check_memory_budget, default_activation, option_defaults, parse_lambdas)
from .pool import ClientGone, ComputePool, PoolClosed, WorkerDied, disconnected

__all__ = ["create_app", "serve", "background", "ComputePool", "STATIC_FILES", "MODEL_PARAMETERS"]

_STATIC = importlib.resources.files("rnnscope.app.web") / "static"
_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8", "plotly.min.js": "text/javascript; charset=utf-8"}


def _plotly_js():
    """plotly.js as bundled in the plotly Python package (no CDN, nothing vendored here)."""
    return importlib.resources.files("plotly") / "package_data" / "plotly.min.js"


STATIC_FILES: dict[str, Callable[[], object]] = {
    "index.html": lambda: _STATIC / "index.html",
    "app.js": lambda: _STATIC / "app.js",
    "style.css": lambda: _STATIC / "style.css",
    "plotly.min.js": _plotly_js,
}

# what each model parameter expects, for the 422 messages ("hidden: expected an integer in [2, 256], got '300'")
_EXPECT = {
    "cell": f"one of {', '.join(ANALYSIS_KINDS)}",
    "activation": f"one of {', '.join(ACTIVATIONS)} (none for "
                  f"{', '.join(k for k in ANALYSIS_KINDS if k not in ('elman', 'pal') + ACTIVATED)})",
    "hidden": f"an integer in [{LIMITS.hidden[0]}, {LIMITS.hidden[1]}]",
    "length": f"an integer in [{LIMITS.length[0]}, {LIMITS.length[1]}]",
    "batch": f"an integer in [{LIMITS.batch[0]}, {LIMITS.batch[1]}]",
    "gain": f"a finite number in [{LIMITS.value[0]:g}, {LIMITS.value[1]:g}]",
    "rho": f"a finite number in [{LIMITS.value[0]:g}, {LIMITS.value[1]:g}]",
    "sigma_max": f"a finite number in [{LIMITS.value[0]:g}, {LIMITS.value[1]:g}]",
    "input_scale": f"a finite number in [{LIMITS.input_scale[0]:g}, {LIMITS.input_scale[1]:g}]",
    "init": f"one of {', '.join(EXPLORER_INITS)}",
    "bias": f"one of {', '.join(BIASES)}",
    "seed": f"an integer in [{LIMITS.seed[0]}, {LIMITS.seed[1]}]",
    "r_min": f"a finite number in [{LIMITS.r_min[0]:g}, {LIMITS.r_min[1]:g}) (lru only)",
    "r_max": f"a finite number in ({LIMITS.r_max[0]:g}, {LIMITS.r_max[1]:g}] (lru only)",
    "dt_min": f"a finite number in [{LIMITS.dt_min[0]:g}, {LIMITS.dt_min[1]:g}] (mamba only)",
    "dt_max": f"a finite number in [{LIMITS.dt_max[0]:g}, {LIMITS.dt_max[1]:g}] (mamba only)",
}
MODEL_PARAMETERS = tuple(_EXPECT)


def _config(
    request: Request,
    cell: Literal[ANALYSIS_KINDS] = Query("elman", description=f"one of {', '.join(ANALYSIS_KINDS)}"),
    activation: Literal[ACTIVATIONS] | None = Query(
        None, description="phi of elman, pal (default tanh), indrnn (relu) and exprnn (tanh); absent for the others"),
    hidden: int = Query(32, ge=LIMITS.hidden[0], le=LIMITS.hidden[1], description="hidden size H (S = 2H for lstm)"),
    length: int = Query(200, ge=LIMITS.length[0], le=LIMITS.length[1], description="steps T"),
    batch: int = Query(1, ge=LIMITS.batch[0], le=LIMITS.batch[1], description="sequences B"),
    gain: float | None = Query(None, ge=LIMITS.value[0], le=LIMITS.value[1], allow_inf_nan=False,
                               description="W_hh at this gain (default 1); or give rho or sigma_max instead"),
    rho: float | None = Query(None, ge=LIMITS.value[0], le=LIMITS.value[1], allow_inf_nan=False,
                              description="W_hh rescaled to this largest |eigenvalue| (elman, pal)"),
    sigma_max: float | None = Query(None, ge=LIMITS.value[0], le=LIMITS.value[1], allow_inf_nan=False,
                                    description="W_hh rescaled to this largest singular value (elman, pal)"),
    input_scale: float = Query(0.0, ge=LIMITS.input_scale[0], le=LIMITS.input_scale[1], allow_inf_nan=False,
                               description="inputs x_t ~ N(0, input_scale^2); 0: zeros"),
    init: Literal[EXPLORER_INITS] = Query("normal", description="normal, orthogonal, identity or saddle (S = 2)"),
    bias: Literal[BIASES] = Query("zero", description="zero, or centred: b_h = -W_hh phi(0), at phi' = phi'(0)"),
    seed: int = Query(0, ge=LIMITS.seed[0], le=LIMITS.seed[1], description="seed of the weights and inputs"),
    r_min: float | None = Query(None, ge=LIMITS.r_min[0], lt=LIMITS.r_min[1], allow_inf_nan=False,
                                description="lru: the smallest |lambda| (default 0)"),
    r_max: float | None = Query(None, gt=LIMITS.r_max[0], le=LIMITS.r_max[1], allow_inf_nan=False,
                                description="lru: the largest |lambda| (default 1; > r_min)"),
    dt_min: float | None = Query(None, ge=LIMITS.dt_min[0], le=LIMITS.dt_min[1], allow_inf_nan=False,
                                 description="mamba: the smallest initial step Delta (default 0.001)"),
    dt_max: float | None = Query(None, ge=LIMITS.dt_max[0], le=LIMITS.dt_max[1], allow_inf_nan=False,
                                 description="mamba: the largest initial step Delta (default 0.1; >= dt_min)"),
) -> ExplorerConfig:
    """The model parameters of a request, validated (FastAPI's Query checks, then explorer's own)."""
    names = [k for k, _ in request.query_params.multi_items()]
    unknown = sorted(set(names) - set(MODEL_PARAMETERS))
    if unknown:
        raise InputError(f"parameter: expected only {', '.join(MODEL_PARAMETERS)}, got {', '.join(map(repr, unknown))}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{repeated[0]}: expected one value, got {names.count(repeated[0])}")
    given = [(n, v) for n, v in (("gain", gain), ("rho", rho), ("sigma_max", sigma_max)) if v is not None]
    if len(given) > 1:
        raise InputError(f"W_hh scale: expected one of gain, rho, sigma_max, got {', '.join(n for n, _ in given)}")
    scale, value = given[0] if given else ("gain", 1.0)
    if activation is None:
        activation = default_activation(cell)
    cfg = ExplorerConfig(cell=cell, activation=activation, hidden=hidden, length=length, batch=batch, scale=scale,
                         value=float(value), input_scale=float(input_scale), init=init, bias=bias, seed=seed,
                         r_min=r_min, r_max=r_max, dt_min=dt_min, dt_max=dt_max)
    return cfg.validate()


def _memory_request(request: Request, lambdas: str = Query(MEMORY_DEFAULTS["lambdas"], description=
                    "comma-separated lambdas in (0, 1): the memories 1/(1 - lambda)"),
                    rho: str = Query(str(MEMORY_DEFAULTS["rho"]), description="the inputs' autocorrelation"),
                    sequences: str = Query(str(MEMORY_DEFAULTS["sequences"]), description="Monte Carlo runs per lambda"),
                    seed: str = Query(str(MEMORY_DEFAULTS["seed"]), description="seed of the inputs")) -> dict:
    """/api/memory's parameters, parsed here (their names are not the model's: rho is the inputs' correlation)."""
    names = [k for k, _ in request.query_params.multi_items()]
    allowed = ("lambdas", "rho", "sequences", "seed")
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise InputError(f"parameter: expected only {', '.join(allowed)}, got {', '.join(map(repr, unknown))}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{repeated[0]}: expected one value, got {names.count(repeated[0])}")

    def number(name, text, kind, lo, hi):
        try:
            v = kind(text)
        except ValueError:
            v = None
        if v is None or not (lo <= v <= hi) or (kind is float and not v == v):
            what = "an integer" if kind is int else "a finite number"
            raise InputError(f"{name}: expected {what} in [{lo:{'d' if kind is int else 'g'}}, "
                             f"{hi:{'d' if kind is int else 'g'}}], got {text!r}")
        return v

    return {"lambdas": parse_lambdas(lambdas, LIMITS), "rho": number("rho", rho, float, *LIMITS.memory_rho),
            "sequences": number("sequences", sequences, int, *LIMITS.memory_sequences),
            "seed": number("seed", seed, int, *LIMITS.seed)}


def _error_message(errors) -> str:
    """One line from FastAPI's validation errors: 'name: expected X, got Y' for the first bad parameter."""
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        name = loc[-1] if loc else "request"
        if name in _EXPECT:
            return f"{name}: expected {_EXPECT[name]}, got {e.get('input')!r}"
    e = errors[0] if errors else {}
    return f"{'.'.join(map(str, e.get('loc', ('request',))))}: expected a valid value, got: {e.get('msg', 'invalid')}"


_WAITING = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>rnnscope: generating the claims report</title><link rel="stylesheet" href="/static/style.css"></head>
<body class="waiting"><main><h1>Generating the claims report&hellip;</h1>
<p>rnnscope runs every claim of the seed documents as an experiment (about a minute on two cores). This page
reloads itself every few seconds until the report is ready.</p><p>{status}</p></main></body></html>"""


class _Report:
    """The claims report: a given folder, or one generated once, in the background, into a temporary folder."""

    def __init__(self, report_dir: Path | None, builder: Callable[[Path], object] | None):
        self.given = None if report_dir is None else Path(report_dir)
        self.builder = builder or _build_claims_report
        self.lock = threading.Lock()
        self.status = "ready" if self.given is not None else "idle"
        self.error: str | None = None
        self.tmp: tempfile.TemporaryDirectory | None = None
        self.thread: threading.Thread | None = None

    @property
    def root(self) -> Path | None:
        if self.given is not None:
            return self.given
        return None if self.tmp is None else Path(self.tmp.name)

    def start(self) -> None:
        with self.lock:
            if self.status not in ("idle", "failed"):
                return
            self.tmp = self.tmp or tempfile.TemporaryDirectory(prefix="rnnscope-report-")
            self.status, self.error = "generating", None
            self.thread = threading.Thread(target=self._generate, name="rnnscope-report", daemon=True)
            self.thread.start()

    def _generate(self) -> None:
        try:
            self.builder(Path(self.tmp.name))
            if not (Path(self.tmp.name) / "index.html").is_file():
                raise RuntimeError("the report builder wrote no index.html")
            status, error = "ready", None
        except Exception as e:  # shown on the waiting page and by /api/report; a later visit retries
            status, error = "failed", f"{type(e).__name__}: {e}"
        with self.lock:
            self.status, self.error = status, error

    def to_dict(self) -> dict:
        return {"status": self.status, "error": self.error,
                "source": str(self.given) if self.given is not None else "generated from rnnscope claims"}

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=120)
        if self.tmp is not None:
            self.tmp.cleanup()


def _build_claims_report(out: Path) -> None:
    """run_claims() and report.write_report(out, claims, no reproductions): out/index.html."""
    from ...seeds.claims import run_claims
    from ...seeds.report import write_report
    write_report(out, [c.to_dict(figure=True) for c in run_claims()], [])


def _inside(root: Path, rel: str) -> Path | None:
    """root/rel if rel names a file inside root (no '..', no absolute path, no symlink out), else None."""
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    base = root.resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


class _HeadAsGet:
    """ASGI middleware: HEAD is answered as GET is, without the body (RFC 9110 9.3.2): the same status and headers,
    Content-Length included, from the same route, computed the same way."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def create_app(report_dir: str | Path | None = None, report_builder: Callable[[Path], object] | None = None,
               workers: int | None = None, limits: Limits = LIMITS) -> FastAPI:
    """The explorer's app. report_dir: a folder with the claims report's index.html (None: generate it on first
    visit with report_builder(out_dir), default rnnscope.seeds.claims + report.write_report); workers: processes
    that compute (ComputePool; None: os.cpu_count()), forked when the app starts (lifespan) and stopped with it;
    limits: the budgets every request is held to (explorer.check_budget, in the server before a request is queued
    and again in the worker; the query's declared ranges are LIMITS's)."""
    if report_dir is not None and not (Path(report_dir) / "index.html").is_file():
        raise InputError(f"report: expected a folder with index.html (e.g. the rnnscope-report/ of rnnscope demo), "
                         f"got {str(report_dir)!r}")
    if not isinstance(limits, Limits):
        raise InputError(f"limits: expected an explorer.Limits, got {type(limits).__name__}")
    report = _Report(None if report_dir is None else Path(report_dir), report_builder)
    pool = ComputePool(workers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await pool.start()
        try:
            yield
        finally:
            await pool.close()
            report.close()

    app = FastAPI(title="rnnscope explorer", version=VERSION, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan,
                  description="The JSON API behind `rnnscope serve`: every number comes from rnnscope's engine.")
    app.add_middleware(_HeadAsGet)
    app.state.report = report
    app.state.pool = pool

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        return JSONResponse({"error": " ".join(str(exc).split())}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        return JSONResponse({"error": _error_message(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        what = "not found" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse({"error": what}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def computed(request: Request, view: str, payload) -> Response:
        """/api/<view> computed by a worker of the pool (its JSON bytes relayed as they are), with Server-Timing
        compute (in the worker) and wait (queue and transfer); 499 when the client has gone (its work stopped:
        ComputePool), 422 for the worker's InputError, 503 when its worker died twice or the pool stops."""
        started = time.perf_counter()
        gone = asyncio.ensure_future(disconnected(request.receive))
        try:
            answer = await pool.run((view, payload, limits), gone)
        except ClientGone:
            return Response(status_code=499)  # nobody is waiting for it (nginx's "client closed request")
        except WorkerDied as e:
            return JSONResponse({"error": f"worker: expected a computation that completes, got {e}"}, status_code=503)
        except PoolClosed as e:
            return JSONResponse({"error": str(e)}, status_code=503)
        finally:
            gone.cancel()
        kind = answer[0]
        if kind == "refused":
            return JSONResponse({"error": answer[1]}, status_code=422)
        if kind == "failed":
            return JSONResponse({"error": f"{view}: expected an answer, got {answer[1]}"}, status_code=500)
        body, seconds = answer[1], answer[2]
        wait = max(0.0, time.perf_counter() - started - seconds)
        return Response(body, media_type="application/json",
                        headers={"Server-Timing": f"compute;dur={seconds * 1e3:.1f}, wait;dur={wait * 1e3:.1f}",
                                 "Cache-Control": "no-store"})

    async def model_view(request: Request, view: str, cfg: ExplorerConfig) -> Response:
        check_budget(cfg, limits, view)  # refused here, before it takes a worker's place in the queue
        return await computed(request, view, cfg)

    # ------------------------------------------------------------------ page and static files

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return static("index.html")

    @app.get("/static/{name:path}", include_in_schema=False)
    def static(name: str) -> Response:
        make = STATIC_FILES.get(name)  # a fixed table: nothing from the request reaches the file system
        if make is None:
            raise StarletteHTTPException(404)
        with importlib.resources.as_file(make()) as path:
            return FileResponse(path, media_type=_TYPES[name], headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------------ API

    @app.get("/api/meta")
    def meta() -> JSONResponse:
        return JSONResponse({
            "limits": limits.to_dict(), "presets": presets(), "cells": list(ANALYSIS_KINDS),
            "activations": {n: {"gamma": a.gamma} for n, a in ACTIVATION_FUNCTIONS.items()},
            "inits": list(EXPLORER_INITS), "scales": list(SCALES), "biases": list(BIASES),
            "parameters": dict(_EXPECT), "report": report.to_dict(), "seeds_cells": list(CELL_KINDS),
            "modern_cells": list(MODERN_KINDS), "activated": list(ACTIVATED), "default_activation": DEFAULT_ACTIVATION,
            "options": option_defaults(), "option_kinds": {k: list(v) for k, v in OPTIONS.items()},
            "memory": {**MEMORY_DEFAULTS, "cases": list(MEMORY_CASES)}})

    @app.get("/api/presets")
    def get_presets() -> JSONResponse:
        return JSONResponse(presets())

    @app.get("/api/explore")
    async def get_explore(request: Request, cfg: ExplorerConfig = Depends(_config)) -> Response:
        return await model_view(request, "explore", cfg)

    @app.get("/api/profile")
    async def get_profile(request: Request, cfg: ExplorerConfig = Depends(_config)) -> Response:
        return await model_view(request, "profile", cfg)

    @app.get("/api/spectrum")
    async def get_spectrum(request: Request, cfg: ExplorerConfig = Depends(_config)) -> Response:
        return await model_view(request, "spectrum", cfg)

    @app.get("/api/activation")
    async def get_activation(request: Request, cfg: ExplorerConfig = Depends(_config)) -> Response:
        return await model_view(request, "activation", cfg)

    @app.get("/api/bptt")
    async def get_bptt(request: Request, cfg: ExplorerConfig = Depends(_config)) -> Response:
        return await model_view(request, "bptt", cfg)

    @app.get("/api/heatmap")
    async def get_heatmap(request: Request, cfg: ExplorerConfig = Depends(_config)) -> Response:
        return await model_view(request, "heatmap", cfg)

    @app.get("/api/memory")
    async def get_memory(request: Request, q: dict = Depends(_memory_request)) -> Response:
        check_memory_budget(q["lambdas"], q["sequences"], limits)
        return await computed(request, "memory", q)

    @app.get("/api/report")
    def report_status() -> JSONResponse:
        return JSONResponse(report.to_dict())

    # ------------------------------------------------------------------ the claims report

    @app.get("/report", include_in_schema=False)
    def report_redirect() -> Response:
        return RedirectResponse("/report/")

    @app.get("/report/{rel:path}", include_in_schema=False)
    def report_file(rel: str) -> Response:
        if report.status != "ready":
            if rel not in ("", "index.html"):
                raise StarletteHTTPException(404)
            failed = report.error if report.status == "failed" else None
            report.start()  # once; after a failure, again
            detail = f"The last attempt failed ({escape(failed)}); trying again." if failed else "Working on it."
            return HTMLResponse(_WAITING.replace("{status}", detail), status_code=202,
                                headers={"Cache-Control": "no-store"})
        path = _inside(report.root, rel or "index.html")
        if path is None:
            raise StarletteHTTPException(404)
        return FileResponse(path)

    return app


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or InputError with one line when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InputError(f"host: expected an address or host name of this machine, got {host!r} ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise InputError(f"port: expected a free port on {host}, got {port} (already in use; try --port "
                             f"{port + 1})") from None
        raise InputError(f"host: expected an address this machine can listen on, got {host}:{port} ({e.strerror})") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False,
          report_dir: str | Path | None = None, workers: int | None = None) -> None:
    """Run the explorer until Ctrl-C: http://host:port/ (127.0.0.1 unless told otherwise; port 0: any free one).

    report_dir: the claims report to link; None uses ./rnnscope-report/ when it has an index.html (written by
    `rnnscope demo`), else generates one on first visit. workers: the processes that compute (None: the CPU
    count). Raises InputError for a port in use, a bad host or a bad worker count.
    """
    import uvicorn

    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"port: expected an integer in [0, 65535], got {port!r}")
    if report_dir is None and (Path("rnnscope-report") / "index.html").is_file():
        report_dir = Path("rnnscope-report")
    app = create_app(report_dir, workers=workers)
    sock = _listen(host, port)
    port = sock.getsockname()[1]
    torch.set_num_threads(1)  # this process only relays (the workers compute, one torch thread each)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    report = app.state.report.to_dict()["source"]
    sys.stderr.write(f"rnnscope explorer: {url}  (claims report: {report}; Ctrl-C to stop)\n")
    sys.stderr.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    if open_browser:
        import webbrowser

        def opener() -> None:
            for _ in range(100):  # wait for the server to answer, then open the page
                if server.started:
                    break
                time.sleep(0.05)
            webbrowser.open(url)
        threading.Thread(target=opener, daemon=True).start()
    try:
        server.run(sockets=[sock])  # until Ctrl-C or SIGTERM: uvicorn shuts down, then re-raises the signal
    except KeyboardInterrupt:  # the normal way to stop a local server, not an error
        pass
    finally:
        sock.close()
    sys.stderr.write("rnnscope explorer: stopped\n")


@contextlib.contextmanager
def background(app: FastAPI | None = None, host: str = "127.0.0.1", port: int = 0):
    """Run an app (default create_app()) in a background thread; yield its base URL, stop it on exit.

    For tests and notebooks:
        >>> import json, urllib.request
        >>> with background() as url:
        ...     json.load(urllib.request.urlopen(url + "api/profile?hidden=8"))["verdict"]
        'exploding possible'
    """
    import uvicorn

    app = create_app() if app is None else app
    sock = _listen(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="rnnscope-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the explorer's server did not start")
            time.sleep(0.01)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
