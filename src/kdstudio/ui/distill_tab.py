"""Tab 3, Distillation: student settings, Start / Cancel, and the live progress of the job.

Widgets map to a :class:`RunConfig` (:func:`distill_config`); Start hands it to
:func:`studio.start_distillation`, which runs the stages as a child process (never in the web
server). The progress panel is redrawn from the run folder by a timer, so a reload, a second
browser or a restarted server shows the same job.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from .. import studio
from ..config import RunConfig, StudentConfig, choices
from .augment_tab import AUG_FIELDS, aug_form, aug_sliders, augment_config
from .common import Form, duration, info_md, ok_md, on, section
from .data_tab import stored_data, teacher_config

STATE_ICON = {"done": "✓", "running": "▶", "pending": "·", "failed": "✗", "cancelled": "■"}
RUN_COLUMNS = ["run", "status", "stage", "teacher acc.", "int8 student acc.", "message"]


@dataclass
class DistillTab:
    hidden_size: gr.Slider
    embedding_init: gr.Radio
    loss: gr.Radio
    alpha: gr.Slider
    temperature: gr.Slider
    epochs: gr.Slider
    learning_rate: gr.Number
    batch_size: gr.Slider
    train_baseline: gr.Checkbox
    train_soft_no_aug: gr.Checkbox
    families: gr.CheckboxGroup
    fasttext_baseline: gr.Checkbox
    model2vec_baseline: gr.Checkbox
    p_mask: gr.Slider
    p_pos: gr.Slider
    p_ng: gr.Slider
    n_iter: gr.Slider
    start_btn: gr.Button
    cancel_btn: gr.Button
    resume_btn: gr.Button
    msg: gr.Markdown
    monitor: gr.Markdown
    bar: gr.HTML
    loss_plot: gr.Plot
    acc_plot: gr.Plot
    runs: gr.Dataframe

    @property
    def student_form(self) -> Form:
        return Form(**{name: getattr(self, name) for name in STUDENT_FIELDS})

    @property
    def aug_form(self) -> Form:
        return aug_form([self.p_mask, self.p_pos, self.p_ng, self.n_iter])


#: The student widgets, by StudentConfig setting, and how each value is read. The families
#: box lists the families beside the BiLSTM, which is always trained.
STUDENT_FIELDS = {"hidden_size": int, "embedding_init": str, "loss": str, "alpha": float,
                  "temperature": float, "epochs": int,
                  "learning_rate": lambda x: float(x or 0), "batch_size": int,
                  "train_baseline": bool, "train_soft_no_aug": bool,
                  "families": lambda x: ["bilstm", *(x or [])], "fasttext_baseline": bool,
                  "model2vec_baseline": bool}
FAMILY_CHOICES = [("static embeddings (as Model2Vec)", "static"),
                  ("tiny transformer (the teacher's own layers)", "transformer")]


def widget_values(cfg: RunConfig) -> dict:
    """The student and augmentation widgets' values that give ``cfg``."""
    return ({k: getattr(cfg.student, k) for k in STUDENT_FIELDS}
            | {"families": [f for f in cfg.student.families if f != "bilstm"]}
            | {k: getattr(cfg.augment, k) for k in AUG_FIELDS})


def student_config(v: dict, defaults: StudentConfig) -> StudentConfig:
    """Student widgets → :class:`StudentConfig`; settings not on screen keep the preset's."""
    return section(StudentConfig, defaults, v, STUDENT_FIELDS)


def distill_config(defaults: RunConfig, v: dict) -> RunConfig:
    """All the widgets a Start reads → one :class:`RunConfig` (an upload is stored first)."""
    return RunConfig.from_dict({
        **defaults.to_dict(), "name": "studio", "seed": int(v["seed"] or 0),
        "data": stored_data(v).to_dict(),
        "teacher": teacher_config(v, defaults.teacher).to_dict(),
        "augment": augment_config(v, defaults.augment).to_dict(),
        "student": student_config(v, defaults.student).to_dict()})


