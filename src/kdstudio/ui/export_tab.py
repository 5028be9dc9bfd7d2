"""Tab 5, Export: download the selected run's students, its numbers and a model card.

The files come from :func:`studio.export_files`: the int8 and fp32 ONNX students and
``results.json`` straight from the run folder, and a generated model card and a zip with all
that running the int8 student takes (ONNX, vocabulary, tokenizer, card).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import studio
from .common import error_md, info_md


@dataclass
class ExportTab:
    msg: gr.Markdown
    int8: gr.DownloadButton
    fp32: gr.DownloadButton
    static_int8: gr.DownloadButton
    transformer_int8: gr.DownloadButton
    results: gr.DownloadButton
    card: gr.DownloadButton
    bundle: gr.DownloadButton
    preview: gr.Markdown

    @property
    def outputs(self) -> list:
        return [self.msg, self.int8, self.fp32, self.static_int8, self.transformer_int8,
                self.results, self.card, self.bundle, self.preview]


def build() -> ExportTab:
    msg = gr.Markdown(elem_id="kd-export-msg")
    with gr.Row():
        int8 = gr.DownloadButton("int8 ONNX student", variant="primary", interactive=False,
                                 elem_id="kd-dl-int8")
        fp32 = gr.DownloadButton("fp32 ONNX student", interactive=False, elem_id="kd-dl-fp32")
        static_int8 = gr.DownloadButton("int8 ONNX static student", interactive=False,
                                        visible=False, elem_id="kd-dl-static-int8")
        transformer_int8 = gr.DownloadButton("int8 ONNX tiny transformer", interactive=False,
                                             visible=False, elem_id="kd-dl-transformer-int8")
        results = gr.DownloadButton("results.json", interactive=False, elem_id="kd-dl-results")
        card = gr.DownloadButton("Model card", interactive=False, elem_id="kd-dl-card")
        bundle = gr.DownloadButton("Everything to run it (zip)", interactive=False,
                                   elem_id="kd-dl-bundle")
    gr.Markdown("<span class='kd-muted'>The ONNX student reads the teacher's WordPiece ids "
                "mapped through its own vocabulary: the zip holds the vocabulary, the "
                "tokenizer and a usage example.</span>")
    preview = gr.Markdown(elem_id="kd-card-preview", elem_classes="kd-card", visible=False)
    return ExportTab(msg, int8, fp32, static_int8, transformer_int8, results, card, bundle,
                     preview)


def _button(path) -> dict:
    return gr.update(value=str(path) if path else None, interactive=path is not None)


def _optional(path) -> dict:
    """A button shown only when the run has its file."""
    return gr.update(value=str(path) if path else None, interactive=path is not None,
                     visible=path is not None)


def prepare(v: dict):
    """Outputs: msg, seven download buttons (the other families' only when the run has
    them), the model card preview."""
    run_id = v["run_id"]
    off = gr.update(value=None, interactive=False)
    hidden = gr.update(value=None, visible=False)
    try:
        run = studio.get_run(run_id) if run_id else studio.default_run()
        if run is None:  # a first visit: not an error, the next step
            return (info_md("No finished run yet: run the quick demo (▶ Quick demo at the "
                            "top) or start a distillation; its files appear here."),
                    off, off, hidden, hidden, off, off, off, hidden)
        files = studio.export_files(run)
    except studio.UserInputError as e:
        return (error_md(str(e)), off, off, hidden, hidden, off, off, off, hidden)
    card = files["card"].read_text(encoding="utf-8")
    body = card.split("---", 2)[-1] if card.startswith("---") else card
    return (info_md(f"Files of run {run.id}"), _button(files["int8"]), _button(files["fp32"]),
            _optional(files["static_int8"]), _optional(files["transformer_int8"]),
            _button(files["results"]), _button(files["card"]), _button(files["bundle"]),
            gr.update(value=body, visible=True))
