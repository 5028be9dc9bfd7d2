"""Whether the Hugging Face Hub can be reached, asked once and answered fast.

Online-only choices (a Hub backbone, a Hub dataset) fail in one sentence when it cannot,
instead of retrying for most of a minute inside a job.
"""

from __future__ import annotations

import functools
import os
import socket

HOST = "huggingface.co"


@functools.cache
def hub_reachable() -> bool:
    """False when the Hub is switched off (HF_HUB_OFFLINE) or its name does not resolve."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.getaddrinfo(HOST, 443)
    except OSError:
        return False
    return True


def require_hub(what: str, instead: str) -> None:
    """Raise ``ValueError`` saying ``what`` needs the Hub when it cannot be reached, and what
    to pick ``instead``."""
    if not hub_reachable():
        raise ValueError(f"{what} must be downloaded from the Hugging Face Hub, which cannot "
                         f"be reached from here: {instead}")