def build(defaults: RunConfig) -> DistillTab:
    sc = defaults.student
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            with gr.Accordion("Student", open=True):
                hidden_size = gr.Slider(8, 512, value=sc.hidden_size, step=2,
                                        label="BiLSTM hidden size (per direction)")
                embedding_init = gr.Radio(list(choices(StudentConfig, "embedding_init")),
                                          value=sc.embedding_init, label="Embedding init",
                                          info="teacher: the teacher's input embeddings "
                                               "(kept frozen) · random: trained from scratch")
                loss = gr.Radio(list(choices(StudentConfig, "loss")), value=sc.loss,
                                label="Loss",
                                info="mse: on logits (Tang et al.) · kl: softened by T "
                                     "(Hinton et al.) · ce: hard labels only")
                with gr.Row():
                    alpha = gr.Slider(0, 1, value=sc.alpha, step=0.05, label="α (hard-label "
                                                                             "weight)")
                    temperature = gr.Slider(0.5, 10, value=sc.temperature, step=0.5,
                                            label="T (kl only)")
                with gr.Row():
                    epochs = gr.Slider(1, 50, value=sc.epochs, step=1, label="Epochs")
                    batch_size = gr.Slider(1, 256, value=sc.batch_size, step=1,
                                           label="Batch size")
                learning_rate = gr.Number(sc.learning_rate, label="Learning rate",
                                          minimum=0, step=1e-4)
                with gr.Row():
                    train_baseline = gr.Checkbox(sc.train_baseline,
                                                 label="Also train the baseline (hard labels)")
                    train_soft_no_aug = gr.Checkbox(
                        sc.train_soft_no_aug, label="Also train soft labels without "
                                                    "augmentation")
                with gr.Row():
                    families = gr.CheckboxGroup(
                        FAMILY_CHOICES, value=[f for f in sc.families if f != "bilstm"],
                        label="Also distil into", elem_id="kd-families",
                        info="other student families, on the same soft labels")
                    with gr.Column():
                        fasttext_baseline = gr.Checkbox(
                            sc.fasttext_baseline, label="Also train fastText (hard labels)",
                            elem_id="kd-fasttext")
                        model2vec_baseline = gr.Checkbox(
                            sc.model2vec_baseline,
                            label="Also train Model2Vec's classifier (hard labels)",
                            elem_id="kd-model2vec")
            with gr.Accordion("Augmentation (same as the Augmentation tab)", open=False):
                p_mask, p_pos, p_ng, n_iter = aug_sliders(defaults.augment)
            with gr.Row():
                start_btn = gr.Button("Start distillation", variant="primary",
                                      elem_id="kd-start")
                cancel_btn = gr.Button("Cancel job", variant="stop", elem_id="kd-cancel")
                resume_btn = gr.Button("Resume selected run", elem_id="kd-resume")
            gr.Markdown("<span class='kd-muted'>Start uses the data and teacher set on tab 1. "
                        "If the selected run already has a teacher trained on that data, it "
                        "is reused; otherwise the teacher is trained first. The job runs in "
                        "its own process: closing this page does not stop it.</span>")
            msg = gr.Markdown(elem_id="kd-distill-msg")
        with gr.Column(scale=3):
            monitor = gr.Markdown("No job yet.", elem_id="kd-monitor")
            bar = gr.HTML(progress_bar(0, 0), elem_id="kd-bar")
            with gr.Row():
                loss_plot = gr.Plot(empty_figure("Training loss"), show_label=False)
                acc_plot = gr.Plot(empty_figure("Validation accuracy"), show_label=False)
    # Hidden until a run exists: an empty table of headers says nothing.
    runs = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, wrap=True, max_height=320,
                        label="Runs · click a row to select that run", visible=False,
                        elem_id="kd-runs")
    return DistillTab(hidden_size, embedding_init, loss, alpha, temperature, epochs,
                      learning_rate, batch_size, train_baseline, train_soft_no_aug, families,
                      fasttext_baseline, model2vec_baseline, p_mask,
                      p_pos, p_ng, n_iter, start_btn, cancel_btn, resume_btn, msg, monitor, bar,
                      loss_plot, acc_plot, runs)


# ---------------------------------------------------------------------------------------
# Rendering the progress of a run
# ---------------------------------------------------------------------------------------
def progress_bar(step: int, total: int, label: str = "") -> str:
    frac = 0.0 if not total else min(1.0, step / total)
    text = html.escape(label) if label else ""
    return (f"<div class='kd-progress' role='progressbar' aria-valuenow='{100 * frac:.0f}' "
            f"aria-valuemin='0' aria-valuemax='100'><div class='kd-progress-fill' "
            f"style='width:{100 * frac:.1f}%'></div><span>{text}</span></div>")


