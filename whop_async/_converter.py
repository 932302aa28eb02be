"""The one cattrs converter: JSON data -> frozen attrs models, and back.

Lenient where the API grows or drifts: extra keys are ignored (and kept, see below),
new enum values stay plain strings, and an optional field of the wrong type becomes its
default. Strict where a wrong type would silently corrupt data: a required field, a
number where a string belongs, a naive date. A model class with a ``_raw`` field keeps
the mapping it was read from there.
"""

from __future__ import annotations

import datetime
import enum
import functools
import types
import typing
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

import attrs
import cattrs
from cattrs.dispatch import StructureHook
from cattrs.gen import make_dict_structure_fn, override

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


def _structure_list_as_tuple_factory(converter: cattrs.Converter) -> Callable[[Any], StructureHook]:
    def make(annotation: Any) -> StructureHook:
        (item_type, _) = typing.get_args(annotation)
        item_hook = converter.get_structure_hook(item_type)

        # cattrs would take any iterable, a string or an object's keys included.
        def structure_tuple(value: object, _: object) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise TypeError(f"expected a JSON array, got {type(value).__name__}")
            return tuple(item_hook(item, item_type) for item in value)

        return structure_tuple

    return make


def _is_homogeneous_tuple(annotation: Any) -> bool:
    arguments = typing.get_args(annotation)
    return typing.get_origin(annotation) is tuple and len(arguments) == 2 and arguments[1] is ...


@functools.cache
def _keeps_raw(cls: Any) -> bool:
    return isinstance(cls, type) and attrs.has(cls) and "_raw" in attrs.fields_dict(cls)


def _tolerant(converter: cattrs.Converter, annotation: Any, default: object) -> StructureHook:
    """A field's hook that turns a value of the wrong type into the field's default.

    One call per field, where composing cattrs' hooks would make three: a model has
    a dozen such fields, structured once per answer.
    """
    inner = _optional_of(annotation)
    expected = annotation if inner is None else inner
    if_none = None if inner is not None else default
    if expected is str:

        def str_or_default(value: object, _: object) -> object:
            if isinstance(value, str):
                return value
            return if_none if value is None else default

        return str_or_default
    hook = converter.get_structure_hook(expected)

    def structure_or_default(value: object, _: object) -> object:
        if value is None and inner is not None:
            return None
        try:
            return hook(value, expected)
        except (TypeError, ValueError, cattrs.BaseValidationError):
            return default

    return structure_or_default


def _model_hook_factory(converter: cattrs.Converter) -> Callable[[Any], StructureHook]:
    def make(cls: Any) -> StructureHook:
        overrides: dict[str, Any] = {
            field.name: override(struct_hook=_tolerant(converter, field.type, field.default))
            for field in attrs.fields(attrs.resolve_types(cls))
            if field.init and field.default is not attrs.NOTHING
        }
        structure_fields = make_dict_structure_fn(cls, converter, **overrides)

        def structure_model(value: object, _: object) -> object:
            if not isinstance(value, dict):
                raise TypeError(f"expected a JSON object, got {type(value).__name__}")
            model = structure_fields(value, cls)
            # The model is frozen to its users; this is the one write, at birth.
            object.__setattr__(model, "_raw", value)
            return model

        return structure_model

    return make


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
    converter.register_structure_hook_factory(
        _is_homogeneous_tuple, _structure_list_as_tuple_factory(converter)
    )
    converter.register_structure_hook_factory(_keeps_raw, _model_hook_factory(converter))
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(datetime.datetime, _structure_datetime)
    converter.register_unstructure_hook(datetime.datetime, datetime.datetime.isoformat)
    return converter


_converter = _make_converter()
_hooks: dict[type, StructureHook] = {}


def structure(data: object, cls: type[T], *, source: bytes | None = None) -> T:
    """Structure JSON data into ``cls``; ``source``, the bytes it was decoded from, is
    what the model keeps of it, if given.

    Raises:
        ShapeError: listing every problem as ``<what> @ $.<path>``.
    """
    if not isinstance(data, dict):
        raise ShapeError(f"expected a JSON object, got {type(data).__name__} @ $")
    hook = _hooks.get(cls)
    if hook is None:
        hook = _hooks[cls] = _converter.get_structure_hook(cls)
    try:
        model = cast(T, hook(data, cls))
    except cattrs.BaseValidationError as exc:
        raise ShapeError("; ".join(cattrs.transform_error(exc, path="$"))) from None
    if source is not None and _keeps_raw(cast(Hashable, cls)):
        # A copy of its own: the answer's bytes are what is left of the event loop's
        # 256 KiB receive buffer, shrunk in place, and a model kept for a bulk run's
        # result would hold a memory mapping of its own (a mmap, mremap and munmap a
        # call, twice the client's CPU per id in unpause_many).
        object.__setattr__(model, "_raw", bytes(memoryview(source)))
    return model


def unstructure(model: object) -> Any:
    """A model's own fields as JSON-ready data: dates in ISO 8601, enums as their value."""
    return _converter.unstructure(model)
