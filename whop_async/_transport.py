"""One session, one send, aiohttp's errors mapped to whop_async's, and every answer
cleared of the key before anything else sees it. The client's only importer of aiohttp
(the stand-in server, ``whop_async.testing``, serves with aiohttp.web).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import aiohttp
from yarl import URL

from ._exceptions import APIConnectionError, APITimeoutError
from ._sansio import NO_SECRETS, Redactor, Response

Session = aiohttp.ClientSession

# Enough sockets for a busy service; the rate-limit engine keeps concurrency below it.
CONNECTION_LIMIT = 100
# The most of an answer read: a page of 100 ad groups in their largest shape is about
# 300 KiB; a server that sends more (or without end) is not read into memory whole.
MAX_ANSWER = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_ENCODED = "Content-Encoding"


class CouldNotConnect(APIConnectionError):
    """No connection could be made at all (refused, no such host): nothing answered.

    ``unresolved`` when the host name does not resolve: no retry will find it.
    """

    def __init__(self, message: str, *, method: str, url: str, unresolved: bool) -> None:
        super().__init__(message, method=method, url=url)
        self.unresolved = unresolved


# aiohttp 3.11 tells a name that does not resolve apart from a refused connection.
_NOT_RESOLVED: type[Exception] | None = getattr(aiohttp, "ClientConnectorDNSError", None)


def _settle_the_allocator() -> None:
    """Free a block of 1 MiB once: glibc then serves blocks up to that size from its
    heap rather than mapping each one afresh. asyncio receives into a new 256 KiB
    buffer per read and shrinks it to the answer; while a bulk run keeps its results,
    each of those buffers was otherwise its own memory mapping (a mmap, mremap and
    munmap a call, and a page fault): a third of unpause_many's CPU. Other allocators
    only see a block freed."""
    block = bytearray(1 << 20)
    del block


_settle_the_allocator()


class Transport:
    """Sends requests to one base URL over an aiohttp session, created lazily in the
    running loop. A session passed in is borrowed: used, never closed. The clients of
    many accounts may share one: each send names the redactor that removes its key
    from the answer and any error before they leave.
    """

    def __init__(self, base_url: str, session: Session | None = None) -> None:
        base = URL(base_url)
        # The authority as written: host and port, an IPv6 address in its brackets.
        self._scheme, self._authority = base.scheme, base.raw_authority
        self._base_path = base.raw_path.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._closed = False

    def open(self) -> None:
        """Create the owned session; must run inside the event loop that will use it.

        Raises:
            RuntimeError: the transport was closed: nothing is sent after ``close()``.
        """
        if self._closed:
            raise RuntimeError("this WhopClient is closed; create a new one")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT),
                # An API client has no use for cookies, and a jar costs time per request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        """Close the session if this transport created it; nothing is sent after."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        timeout: float,
        query_string: str = "",
        redactor: Redactor = NO_SECRETS,
    ) -> Response:
        """Send one request to ``path`` (already escaped) with ``query_string`` (already
        encoded), and read the whole answer, cleared by ``redactor`` of the key sent.

        Raises:
            APITimeoutError: the attempt took longer than ``timeout`` seconds.
            CouldNotConnect: no connection could be made (refused, no such host).
            APIConnectionError: no complete answer (reset, dropped mid-body).
            RuntimeError: the transport is closed.
        """
        self.open()
        assert self._session is not None
        # Built from parts already escaped: yarl need not parse and quote it again.
        url = URL.build(
            scheme=self._scheme,
            authority=self._authority,
            path=self._base_path + path,
            query_string=query_string,
            encoded=True,
        )
        try:
            # Awaited, not entered: ``async with`` would add a frame that every wait
            # for the network passes through.
            answer = await self._session.request(
                method,
                url,
                headers=headers,
                allow_redirects=False,
                timeout=_client_timeout(timeout),
            )
            length = answer.content_length
            if length is not None and length <= MAX_ANSWER and not answer.headers.get(_ENCODED):
                try:
                    # Read it all before the connection returns to the pool.
                    body = await answer.read()
                finally:
                    answer.release()
                return redactor.response(Response(answer.status, answer.headers, body))
            return redactor.response(await _capped(answer))
        except TimeoutError:
            failure: APIConnectionError = APITimeoutError(
                f"{method} {url} timed out after {timeout:g} s", method=method, url=str(url)
            )
        except aiohttp.ClientConnectorError as exc:
            unresolved = _NOT_RESOLVED is not None and isinstance(exc, _NOT_RESOLVED)
            failure = CouldNotConnect(
                redactor.text(f"{method} {url} could not connect: {exc}"),
                method=method,
                url=str(url),
                unresolved=unresolved,
            )
        except aiohttp.ClientError as exc:
            failure = APIConnectionError(
                redactor.text(f"{method} {url} failed: {type(exc).__name__}: {exc}"),
                method=method,
                url=str(url),
            )
        # Raised out here, not from the handlers: aiohttp's exception keeps the request it
        # failed, headers and key included, and would hang on ours as cause or context.
        raise failure


async def _capped(answer: aiohttp.ClientResponse) -> Response:
    """An answer of no stated length, a compressed one, or one said to be too large:
    read up to ``MAX_ANSWER`` bytes, and if there is more, keep what was read, marked
    cut short, and drop the connection rather than read the rest."""
    body = bytearray()
    try:
        async for chunk in answer.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > MAX_ANSWER:
                answer.close()
                return Response(answer.status, answer.headers, bytes(body[:MAX_ANSWER]), True)
    finally:
        answer.release()
    return Response(answer.status, answer.headers, bytes(body))


@functools.lru_cache(maxsize=32)
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)
