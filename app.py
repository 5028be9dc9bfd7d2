"""Start the knowledge-distillation studio in the browser: ``python app.py``.

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (Hugging Face Spaces sets
them), the runs folder from KDSTUDIO_RUNS_DIR (default ./runs); GRADIO_SHARE=1 asks for a
public share link, which is off otherwise.
"""

from __future__ import annotations

import os

# The job children are started while the server holds tokenizers; without this the Rust
# tokenizers library warns about (harmless) parallelism after fork on every job start.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from kdstudio.ui import build_app, launch_kwargs, queue  # noqa: E402

if __name__ == "__main__":
    queue(build_app()).launch(**launch_kwargs())
