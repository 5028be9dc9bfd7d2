"""Presenter control: on a public deployment, only the holder of the key starts or stops work.

When ``KDSTUDIO_ADMIN_KEY`` is set, every action that starts, cancels or deletes work, or
that uploads data, must be given that key; watching, browsing, predicting, previewing and
downloading stay open to every visitor. Without the variable, nothing is asked.
"""

from __future__ import annotations

import hmac
import os

from .errors import UserInputError

ENV = "KDSTUDIO_ADMIN_KEY"


def admin_key_required() -> bool:
    return bool(os.environ.get(ENV, "").strip())


def check_admin(key: str | None) -> None:
    """Refuse (one sentence, nothing started or changed) unless ``key`` is the presenter's."""
    want = os.environ.get(ENV, "").strip()
    if not want:
        return
    if not key:
        raise UserInputError("This studio is in presenter mode: starting, cancelling or "
                             "uploading needs the presenter key (type it at the top)")
    if not hmac.compare_digest((key or "").strip().encode(), want.encode()):
        raise UserInputError("Wrong presenter key: nothing was started or changed")
