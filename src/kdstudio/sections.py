"""What every config section shares: a dict round-trip that rejects unknown keys, the
checks that name a bad value and what is allowed, and the settings older versions wrote."""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
import warnings
from dataclasses import fields
from typing import Any, Literal


def check_prob(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def check_pos(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


@functools.cache
def choices(section: type, name: str) -> tuple[str, ...]:
    """The allowed values of a ``Literal`` setting, read from its type: validation and the
    studio's radio buttons both list them from here."""
    hint = typing.get_type_hints(section)[name]
    for t in (hint, *typing.get_args(hint)):
        if typing.get_origin(t) is Literal:
            return typing.get_args(t)
    raise TypeError(f"{section.__name__}.{name} is not a Literal setting")


#: Keys that older versions wrote and that no longer exist; a config holding one still loads.
REMOVED = {
    "augment": {"copies"},
    "student": {"pooling", "context_layer", "context_sentences", "ema"},
}


class Section:
    """Mixin: dict round-trip that rejects unknown keys (typos must not be ignored silently)."""

    def _check_literals(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            try:
                allowed = choices(type(self), f.name)
            except TypeError:
                continue
            v = getattr(self, f.name)
            if v is not None:
                check_choice(f.name, v, allowed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None):
        d = dict(d or {})
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        d = drop_removed(cls.SECTION, d)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} setting(s): {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(known))}"
            )
        for f in fields(cls):  # type: ignore[arg-type]
            v = d.get(f.name)
            # YAML 1.1 reads 4e-3 (no dot in the mantissa) as a string; a float setting
            # takes it as the number it is.
            if isinstance(v, str) and str(f.type).split(" |")[0] == "float" and \
                    re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", v.strip()):
                d[f.name] = float(v)
        return cls(**d)


def drop_removed(section: str, d: dict[str, Any]) -> dict[str, Any]:
    """Drop settings of experiments that were removed, with one warning line, so that run
    folders written before still load."""
    gone = REMOVED.get(section, set()) & set(d)
    # A value the remaining settings cannot express is dropped all the same: the run's
    # artifacts already exist, and the key only described how they were made.
    if section == "student" and d.get("embedding_init") == "teacher-context":
        d["embedding_init"], gone = "teacher", gone | {"embedding_init: teacher-context"}
    if section == "student" and d.get("optimizer") == "adamw":
        d["optimizer"], gone = "adam", gone | {"optimizer: adamw"}
    if gone:
        warnings.warn(f"ignoring removed {section} setting(s): {', '.join(sorted(gone))}",
                      RemovedSettingWarning, stacklevel=3)
    return {k: v for k, v in d.items() if k not in REMOVED.get(section, set())}


class RemovedSettingWarning(UserWarning):
    """A config holds a setting that no longer exists; it was dropped."""
