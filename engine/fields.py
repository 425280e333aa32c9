"""Declarative field rules: each rule is stated once and read two ways.

A field (:class:`Int`, :class:`Number`, :class:`Enum`, :class:`Bool`,
:class:`Str`, and :class:`Variants` for an object whose ``type`` picks its
table) holds its type, bounds, default and description.  Its
:meth:`Field.read` checks a value and reports problems with the messages
clients see; its :meth:`Field.schema` states the same rule as JSON Schema.
A *table* is an ordered ``{key: Field}`` dict describing one object:
:func:`read_table` validates an object against it (unknown keys, required
keys, every field in table order) and :func:`table_schema` turns it into an
object schema.  So a bound, a default or a required key is written in one
place (the tables of :mod:`engine.spec`) and both the validator and the
published schema follow it.

A bound may be a number or the name of a :class:`engine.spec.Limits`
attribute, resolved against the limits in force.  Standard library only.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from .errors import ErrorList


class _Required:
    """The default of a field that must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


# --------------------------------------------------------------------------- message helpers


def join(parent: str, key: str) -> str:
    """The path of ``key`` inside ``parent`` (``""`` is the root)."""
    return f"{parent}.{key}" if parent else key


def json_type(x: Any) -> str:
    """The JSON name of a value's type, for messages ("got boolean")."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int):
        return "integer"
    if isinstance(x, float):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, (list, tuple)):
        return "array"
    if isinstance(x, Mapping):
        return "object"
    return type(x).__name__


def short_repr(x: Any) -> str:
    """A value as a message quotes it: JSON spellings of null and booleans, at most 40 characters."""
    r = repr(x) if not isinstance(x, bool) else ("true" if x else "false")
    if x is None:
        r = "null"
    return r if len(r) <= 40 else r[:37] + "..."


def is_int(x: Any) -> bool:
    """An integer in the spec's sense: bool is a subclass of int in Python but not an integer in JSON."""
    return isinstance(x, int) and not isinstance(x, bool)


# The largest integer a float holds (JSON integers are unbounded; an int beyond this has no float value).
_FLOAT_MAX_INT = int(sys.float_info.max)


def _is_number(x: Any) -> bool:
    if is_int(x):
        return -_FLOAT_MAX_INT <= x <= _FLOAT_MAX_INT
    return isinstance(x, float) and math.isfinite(x)


def _quote_list(values) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)


def _interval(lo, lo_open, hi, hi_open) -> str:
    if hi is None:
        return f"{'(' if lo_open else '['}{lo}, ∞)"
    return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _bound(value: int | str | None, limits: Any) -> Any:
    """A bound given as a number, or as the name of a limit."""
    return getattr(limits, value) if isinstance(value, str) else value


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class Field:
    """One field of an object: how to check a value and how to state the rule in JSON Schema.

    ``default`` is :data:`REQUIRED`, a JSON value, or a callable of the
    fields read so far (for defaults that follow another field; such a
    default is described in ``description`` rather than the schema).
    """

    default: Any = REQUIRED
    description: str | None = None

    def read(
        self,
        errs: ErrorList,
        obj: Mapping,
        key: str,
        path: str,
        limits: Any,
        default: Any = None,
        before: Mapping | None = None,
    ) -> Any:
        """``obj[key]`` checked, or the default when absent; None when invalid or required and missing.

        ``default`` overrides the field's own (a caller's context may change
        it, e.g. the last layer's activation becomes required).
        """
        default = self.default if default is None else default
        if key not in obj:
            if default is REQUIRED:
                errs.add(join(path, key), "required field")
                return None
            if callable(default):
                default = default(before or {})
            return self.normalise(default)
        return self.check(errs, obj[key], join(path, key), limits)

    def normalise(self, value: Any) -> Any:
        """A default as the normalised spec holds it."""
        return value

    def check(self, errs: ErrorList, x: Any, path: str, limits: Any) -> Any:
        """The value if valid (normalised), else None after reporting at ``path``."""
        raise NotImplementedError

    def schema(self, limits: Any) -> dict:
        """The rule as a JSON Schema object (with the default and description, when they are JSON)."""
        s = self.value_schema(limits)
        if self.default is not REQUIRED and not callable(self.default):
            s["default"] = self.default
        if self.description:
            # Descriptions may quote the limits in force: "{limits.max_parameters}".
            s["description"] = self.description.format(limits=limits)
        return s

    def value_schema(self, limits: Any) -> dict:
        """The schema of the value alone."""
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Field):
    """An integer in ``[lo, hi]``; ``hi`` may name a limit, which the message then cites."""

    lo: int = 0
    hi: int | str = 0
    cite_limit: bool = True

    def check(self, errs, x, path, limits):
        hi = _bound(self.hi, limits)
        if not is_int(x):
            errs.add(path, f"must be an integer, got {json_type(x)} {short_repr(x)}")
            return None
        if x < self.lo:
            errs.add(path, f"must be at least {self.lo}, got {short_repr(x)}")
            return None
        if x > hi:
            suffix = f" ({self.hi})" if isinstance(self.hi, str) and self.cite_limit else ""
            errs.add(path, f"{short_repr(x)} is over the limit of {hi}{suffix}")
            return None
        return x

    def value_schema(self, limits):
        return {"type": "integer", "minimum": self.lo, "maximum": _bound(self.hi, limits)}


