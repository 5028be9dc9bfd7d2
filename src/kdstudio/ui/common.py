"""Helpers every tab shares: turning errors into messages, and small formatting bits.

A handler is wired with :func:`on`, which reads its widgets as one dict (:class:`Form`):
errors a user can fix (bad input,
bad data, a missing teacher, a busy job) become a warning toast plus a message in the tab's
message box, and every other output is left as it was (``gr.skip()``), so a failed action
changes nothing on screen or on disk. Anything unexpected is logged on the server with its
traceback and shown to the user as one line, never as a stack trace.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from ..studio.access import check_admin
from ..studio.errors import user_errors

log = logging.getLogger("kdstudio.ui")

#: Errors whose message is written for the user (the core raises them at its edges).
USER_ERRORS = user_errors()


class Form:
    """Named widgets whose values reach a handler as one dict. The order Gradio passes them
    in (and the API's parameter order) is fixed here, once; forms add up in order."""

    def __init__(self, **widgets: Any):
        self.widgets = widgets

    def __add__(self, other: Form) -> Form:
        return Form(**self.widgets, **other.widgets)

    @property
    def inputs(self) -> list:
        return list(self.widgets.values())

    def read(self, values: tuple) -> dict[str, Any]:
        return dict(zip(self.widgets, values, strict=True))


def guard(fn: Callable, keys: list[str] | None, n_out: int, message_at: int | None = None,
          admin: bool = False) -> Callable:
    """``fn(values)`` as a Gradio handler: the positional values become one dict under
    ``keys`` (no argument when None). Errors a user can fix become a warning toast and the
    message in output ``message_at``; every other output is left as it was, so a failed
    action changes nothing on screen or on disk. Anything unexpected is logged with its
    traceback and shown as one line. With ``admin``, the last value is the presenter key,
    checked before ``fn`` runs (:func:`kdstudio.studio.check_admin`)."""
    names = list(keys or []) + (["admin_key"] if admin else [])

    @functools.wraps(fn)
    def handler(*values: Any):
        try:
            if admin:
                check_admin(values[-1])
                values = values[:-1]
            return fn(dict(zip(keys, values, strict=True))) if keys is not None else fn()
        except USER_ERRORS as e:
            msg = str(e) or type(e).__name__
        except Exception as e:  # noqa: BLE001 - the server must keep serving
            log.exception("handler %s failed", getattr(fn, "__name__", fn))
            first = (str(e).splitlines() or [""])[0][:300]
            msg = (f"Something went wrong ({type(e).__name__}: {first}). The studio is "
                   "still running; try again, or check the server log")
        gr.Warning(msg)
        out: list[Any] = [gr.skip()] * n_out
        if message_at is not None:
            out[message_at] = error_md(msg)
        return out[0] if n_out == 1 else tuple(out)

    # The API names its parameters after the widgets' keys.
    handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in names])
    return handler


def on(event: Callable, fn: Callable, form: Form | None, outputs: list,
       message: Any = None, admin: Any = None, **kwargs: Any) -> Any:
    """Wire ``fn(values)`` to a Gradio event through :func:`guard`: values is the form's
    dict, and ``message`` (one of ``outputs``) receives an error's message. ``admin`` is the
    presenter-key widget for actions that start, stop or upload (its value comes last)."""
    handler = guard(fn, None if form is None else list(form.widgets), len(outputs),
                    None if message is None else outputs.index(message), admin is not None)
    inputs = ([] if form is None else form.inputs) + ([admin] if admin is not None else [])
    return event(handler, inputs or None, outputs[0] if len(outputs) == 1 else outputs,
                 **kwargs)


def section(cls: type, defaults: Any, values: dict[str, Any], casts: dict[str, Callable]
            ) -> Any:
    """A config section from widget values (each cast as ``casts`` says); settings not on
    screen keep ``defaults``'."""
    return cls.from_dict({**defaults.to_dict(),
                          **{k: cast(values[k]) for k, cast in casts.items()}})


def error_md(msg: str) -> str:
    return f"<div class='kd-msg kd-error'>⚠️ {html.escape(msg, quote=False)}</div>"


def info_md(msg: str) -> str:
    return f"<div class='kd-msg kd-info'>{html.escape(msg, quote=False)}</div>"


def ok_md(msg: str) -> str:
    return f"<div class='kd-msg kd-ok'>✅ {html.escape(msg, quote=False)}</div>"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def none_if_zero(x: float | int | None) -> int | None:
    """Number boxes use 0 for "no limit"; the config uses None."""
    if x is None:
        return None
    x = int(x)
    return None if x <= 0 else x
