"""Tab 4, Compare: teacher, student and int8 student side by side, live and measured.

A text box sends one sentence to every model of the selected run (models are loaded once,
server-side, by :mod:`kdstudio.studio`); the tables and charts come from the run's
``results.json`` as the compare stage measured them; disagreements are computed on demand.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import studio
from .common import Form, error_md, info_md, on

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # package data: kdstudio/assets


#: Card titles short enough to stay on one line above the predicted label.
SHORT = {"teacher": "Teacher", "student": "Student", "student-int8": "Student int8",
         "static-int8": "Static int8", "transformer-int8": "Transformer int8",
         "baseline:fasttext": "fastText", "baseline:model2vec": "Model2Vec"}
SEED_COLUMNS = ["model", "accuracy", "params", "inference, batch 1 (p50)"]
TABLE_COLUMNS = ["model", "backend", "accuracy", "agrees with teacher", "params", "size",
                 "latency p50, batch 1", "end to end, batch 1", "throughput, batch 32",
                 "speed-up", "smaller by"]


@dataclass
class CompareTab:
    text: gr.Textbox
    predict_btn: gr.Button
    msg: gr.Markdown
    labels: list[gr.Label]
    timing: gr.Markdown
    header: gr.Markdown
    table: gr.Dataframe
    scatter: gr.Plot
    sizes: gr.Plot
    seed_table: gr.Dataframe
    disagree_btn: gr.Button
    disagree_msg: gr.Markdown
    disagree: gr.Dataframe

    @property
    def results_outputs(self) -> list:
        return [self.header, self.table, self.scatter, self.sizes, self.seed_table,
                self.disagree, self.disagree_btn]


def example_sentences() -> list[str]:
    """Example inputs from ``kdstudio/assets/examples.json`` (a list of strings), if present."""
    try:
        data = json.loads((ASSETS / "examples.json").read_text(encoding="utf-8"))
        return [s for s in data if isinstance(s, str)]
    except (OSError, json.JSONDecodeError):
        return ["a gripping, funny and humane film", "a dull, tedious mess"]


def build() -> CompareTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            text = gr.Textbox(label="Text to classify", lines=3, max_lines=8,
                              placeholder="Type a sentence, or pick an example below",
                              elem_id="kd-predict-text")
            predict_btn = gr.Button("Classify with every model", variant="primary",
                                    elem_id="kd-predict")
            gr.Examples([[s] for s in example_sentences()], inputs=[text],
                        label="Examples")
        with gr.Column(scale=3):
            msg = gr.Markdown(elem_id="kd-predict-msg")
            labels = []
            # Three cards a row: the BiLSTM's, then the other families' and baselines' (shown
            # only when the run has them).
            kinds = list(studio.MODEL_KINDS)
            for row in (kinds[:3], kinds[3:]):
                with gr.Row():
                    labels += [gr.Label(label=title, num_top_classes=5,
                                        visible=kind in studio.CORE_KINDS,
                                        elem_id=f"kd-label-{kind.replace(':', '-')}")
                               for kind, title in row]
            timing = gr.Markdown(elem_id="kd-timing")
    header = gr.Markdown(elem_id="kd-compare-header")
    table = gr.Dataframe(pd.DataFrame(columns=TABLE_COLUMNS), interactive=False, wrap=True,
                         label="Measured on the validation set",
                         elem_id="kd-compare-table",
                         column_widths=["19%", "8%", "7%", "8%", "7%", "8%", "9%", "9%",
                                        "10%", "7%", "8%"])
    with gr.Row():
        scatter = gr.Plot(show_label=False, elem_id="kd-scatter")
        sizes = gr.Plot(show_label=False)
    seed_table = gr.Dataframe(pd.DataFrame(columns=SEED_COLUMNS),
                              interactive=False, wrap=True,
                              label="As in Tang et al. (2019), Table 1")
    with gr.Row():
        disagree_btn = gr.Button("Find validation sentences where student and teacher "
                                 "disagree", size="sm")
    disagree_msg = gr.Markdown()
    disagree = gr.Dataframe(interactive=False, wrap=True, visible=False,
                            column_widths=["12%", "16%", "16%", "56%"], elem_id="kd-disagree")
    return CompareTab(text, predict_btn, msg, labels, timing, header, table, scatter, sizes,
                      seed_table, disagree_btn, disagree_msg, disagree)


# ---------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------
def _run_or_latest(run_id: str | None):
    if run_id:
        return studio.get_run(run_id)
    run = studio.default_run()
    if run is None:
        raise studio.UserInputError(
            "No finished run yet: run the quick demo or start a distillation")
    return run


def classify(v: dict):
    """Outputs: msg, teacher, student, int8 student (labels), timing."""
    text = v["text"]
    studio.clean_text(text)  # empty text fails before any model loads
    run = _run_or_latest(v["run_id"])
    answers, notes = studio.predict(run, text)
    labels = []
    rows = []
    for a in answers:
        if a.available:
            labels.append(gr.update(value=a.probs, label=f"{SHORT[a.kind]} · {a.ms:.1f} ms",
                                    visible=True))
            rows.append(f"| {a.name} | **{html.escape(a.label or '')}** | {a.ms:.1f} ms |")
        elif a.kind in studio.CORE_KINDS:
            labels.append(gr.update(value=None, label=f"{SHORT[a.kind]} · not in this run"))
            rows.append(f"| {a.name} | — | {a.note} |")
        else:
            labels.append(gr.update(value=None, visible=False))
    timing = ("| model | label | time of this call |\n|---|---|---|\n" + "\n".join(rows)
              + "\n\n<span class='kd-muted'>One call each, tokenisation included, on this "
                "server while it serves other requests: the measured latencies below are "
                "the ones to quote.</span>")
    msg = info_md(f"Run {run.id}" + ("".join(f" · {n}" for n in notes)))
    return (msg, *labels, timing)


def show_results(v: dict):
    """Outputs: header, table, scatter, sizes, seed table, disagreements (hidden), and the
    disagreements button. The seed table and the button show only for a finished run: the
    reference view's table is already in the seed format, and it has no sentences."""
    try:
        run = _run_or_latest(v["run_id"])
        res = studio.finished_results(run)
    except studio.UserInputError as e:
        ref = None if v["run_id"] else studio.reference_benchmark()
        if ref is not None:  # a first visit: show what the tool measured, and the next step
            return reference_view(ref, str(e))
        # Clear the numbers: a run without results must not show another run's.
        return (error_md(str(e)), pd.DataFrame(columns=TABLE_COLUMNS), None, None,
                *_no_run_extras())
    figs = studio.result_figures(res)
    timing = res.get("timing", {})
    env = res.get("environment", {})
    front = studio.trade_offs(res)
    header = (headline_html(studio.headline(res))
              + (f"<div id='kd-front' class='kd-muted'>{html.escape(front)}</div>\n\n"
                 if front else "")
              + f"### Run `{run.id}` · {html.escape(studio.dataset_title(str(res.get('dataset'))))} · "
              f"{res.get('validation_size')} validation sentences\n"
              f"<span class='kd-muted'>Timing: {html.escape(timing.get('what', ''))}; latency "
              f"{html.escape(timing.get('latency', ''))}; throughput "
              f"{html.escape(timing.get('throughput', ''))}"
              + (f"; ONNX Runtime rows {html.escape(timing['onnx_rows'])}"
                 if timing.get("onnx_rows") else "")
              + ". Machine: "
              f"{html.escape(studio.cpu_description(env))}, {env.get('threads', '?')} threads"
              f"{', GPU ' + html.escape(env['cuda']) if env.get('cuda') else ''}.</span>")
    return (header, pd.DataFrame(studio.comparison_table(res)), figs["accuracy_latency"],
            figs["size"], gr.update(value=pd.DataFrame(studio.seed_table(res)), visible=True),
            gr.update(visible=False), gr.update(visible=True))