def empty_figure(title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, template="plotly_white", height=260,
                      margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      annotations=[{"text": "no data yet", "showarrow": False,
                                    "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}])
    return fig


def curve_figures(curves: dict[str, dict[str, list[float]]]) -> tuple[go.Figure, go.Figure]:
    """Training loss and validation accuracy against the step, one line per stage."""
    loss = go.Figure()
    acc = go.Figure()
    for stage, c in curves.items():
        if c["loss"]:
            loss.add_trace(go.Scatter(x=c["steps"], y=c["loss"], mode="lines", name=stage))
        if c["val_accuracy"]:
            acc.add_trace(go.Scatter(x=c["val_steps"], y=[100 * v for v in c["val_accuracy"]],
                                     mode="lines+markers", name=stage, line_shape="hv"))
    for fig, title, ytitle in ((loss, "Training loss", "loss"),
                               (acc, "Validation accuracy", "%")):
        if not fig.data:
            fig = empty_figure(title)
        fig.update_layout(title=title, template="plotly_white", height=260,
                          margin={"l": 40, "r": 10, "t": 40, "b": 30},
                          xaxis_title="step (within stage)", yaxis_title=ytitle,
                          legend={"orientation": "h", "y": -0.25})
        if title == "Training loss":
            loss = fig
        else:
            acc = fig
    return loss, acc


def monitor_md(s: studio.Snapshot | None) -> str:
    if s is None:
        return ("**No job yet.** Set up the student and click **Start distillation**, or "
                "click **Quick demo** at the top.")
    chips = " → ".join(
        f"<span class='kd-stage kd-stage-{state}'>{STATE_ICON.get(state, '')} {name}</span>"
        for name, state in s.stages)
    lines = [f"### Run `{s.run_id}` — {s.status}", chips]
    p = s.progress
    if s.status == "running":
        stage = p.get("stage") or s.stage or "starting"
        phase = f" · {p['phase']}" if p.get("phase") else ""
        bits = [f"**{stage}**{phase}",
                f"this stage: ~{duration(p.get('eta'))} left" if p.get("eta") is not None
                else "this stage: estimating time left",
                f"device **{s.device}**"]
        if p.get("loss") is not None:
            bits.append(f"loss {p['loss']:.4g}")
        if p.get("val_accuracy") is not None:
            best = p.get("best_val_accuracy")
            bits.append(f"val. accuracy {p['val_accuracy']:.1%}"
                        + (f" (best {best:.1%})" if best is not None else ""))
        if p.get("epoch") is not None:
            bits.append(f"epoch {p['epoch']}")
        lines.append(" · ".join(bits))
        left = (f"about {duration(s.job_remaining)} left" if s.job_remaining is not None
                else "time left not known yet")
        lines.append(f"**Whole job:** elapsed {duration(s.elapsed)} · {left}")
    elif s.status == "failed":
        lines.append(f"<div class='kd-msg kd-error'>⚠️ Failed in <b>{html.escape(str(s.stage))}"
                     f"</b>: {html.escape(s.message)}</div>")
    elif s.status == "cancelled":
        kept = [n for n, st in s.stages if st == "done"]
        lines.append(f"<div class='kd-msg kd-info'>Cancelled ({html.escape(s.message)}). "
                     f"Kept: {', '.join(kept) or 'nothing finished'}; student checkpoints "
                     "saved before the cancel are kept too.</div>")
    elif s.status == "done":
        lines.append(f"Finished in {duration(s.elapsed)}: {html.escape(s.message)}")
    if s.teacher_reused_from:
        lines.append(f"<span class='kd-muted'>Teacher reused from run "
                     f"`{s.teacher_reused_from}`.</span>")
    return "\n\n".join(lines)


def bar_html(s: studio.Snapshot | None) -> str:
    if s is None or s.status != "running":
        done = s is not None and s.status == "done"
        return progress_bar(1 if done else 0, 1, "done" if done else "")
    p = s.progress
    step, total = int(p.get("step") or 0), int(p.get("total") or 0)
    label = f"{step:,} / {total:,}" + (f" ({step / total:.0%})" if total else "")
    return progress_bar(step, total, label)


def runs_frame() -> dict:
    """The runs table, shown once the runs folder has a run."""
    df = pd.DataFrame(studio.run_rows(), columns=RUN_COLUMNS)
    return gr.update(value=df, visible=not df.empty)


# ---------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------
def start(defaults: RunConfig, v: dict):
    """Outputs: msg, run dropdown, watch state."""
    cfg = distill_config(defaults, v)
    parent = None
    if v["run_id"]:
        try:
            parent = studio.get_run(v["run_id"])
        except studio.UserInputError:
            parent = None
    run, how = studio.start_distillation(cfg, parent)
    return (ok_md(f"Started run {run.id}: {how}."),
            gr.update(choices=studio.run_choices(), value=run.id), run.id)


def resume_run(v: dict):
    """Outputs: msg, watch state (the resumed run is followed)."""
    run = studio.get_run(v["run_id"])
    return info_md(studio.resume(run)), run.id


def cancel_job():
    msg = studio.cancel_active()
    return info_md(msg or "No job is running.")


def wire(t: DistillTab, defaults: RunConfig, setup: Form, seed: gr.Number,
         run_dd: gr.Dropdown, watch: gr.State, admin: gr.Textbox) -> None:
    """``setup``: the Data tab's data and teacher widgets."""
    # The API's parameter order: data, teacher, student, augmentation, seed, run, key.
    form = setup + t.student_form + t.aug_form + Form(seed=seed, run_id=run_dd)
    on(t.start_btn.click, functools.partial(start, defaults), form, [t.msg, run_dd, watch],
       t.msg, admin=admin, api_name="start_distillation", concurrency_limit=1)
    on(t.cancel_btn.click, cancel_job, None, [t.msg], t.msg, admin=admin, api_name="cancel")
    on(t.resume_btn.click, resume_run, Form(run_id=run_dd), [t.msg, watch], t.msg,
       admin=admin, api_name="resume", concurrency_limit=1)

    def _pick(evt: gr.SelectData):
        row = evt.row_value or []
        return row[0] if row and row[0] else gr.skip()

    t.runs.select(_pick, None, run_dd, api_visibility="private")
