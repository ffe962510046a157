"""Running the app: :func:`serve` (uvicorn, in the foreground, one or several worker processes) and
:class:`BackgroundServer` (a thread on loopback, for tests, benchmarks and embedding)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from rerank_core.errors import ConfigurationError
from rerank_core.pipeline_config import PipelineConfig
from rerank_core.serve._settings import ServeSettings

__all__ = ["BackgroundServer", "serve"]

_SPEC_ENV = "RERANK_SERVE_SPEC"


def serve(pipeline: PipelineConfig, settings: ServeSettings) -> None:
    """Serve ``pipeline`` with uvicorn until SIGINT/SIGTERM, then finish in-flight requests (at most
    ``settings.graceful_timeout_s``) and close the model. Several ``settings.workers``: each worker
    process builds its own pipeline from the same description, and ``/metrics`` sums them all."""
    import uvicorn

    _log_to_stderr()
    common = {
        "host": settings.host,
        "port": settings.port,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
        "limit_concurrency": settings.max_connections,
        "access_log": False,  # ours has no query string, no text, no header values
        "log_level": "info",
        "lifespan": "on",
    }
    if settings.workers == 1:
        from rerank_core.serve._app import create_app

        uvicorn.run(create_app(pipeline, settings), **common)
        return
    # uvicorn's workers import the app from a string: they read the description from the environment.
    os.environ[_SPEC_ENV] = json.dumps({"pipeline": pipeline.to_dict(), "settings": settings.to_dict()})
    made = None
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:  # the workers' counters would add to an earlier run's
        if Path(given).is_dir() and any(Path(given).iterdir()):
            raise ConfigurationError(
                "PROMETHEUS_MULTIPROC_DIR", f"{given} is not empty: empty it (or unset it) before starting"
            )
    else:
        made = tempfile.mkdtemp(prefix="rerank-serve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        uvicorn.run(
            "rerank_core.serve._run:app_from_environment", factory=True, workers=settings.workers, **common
        )
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def app_from_environment() -> Any:
    """The app of one worker process of :func:`serve` (uvicorn's factory)."""
    from rerank_core.serve._app import create_app

    _log_to_stderr()
    spec = json.loads(os.environ[_SPEC_ENV])
    return create_app(PipelineConfig.from_mapping(spec["pipeline"]), ServeSettings(**spec["settings"]))


def _log_to_stderr() -> None:
    logger = logging.getLogger("rerank_core.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class BackgroundServer:
    """The app served by uvicorn in a thread, on a free loopback port (``port=0``) or a given one.

    ``with BackgroundServer(app) as server: httpx.post(server.url + "/v2/rerank", ...)``. Entering waits
    until the server accepts connections (``ready=True`` also waits for ``/ready``, i.e. the model);
    leaving shuts it down as SIGTERM would (in-flight requests finish first)."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, ready: bool = False, timeout: float = 120
    ) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._wait_ready = ready
        self._timeout = timeout
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=30,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self._socket])), daemon=True
        )
        self._thread.start()
        try:
            self._wait(time.monotonic() + self._timeout)
        except BaseException:
            self.stop()  # a server that failed to start is not left running
            raise

    def _wait(self, deadline: float) -> None:
        while not self.server.started:
            if not self._thread or not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError("app", "the server did not start (see the log above)")
            time.sleep(0.02)
        if self._wait_ready:
            import httpx

            while (answer := httpx.get(self.url + "/ready", timeout=5)).status_code != 200:
                if answer.json().get("status") == "failed":
                    raise ConfigurationError(
                        "app", f"the pipeline failed to load: {answer.json().get('error')}"
                    )
                if time.monotonic() > deadline:
                    raise ConfigurationError("app", "the pipeline did not become ready in time")
                time.sleep(0.1)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._socket.close()