def headline_html(text: str) -> str:
    return f"<div id='kd-headline' class='kd-headline'>{html.escape(text, quote=False)}</div>\n\n" if text \
        else ""


def reference_view(ref: dict, why: str) -> tuple:
    """Compare's outputs for the committed benchmark, labelled as such, with the next step."""
    header = (headline_html(studio.reference_headline(ref))
              + f"### {html.escape(studio.reference_title(ref))}\n"
              + info_md(f"{why}. Click ▶ Quick demo at the top to distil your own in a few "
                        "minutes; its results replace this view when it finishes."))
    figs = studio.reference_figures(ref)
    return (header, pd.DataFrame(studio.reference_table(ref)), figs["accuracy_latency"],
            figs["size"], *_no_run_extras())


def _no_run_extras() -> tuple:
    """The seed table, disagreements and their button, hidden: no run, no sentences."""
    return (gr.update(value=pd.DataFrame(columns=SEED_COLUMNS), visible=False),
            gr.update(visible=False), gr.update(visible=False))


def find_disagreements(v: dict):
    run = _run_or_latest(v["run_id"])
    studio.finished_results(run)
    rows, n, n_val = studio.disagreements(run)
    if not rows:
        return (info_md(f"Student and teacher agree on all {n_val} validation sentences."),
                gr.update(visible=False))
    return (info_md(f"They disagree on {n} of {n_val} validation sentences "
                    f"({n / n_val:.1%}); the sharpest {len(rows)}:"),
            gr.update(value=pd.DataFrame(rows), visible=True))


def wire(t: CompareTab, run_dd: gr.Dropdown) -> None:
    outs = [t.msg, *t.labels, t.timing]
    form = Form(text=t.text, run_id=run_dd)
    on(t.predict_btn.click, classify, form, outs, t.msg, api_name="predict",
       concurrency_limit=4)
    on(t.text.submit, classify, form, outs, t.msg, api_visibility="private",
       concurrency_limit=4)
    on(t.disagree_btn.click, find_disagreements, Form(run_id=run_dd),
       [t.disagree_msg, t.disagree], t.disagree_msg, api_name="disagreements")

