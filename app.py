"""Start the knowledge-distillation studio in the browser: ``python app.py`` (the same as
``python -m kdstudio ui`` once the package is installed).

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (Hugging Face Spaces sets
them), the runs folder from KDSTUDIO_RUNS_DIR (default ./runs); GRADIO_SHARE=1 asks for a
public share link, which is off otherwise.
"""

from __future__ import annotations

from kdstudio.cli import launch_studio

if __name__ == "__main__":
    launch_studio()
