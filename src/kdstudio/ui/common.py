"""Helpers every tab shares: turning errors into messages, and small formatting bits.

A handler that can fail is wrapped with :func:`guarded`: errors a user can fix (bad input,
bad data, a missing teacher, a busy job) become a warning toast plus a message in the tab's
message box, and every other output is left as it was (``gr.skip()``), so a failed action
changes nothing on screen or on disk. Anything unexpected is logged on the server with its
traceback and shown to the user as one line, never as a stack trace.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from ..augment import SpacyModelError
from ..data import DataError
from ..jobs import JobBusy
from ..serving import UserInputError
from ..teacher import TeacherError

log = logging.getLogger("kdstudio.ui")

#: Errors whose message is written for the user (the core raises them at its edges).
USER_ERRORS = (UserInputError, DataError, TeacherError, SpacyModelError, JobBusy, ValueError)


def guarded(n_outputs: int, message_at: int | None = None) -> Callable:
    """Wrap a handler with ``n_outputs`` outputs; on error, show the message (toast, and in
    output ``message_at`` if given) and leave the other outputs unchanged."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any):
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as e:
                msg = str(e) or type(e).__name__
            except Exception as e:  # noqa: BLE001 - the server must keep serving
                log.exception("handler %s failed", fn.__name__)
                first = (str(e).splitlines() or [""])[0][:300]
                msg = (f"Something went wrong ({type(e).__name__}: {first}). The studio is "
                       "still running; try again, or check the server log")
            gr.Warning(msg)
            out: list[Any] = [gr.skip()] * n_outputs
            if message_at is not None:
                out[message_at] = error_md(msg)
            return out[0] if n_outputs == 1 else tuple(out)

        return wrapper

    return deco


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
