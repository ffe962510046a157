"""``rerank serve``: the configured pipeline behind Cohere v2, Jina/vLLM and TEI rerank routes.

```
rerank serve --model PATH_OR_ID [--recipe NAME] [--runtime torch|onnx|openvino] [--quantization int8]
             [--config FILE]
             [--host 127.0.0.1] [--port 8080] [--workers N] [--max-documents 1000] [--timeout 30]
             [--api-key-env RERANK_API_KEY] [--instruction TEXT] [--calibration PATH|model]
```

``--config`` reads a JSON or TOML file (:mod:`rerank_core.pipeline_config`; its ``[serve]`` table holds
:class:`~rerank_core.serve.ServeSettings` by name); flags override the file. The pipeline is checked before
the server starts (a bad option or setting exits with 2); the model then loads in the background while
``/health`` answers and ``/ready`` says 503. See docs/serving.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from rerank_core.cli._common import EXIT_OK, UsageError, non_negative_float, one_line, positive_int
from rerank_core.errors import ConfigurationError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="serve the pipeline over HTTP (Cohere, Jina/vLLM and TEI routes)")
    p.add_argument("--config", help="a JSON or TOML file: model, recipe, [backend], [options], [serve]")
    p.add_argument("--model", help="local folder or Hugging Face id (overrides the file's)")
    p.add_argument("--recipe", help="a decoder-LLM / seq2seq recipe name, or auto")
    p.add_argument("--runtime", choices=("torch", "onnx", "openvino"), help="the local runtime")
    p.add_argument("--quantization", choices=("int8",), help="int8 weights (onnx or openvino runtime)")
    p.add_argument(
        "--threads",
        type=positive_int,
        help="threads per model call in each worker (default: every core, in each worker; with "
        "--workers N on a CPU host, give cores / N)",
    )
    p.add_argument("--device", help="the model's device (default: auto)")
    p.add_argument("--instruction", help="the task's instruction (for models that take one)")
    p.add_argument("--calibration", help="a calibration.json (or its folder), or 'model'")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument(
        "--workers", type=positive_int, help="worker processes, each with its own model (default 1)"
    )
    p.add_argument("--model-name", help="the name answered in 'model' fields")
    p.add_argument("--max-documents", type=positive_int, help="most documents per request (default 1000)")
    p.add_argument("--max-body-bytes", type=positive_int, help="largest request body (default 8 MiB)")
    p.add_argument(
        "--max-queue-pairs", type=positive_int, help="queue bound in pairs, per worker (default 20000)"
    )
    p.add_argument(
        "--max-queue-requests", type=positive_int, help="queue bound in requests, per worker (256)"
    )
    p.add_argument("--max-connections", type=positive_int, help="open connections per worker (default 1024)")
    p.add_argument(
        "--timeout", type=non_negative_float, help="each request's deadline in seconds (default 30)"
    )
    p.add_argument(
        "--api-key-env",
        help="environment variable holding the bearer token to demand; it must be set (default: "
        "RERANK_API_KEY when set, else no authentication)",
    )
    p.add_argument("--no-access-log", action="store_true", help="do not write a JSON line per request")
    p.add_argument("--check", action="store_true", help="load the pipeline, score one pair, and exit")
    p.set_defaults(handler=run)


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    """The pipeline and the server settings from the file and the flags (a usage error when wrong)."""
    from rerank_core.pipeline_config import PipelineConfig, read_config_file
    from rerank_core.serve import ServeSettings

    try:
        data = read_config_file(args.config) if args.config else {}
        if args.model is None and "model" not in data and "reranker" not in data:
            raise UsageError("--model: give a model (or a --config file with one)")
        base = dict(data)
        if args.model is not None:
            base["model"], base["reranker"] = args.model, None
        pipeline = PipelineConfig.from_mapping(base, "--config")
        backend = {
            "runtime": args.runtime,
            "device": args.device,
            "quantization": args.quantization,
            "num_threads": args.threads,
        }
        options = {"instruction": args.instruction, "calibration": args.calibration}
        pipeline = pipeline.replace(
            recipe=args.recipe,
            backend={**pipeline.backend, **{k: v for k, v in backend.items() if v is not None}},
            options={k: v for k, v in options.items() if v is not None},
        )
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError("--timeout: must be > 0 seconds")
        settings = ServeSettings.from_mapping(
            data.get("serve"),
            host=args.host,
            port=args.port,
            workers=args.workers,
            model_name=args.model_name,
            max_documents=args.max_documents,
            max_body_bytes=args.max_body_bytes,
            max_queue_pairs=args.max_queue_pairs,
            max_queue_requests=args.max_queue_requests,
            max_connections=args.max_connections,
            request_timeout_s=args.timeout,
            api_key_env=args.api_key_env,
            access_log=False if args.no_access_log else None,
        )
        settings.api_key()  # a named variable that is unset: refused before anything starts
    except ConfigurationError as exc:
        raise UsageError(one_line(exc)) from exc
    return pipeline, settings


def run(args: argparse.Namespace) -> int:
    pipeline, settings = build(args)
    if args.check:
        try:
            reranker = pipeline.build()
            response = reranker.rerank("check", ["check"])
        except ConfigurationError as exc:
            raise UsageError(one_line(exc)) from exc
        print(
            f"ok: {reranker.backend.fingerprint} scored one pair ({response.results[0].relevance_score:.4f})"
        )
        return EXIT_OK
    from rerank_core.serve import serve
    from rerank_core.serve._app import require_serve_extra

    require_serve_extra()  # before anything binds or loads
    serve(pipeline, settings)
    return EXIT_OK
