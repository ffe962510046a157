"""``rerank serve``: the whole configured pipeline behind the rerank wire formats clients already speak.

Infinity and TEI serve a bare model. This server runs the configured :class:`~rerank_core.Reranker`
(any back end, windows for long documents, calibration, fusion, profiles, a judge stage) under Cohere v2
(``POST /v2/rerank``), Jina / vLLM (``POST /v1/rerank``) and TEI (``POST /rerank``), so the Cohere SDK,
this project's remote back ends and other clients work unchanged (:mod:`rerank_core.serve._wire`).

- Concurrent requests share model batches (the reranker's coalescing, on for local models).
- A bounded queue per worker: a request that would pass ``max_queue_pairs`` / ``max_queue_requests`` gets a
  429 with ``Retry-After``; each request has a deadline and is cancelled when its client goes away.
- Bounded requests (documents, body bytes), optional bearer-token auth, ``/health``, ``/ready``, ``/info``,
  ``/metrics`` (Prometheus), JSON access logs without any text, graceful shutdown, several workers.

```python
from rerank_core.pipeline_config import PipelineConfig
from rerank_core.serve import ServeSettings, create_app, serve

serve(PipelineConfig(model="models/reference-reranker"), ServeSettings(port=8080))
```

The command line: ``rerank serve --model PATH [--config FILE] [--port 8080] [--workers N]``
(:mod:`rerank_core.cli.serve`). Needs the ``serve`` extra (starlette, uvicorn, prometheus-client).
See docs/serving.md.
"""

from __future__ import annotations

from rerank_core.serve._app import create_app
from rerank_core.serve._run import BackgroundServer, serve
from rerank_core.serve._settings import ServeSettings
from rerank_core.serve._wire import ROUTES

__all__ = ["ROUTES", "BackgroundServer", "ServeSettings", "create_app", "serve"]
