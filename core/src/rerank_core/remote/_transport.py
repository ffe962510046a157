"""The httpx clients of the remote back ends, bounded in time and in size.

- **Time.** httpx's ``timeout`` bounds each socket operation, not a request: a server that sends one byte
  every 0.4 s never trips a 1 s read timeout. Every try of a request therefore runs under a *try
  deadline* (:func:`try_deadline`, set by the :class:`~rerank_core.remote.retry.Dispatcher`): the sync
  clients' sockets clamp every connect, read and write to the time left and fail with a timeout once it is
  spent (headers and body alike); async tries are bounded by ``asyncio.timeout`` in the dispatcher.
- **Size.** A response body is streamed and counted after decoding (:class:`_Bounded`): past
  ``max_response_bytes`` it stops with :class:`~rerank_core.remote.http.ResponseTooLargeError`, so a huge
  body or a gzip bomb costs at most the cap in memory. The clients ask for ``gzip, deflate`` only and
  decode those themselves (``zlib`` with a bounded output; ``deflate`` with or without the zlib header,
  as httpx does); any other ``Content-Encoding`` is refused.
- **Proxies.** The clients are built with ``transport=``, for which httpx ignores ``HTTP_PROXY``,
  ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``; unless ``trust_env=False``, they are read here and
  mounted as proxy transports wrapped the same way (deadline and size cap).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from rerank_core.remote.http import InvalidResponseError, ResponseTooLargeError

__all__ = ["ACCEPT_ENCODING", "make_async_client", "make_sync_client", "try_cut_by", "try_deadline"]

ACCEPT_ENCODING = "gzip, deflate"

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("rerank_try_deadline", default=None)
_CUT_BY: contextvars.ContextVar[str | None] = contextvars.ContextVar("rerank_try_cut_by", default=None)


@contextlib.contextmanager
def try_deadline(seconds: float, cut_by: str | None = None) -> Iterator[None]:
    """Bound every socket operation of the sync clients in this context to end within ``seconds``;
    ``cut_by`` says what ends the try when it is not ``timeout`` (the call's deadline), for the error."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    cut = _CUT_BY.set(cut_by)
    try:
        yield
    finally:
        _CUT_BY.reset(cut)
        _DEADLINE.reset(token)


def try_cut_by() -> str | None:
    """What bounds the current try when it is not ``timeout`` (see :func:`try_deadline`), else ``None``."""
    return _CUT_BY.get()


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the try's deadline passed")
    return left if timeout is None else min(timeout, left)


def _deadline_backend(inner: Any) -> Any:
    """A sync httpcore network backend whose streams honour the try deadline."""
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._stream.close()

        def start_tls(  # type: ignore[no-untyped-def]
            self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
        ):
            left = _left(timeout, httpcore.ConnectTimeout)
            return Stream(self._stream.start_tls(ssl_context, server_hostname, left))

        def get_extra_info(self, info: str) -> Any:
            return self._stream.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[no-untyped-def]
            left = _left(timeout, httpcore.ConnectTimeout)
            return Stream(inner.connect_tcp(host, port, left, local_address, socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):  # type: ignore[no-untyped-def]
            left = _left(timeout, httpcore.ConnectTimeout)
            return Stream(inner.connect_unix_socket(path, left, socket_options))

        def sleep(self, seconds: float) -> None:
            inner.sleep(seconds)

    return Backend()


class _Decoder:
    """Counts (and for gzip/deflate, inflates with a bounded output) a response body."""

    def __init__(self, headers: Any, limit: int, backend: str | None) -> None:
        self.limit = limit
        self.backend = backend
        self.count = 0
        self._sniff: bytes | None = None
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._zlib: Any = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
            self._sniff = b""  # the input until the zlib header (2 bytes) is checked: none, raw deflate
        elif encoding in ("", "identity"):
            self._zlib = None
        else:
            raise InvalidResponseError(f"unsupported Content-Encoding {encoding!r}", backend=backend)
        length = headers.get("content-length")
        if self._zlib is None and length is not None and length.isdigit() and int(length) > limit:
            raise self._too_large(f"Content-Length {int(length)}")

    def _too_large(self, what: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"the answer is larger than max_response_bytes={self.limit} ({what}); not read further",
            backend=self.backend,
        )

    def _add(self, data: bytes) -> bytes:
        self.count += len(data)
        if self.count > self.limit:
            raise self._too_large(f"more than {self.limit} bytes after decoding")
        return data

    def feed(self, chunk: bytes) -> bytes:
        if self._zlib is None:
            return self._add(chunk)
        out = []
        data = chunk
        if self._sniff is not None:
            self._sniff += chunk
        while data:
            try:
                piece = self._zlib.decompress(data, self.limit - self.count + 1)
            except zlib.error as exc:
                if self._sniff is not None:  # no zlib header: raw deflate (as httpx falls back to)
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    data, self._sniff = self._sniff, None
                    continue
                raise InvalidResponseError(
                    f"undecodable compressed answer ({exc})", backend=self.backend
                ) from None
            if self._sniff is not None and len(self._sniff) >= 2:
                self._sniff = None  # the header was checked
            out.append(self._add(piece))
            data = self._zlib.unconsumed_tail
        return b"".join(out)

    def flush(self) -> bytes:
        if self._zlib is None:
            return b""
        try:
            return self._add(self._zlib.flush())
        except zlib.error as exc:
            raise InvalidResponseError(
                f"undecodable compressed answer ({exc})", backend=self.backend
            ) from None


def _plain_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """The response's headers without Content-Encoding / Content-Length (the body is handed on decoded)."""
    drop = (b"content-encoding", b"content-length")
    return [(k, v) for k, v in headers.raw if k.lower() not in drop]


def _bounded_transport(inner: Any, limit: int, backend: str | None) -> Any:
    import httpx

    class Stream(httpx.SyncByteStream):
        def __init__(self, stream: Any, decoder: _Decoder) -> None:
            self._stream = stream
            self._decoder = decoder

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._stream:
                data = self._decoder.feed(chunk)
                if data:
                    yield data
            tail = self._decoder.flush()
            if tail:
                yield tail

        def close(self) -> None:
            self._stream.close()

    class Transport(httpx.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            response = inner.handle_request(request)
            try:
                decoder = _Decoder(response.headers, limit, backend)
            except BaseException:
                response.close()
                raise
            return httpx.Response(
                response.status_code,
                headers=_plain_headers(response.headers),
                stream=Stream(response.stream, decoder),
                extensions=response.extensions,
            )

        def close(self) -> None:
            inner.close()

    return Transport()


def _async_bounded_transport(inner: Any, limit: int, backend: str | None) -> Any:
    import httpx

    class Stream(httpx.AsyncByteStream):
        def __init__(self, stream: Any, decoder: _Decoder) -> None:
            self._stream = stream
            self._decoder = decoder

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._stream:
                data = self._decoder.feed(chunk)
                if data:
                    yield data
            tail = self._decoder.flush()
            if tail:
                yield tail

        async def aclose(self) -> None:
            await self._stream.aclose()

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: Any) -> Any:
            response = await inner.handle_async_request(request)
            try:
                decoder = _Decoder(response.headers, limit, backend)
            except BaseException:
                await response.aclose()
                raise
            return httpx.Response(
                response.status_code,
                headers=_plain_headers(response.headers),
                stream=Stream(response.stream, decoder),
                extensions=response.extensions,
            )

        async def aclose(self) -> None:
            await inner.aclose()

    return Transport()


def _client_options(options: dict[str, Any]) -> dict[str, Any]:
    options = dict(options)
    headers = {"accept-encoding": ACCEPT_ENCODING, **(options.pop("headers", None) or {})}
    return {**options, "headers": headers}


def _proxy_mounts(options: dict[str, Any], transport: Any) -> dict[str, Any]:
    """The environment's proxies as httpx reads them, each mounted as ``transport(proxy_url)`` (a pattern
    whose proxy is ``None`` goes direct), or none when the client is not to trust the environment."""
    if not options.get("trust_env", True):
        return {}
    from httpx._utils import get_environment_proxies

    return {
        pattern: None if url is None else transport(url) for pattern, url in get_environment_proxies().items()
    }


def make_sync_client(
    httpx: Any, *, max_connections: int, max_response_bytes: int, backend: str | None = None, **options: Any
) -> Any:
    """An ``httpx.Client`` whose tries honour :func:`try_deadline` and whose answers are capped (the
    environment's proxies included)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)

    def transport(proxy: str | None = None) -> Any:
        inner = httpx.HTTPTransport(limits=limits, proxy=proxy)
        pool = getattr(inner, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):  # httpcore's ConnectionPool
            pool._network_backend = _deadline_backend(pool._network_backend)
        return _bounded_transport(inner, max_response_bytes, backend)

    mounts = _proxy_mounts(options, transport)
    return httpx.Client(transport=transport(), mounts=mounts, **_client_options(options))


def make_async_client(
    httpx: Any, *, max_connections: int, max_response_bytes: int, backend: str | None = None, **options: Any
) -> Any:
    """An ``httpx.AsyncClient`` whose answers are capped (its tries are bounded by the dispatcher; the
    environment's proxies included)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)

    def transport(proxy: str | None = None) -> Any:
        inner = httpx.AsyncHTTPTransport(limits=limits, proxy=proxy)
        return _async_bounded_transport(inner, max_response_bytes, backend)

    mounts = _proxy_mounts(options, transport)
    return httpx.AsyncClient(transport=transport(), mounts=mounts, **_client_options(options))