@dataclass(frozen=True)
class Number(Field):
    """A finite number (integers accepted) within bounds that may be open or closed; normalised to float."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def normalise(self, value):
        return float(value)

    def check(self, errs, x, path, limits):
        if not _is_number(x):
            errs.add(path, f"must be a finite number, got {json_type(x)} {short_repr(x)}")
            return None
        low_bad = self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo)
        high_bad = self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi)
        if low_bad or high_bad:
            errs.add(path, f"must be in {_interval(self.lo, self.lo_open, self.hi, self.hi_open)}, got {short_repr(x)}")
            return None
        return float(x)

    def value_schema(self, limits):
        s: dict[str, Any] = {"type": "number"}
        if self.lo is not None:
            s["exclusiveMinimum" if self.lo_open else "minimum"] = self.lo
        if self.hi is not None:
            s["exclusiveMaximum" if self.hi_open else "maximum"] = self.hi
        return s


@dataclass(frozen=True)
class Enum(Field):
    """One of a fixed set of strings."""

    choices: tuple[str, ...] = ()

    def check(self, errs, x, path, limits):
        if not isinstance(x, str) or x not in self.choices:
            errs.add(path, f"must be one of {_quote_list(self.choices)}, got {short_repr(x)}")
            return None
        return x

    def value_schema(self, limits):
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True)
class Const(Enum):
    """The tag of a variant (``"type": "conv"``): one allowed string."""

    def value_schema(self, limits):
        return {"const": self.choices[0]}


@dataclass(frozen=True)
class Bool(Field):
    """true or false (not 0 or 1)."""

    def check(self, errs, x, path, limits):
        if not isinstance(x, bool):
            errs.add(path, f"must be a boolean, got {json_type(x)} {short_repr(x)}")
            return None
        return x

    def value_schema(self, limits):
        return {"type": "boolean"}


@dataclass(frozen=True)
class Str(Field):
    """A string of at most ``max_length`` characters (a number or a limit's name), optionally non-empty."""

    max_length: int | str = 0
    allow_empty: bool = True

    def check(self, errs, x, path, limits):
        max_length = _bound(self.max_length, limits)
        if not isinstance(x, str):
            errs.add(path, f"must be a string, got {json_type(x)}")
            return None
        if not self.allow_empty and not x:
            errs.add(path, "must not be empty")
            return None
        if len(x) > max_length:
            errs.add(path, f"is {len(x)} characters long, over the limit of {max_length}")
            return None
        return x

    def value_schema(self, limits):
        s: dict[str, Any] = {"type": "string"}
        if not self.allow_empty:
            s["minLength"] = 1
        s["maxLength"] = _bound(self.max_length, limits)
        return s


# --------------------------------------------------------------------------- tables (objects)

Table = Mapping[str, Field]


def check_object(errs: ErrorList, obj: Any, path: str, allowed, what: str = "an object") -> Mapping | None:
    """Check ``obj`` is an object and report every key not in ``allowed``; None if not an object."""
    if not isinstance(obj, Mapping):
        errs.add(path, f"must be {what}, got {json_type(obj)}")
        return None
    for key in obj:
        if key not in allowed:
            errs.add(join(path, str(key)), "unknown field")
    return obj


def read_table(
    errs: ErrorList,
    obj: Mapping,
    path: str,
    table: Table,
    limits: Any,
    defaults: Mapping[str, Any] | None = None,
    skip: tuple[str, ...] = (),
) -> dict:
    """Read every field of ``table`` from ``obj`` in table order (unknown keys are the caller's check).

    ``defaults`` overrides some fields' defaults; ``skip`` names fields the
    caller reads itself.  Invalid fields come back as None.
    """
    out: dict[str, Any] = {}
    for key, field in table.items():
        if key in skip:
            continue
        out[key] = field.read(errs, obj, key, path, limits, default=(defaults or {}).get(key), before=out)
    return out


def table_schema(
    table: Table, limits: Any, description: str | None = None, overrides: Mapping[str, dict] | None = None
) -> dict:
    """A closed object schema (``additionalProperties: false``) of a table.

    ``overrides`` gives the schema of fields the table cannot state itself
    (nested objects, arrays of variants).
    """
    props = {key: (overrides or {}).get(key) or field.schema(limits) for key, field in table.items()}
    s: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": [key for key, field in table.items() if field.default is REQUIRED],
        "additionalProperties": False,
    }
    if description:
        s["description"] = description
    return s


@dataclass(frozen=True)
class Variants(Field):
    """An object whose ``type`` picks its table (the optimizer: sgd or adam); unknown keys are errors."""

    variants: Mapping[str, Table] = dataclass_field(default_factory=dict)

    def check(self, errs, obj, path, limits):
        if not isinstance(obj, Mapping):
            errs.add(path, f"must be an object, got {json_type(obj)}")
            return None
        before = len(errs)
        kind = Enum(choices=tuple(self.variants)).read(errs, obj, "type", path, limits)
        if kind is None:
            return None
        table = self.variants[kind]
        check_object(errs, obj, path, table)
        out = {"type": kind, **read_table(errs, obj, path, table, limits, skip=("type",))}
        return out if len(errs) == before else None

    def value_schema(self, limits):
        return {"oneOf": [table_schema(t, limits) for t in self.variants.values()]}
