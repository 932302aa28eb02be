"""What a call's answer is made into: the model it stands for, or, within
``with_raw_response``, a RawResponse holding the answer as it came."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from . import _sansio
from ._converter import ShapeError, structure
from ._response import RAW_REQUESTED, RawResponse, SentRequest

if TYPE_CHECKING:
    from ._call import Call, Wiring

T = TypeVar("T")

Answer = tuple[_sansio.Response, object]
Finish = Callable[[Answer, "Call"], T]
"""Makes a call's answer (the response, its JSON data) into what the call returns."""


def finish_as(cast_to: type[T]) -> Finish[T]:
    """What makes a call's answer into a ``cast_to`` (or a RawResponse)."""
    return functools.partial(_finish, cast_to)


def _finish(cast_to: type[T], answer: Answer, call: Call) -> T:
    response, data = answer
    if RAW_REQUESTED.get():
        return cast(T, _raw(cast_to, call.request, call.wiring, answer, call))
    return _structured(cast_to, call.request, call.wiring, response, data)


def _structured(
    cast_to: type[T],
    request: _sansio.Request,
    wiring: Wiring,
    response: _sansio.Response,
    data: object,
) -> T:
    try:
        return structure(data, cast_to, source=response.body)
    except ShapeError as problem:
        raise _sansio.validation_error(
            request,
            wiring.base_url + request.target,
            response,
            str(problem),
            redactor=wiring.redactor,
        ) from None


def _raw(
    cast_to: type[T], request: _sansio.Request, wiring: Wiring, answer: Answer, call: Call
) -> RawResponse[T]:
    response, data = answer
    result = call.result()
    sent = _sansio.request_headers(wiring.headers, request)
    return RawResponse(
        status_code=response.status,
        headers=response.headers,
        request_id=_sansio.request_id_in(response.headers),
        http_request=SentRequest(
            method=request.method,
            url=wiring.base_url + request.target,
            headers=_sansio.redact_headers(sent),
        ),
        elapsed=result.elapsed,
        retries_taken=result.retries_taken,
        content=response.body,
        parse=functools.partial(_structured, cast_to, request, wiring, response, data),
    )
