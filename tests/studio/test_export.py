"""Export: the model card and the bundle."""

from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile

from kdstudio import studio


def test_model_card_usage_example_runs_on_the_bundle(finished_run, tmp_path):
    """The card's code, run on the downloaded zip, gives what the studio's int8 model gives."""
    files = studio.export_files(finished_run, tmp_path)
    out = tmp_path / "bundle"
    with zipfile.ZipFile(files["bundle"]) as z:
        z.extractall(out)
    assert {"README.md", "distilled.int8.onnx", "vocab.json", "results.json"} <= set(
        os.listdir(out))
    code = re.search(r"```python\n(.*?)```", (out / "README.md").read_text(), re.S).group(1)
    text = "the movie was wonderful and moving"
    code = code.replace("a gripping, funny film", text)
    cwd = os.getcwd()
    buf = io.StringIO()
    try:
        os.chdir(out)
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "model-card", "exec"), {})
    finally:
        os.chdir(cwd)
    answers, _ = studio.predict(finished_run, text)
    int8 = next(a for a in answers if a.kind == "student-int8")
    assert buf.getvalue().strip() == int8.label
