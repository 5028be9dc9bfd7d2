"""The browser studio (Gradio): one module per tab, and :mod:`.builder` putting them together.

Tabs are thin adapters from widgets to a config, a core call or a job start, and a display;
everything they need beyond the pipeline lives in :mod:`kdstudio.studio` (no Gradio).
"""

from __future__ import annotations

from .builder import build_app, launch_kwargs, queue

__all__ = ["build_app", "launch_kwargs", "queue"]
