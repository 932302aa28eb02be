"""The one cattrs converter: JSON data -> frozen attrs models.

Lenient where the API grows (extra keys, new enum values), strict where a wrong type
would silently corrupt data (a number where a string belongs, a naive date).
"""

from __future__ import annotations

import datetime
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, cast

import cattrs
from cattrs.dispatch import StructureHook

T = TypeVar("T")

_NONE_TYPE = type(None)


class ShapeError(ValueError):
    """The data is not the expected shape; the message lists each problem with its path."""


def _open_enum_of(annotation: Any) -> type[enum.Enum] | None:
    """The enum of an ``SomeEnum | str`` (optionally ``| None``) annotation, else None."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    members = typing.get_args(annotation)
    enums = [m for m in members if isinstance(m, type) and issubclass(m, enum.Enum)]
    if len(enums) != 1 or str not in members:
        return None
    return enums[0]


def _open_enum_hook(annotation: Any) -> StructureHook:
    enum_class = _open_enum_of(annotation)
    assert enum_class is not None
    members_by_value = enum_class._value2member_map_
    nullable = _NONE_TYPE in typing.get_args(annotation)

    def structure_open_enum(value: object, _: object) -> object:
        if isinstance(value, str):
            return members_by_value.get(value, value)
        if value is None and nullable:
            return None
        raise TypeError(f"expected a string, got {type(value).__name__}")

    return structure_open_enum


def _optional_of(annotation: Any) -> Any:
    """``X`` of an ``X | None`` annotation that is not an open enum, else None."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    members = [m for m in typing.get_args(annotation) if m is not _NONE_TYPE]
    if len(members) != 1 or len(typing.get_args(annotation)) != 2:
        return None
    return members[0]


def _optional_hook_factory(converter: cattrs.Converter) -> Callable[[Any], StructureHook]:
    def make(annotation: Any) -> StructureHook:
        inner = _optional_of(annotation)
        inner_hook = converter.get_structure_hook(inner)

        # cattrs' own Optional handling dispatches on every value; this resolves once.
        def structure_optional(value: object, _: object) -> object:
            return None if value is None else inner_hook(value, inner)

        return structure_optional

    return make


def _structure_str(value: object, _: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_float(value: object, _: object) -> float:
    # bool is an int subclass, but true is never a budget.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _structure_datetime(value: object, _: object) -> datetime.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        # The API speaks UTC; a missing offset must not produce a naive datetime.
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def _structure_bool(value: object, _: object) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {type(value).__name__}")


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False)
    # Registered per type, before any use: cattrs would otherwise take str-mixin enums
    # (and a str in a union) down its own paths and reject new values.
    converter.register_structure_hook_factory(
        lambda annotation: _open_enum_of(annotation) is not None, _open_enum_hook
    )
    converter.register_structure_hook_factory(
        lambda annotation: _optional_of(annotation) is not None, _optional_hook_factory(converter)
    )
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(datetime.datetime, _structure_datetime)
    return converter


_converter = _make_converter()
_hooks: dict[type, StructureHook] = {}


def structure(data: object, cls: type[T]) -> T:
    """Structure JSON data into ``cls``.

    Raises:
        ShapeError: listing every problem as ``<what> @ $.<path>``.
    """
    if not isinstance(data, dict):
        raise ShapeError(f"expected a JSON object, got {type(data).__name__} @ $")
    hook = _hooks.get(cls)
    if hook is None:
        hook = _hooks[cls] = _converter.get_structure_hook(cls)
    try:
        return cast(T, hook(data, cls))
    except cattrs.BaseValidationError as exc:
        raise ShapeError("; ".join(cattrs.transform_error(exc, path="$"))) from None
