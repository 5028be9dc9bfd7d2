"""Tab 1, Data & teacher: pick the data, see what was detected, get a teacher.

Widgets map to a :class:`DataConfig` (:func:`data_config`) and a :class:`TeacherConfig`
(:func:`teacher_config`); previews go through :func:`studio.load_task_cached`; the teacher is
fine-tuned (or an existing classifier loaded and evaluated) as a background job on a new run
folder, which then becomes the selected run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import studio
from ..config import PACKAGED_MINILM, DataConfig, RunConfig, TeacherConfig
from .common import USER_ERRORS, Form, duration, error_md, info_md, none_if_zero, ok_md, on

SST2, HUB, UPLOAD = "SST-2 (built in)", "Hub id or server path", "Upload a file"
AUTO = "(detect)"
FINE_TUNE, LOAD = "Fine-tune a backbone", "Load a fine-tuned classifier"
#: (label, backbone): the packaged one works offline, the others need the Hub.
BACKBONES = [(f"{PACKAGED_MINILM} (offline)", PACKAGED_MINILM)] + [
    (f"{b} (Hub, online only)", b) for b in
    ("bert-base-uncased", "distilbert-base-uncased", "google/electra-small-discriminator")]


@dataclass
class DataTab:
    source: gr.Radio
    dataset: gr.Textbox
    upload: gr.File
    uploaded: gr.Textbox
    text_col: gr.Dropdown
    label_col: gr.Dropdown
    no_header: gr.Checkbox
    max_train: gr.Number
    max_val: gr.Number
    max_labelled: gr.Number
    seed: gr.Number
    load_btn: gr.Button
    msg: gr.Markdown
    summary: gr.Markdown
    balance: gr.Dataframe
    samples: gr.Dataframe
    teacher_mode: gr.Radio
    backbone: gr.Dropdown
    pretrained: gr.Textbox
    teacher_epochs: gr.Number
    teacher_btn: gr.Button
    teacher_msg: gr.Markdown
    teacher_status: gr.Markdown

    @property
    def data_form(self) -> Form:
        """The widgets :func:`data_config` reads."""
        return Form(source=self.source, dataset=self.dataset, uploaded=self.uploaded,
                    text_col=self.text_col, label_col=self.label_col,
                    max_train=self.max_train, max_val=self.max_val,
                    max_labelled=self.max_labelled, no_header=self.no_header)

    @property
    def teacher_form(self) -> Form:
        """The widgets :func:`teacher_config` reads."""
        return Form(teacher_mode=self.teacher_mode, backbone=self.backbone,
                    pretrained=self.pretrained, teacher_epochs=self.teacher_epochs)

    @property
    def seed_form(self) -> Form:
        return Form(seed=self.seed)


def widget_values(cfg: RunConfig) -> dict:
    """The data and teacher widgets' values that give ``cfg`` (inverse of the two below)."""
    d, t = cfg.data, cfg.teacher
    upload = studio.is_stored_upload(d.dataset)
    source = SST2 if d.dataset.lower() == "sst2" else (UPLOAD if upload else HUB)
    return {"source": source, "dataset": "" if source != HUB else d.dataset,
            "uploaded": d.dataset if upload else "", "text_col": d.text_column or AUTO,
            "label_col": d.label_column or AUTO, "no_header": d.header is False,
            "max_train": d.max_train_examples or 0, "max_val": d.max_validation_examples or 0,
            "max_labelled": d.max_labelled_examples or 0,
            "teacher_mode": LOAD if t.pretrained else FINE_TUNE, "backbone": t.backbone,
            "pretrained": t.pretrained or "", "teacher_epochs": t.epochs, "seed": cfg.seed}


def data_config(v: dict) -> DataConfig:
    """Data widgets → :class:`DataConfig`."""
    source, text_col, label_col = v["source"], v["text_col"], v["label_col"]
    if source == SST2:
        name = "sst2"
    elif source == UPLOAD:
        name = (v["uploaded"] or "").strip()
        if not name:
            raise studio.UserInputError("Upload a CSV, TSV, JSON or Parquet file first")
    else:
        name = (v["dataset"] or "").strip()
        if not name:
            raise studio.UserInputError(
                "Type a Hub dataset id (owner/name) or a file or folder path on the server")
    return DataConfig(
        dataset=name,
        text_column=None if text_col in (None, "", AUTO) else text_col,
        label_column=None if label_col in (None, "", AUTO) else label_col,
        max_train_examples=none_if_zero(v["max_train"]),
        max_validation_examples=none_if_zero(v["max_val"]),
        max_labelled_examples=none_if_zero(v.get("max_labelled")),
        header=False if v.get("no_header") else "auto")


def teacher_config(v: dict, defaults: TeacherConfig) -> TeacherConfig:
    """Teacher widgets → :class:`TeacherConfig` (checks that a local path exists)."""
    d = defaults.to_dict()
    if v["teacher_mode"] == LOAD:
        ref = (v["pretrained"] or "").strip()
        if not ref:
            raise studio.UserInputError(
                "Give the path or Hub id of an already fine-tuned classifier")
        studio.check_model_ref(ref)  # a missing folder fails here, before any job starts
        d["pretrained"] = ref
    else:
        ref = (v["backbone"] or "").strip() or PACKAGED_MINILM
        studio.check_model_ref(ref)
        d["backbone"], d["pretrained"] = ref, None
        d["epochs"] = float(v["teacher_epochs"] or defaults.epochs)
    return TeacherConfig.from_dict(d)


def build(defaults: RunConfig) -> DataTab:
    gr.Markdown("Pick the task's data and a teacher. The teacher is fine-tuned in the "
                "background (its progress shows here and on the Distillation tab); an "
                "already fine-tuned classifier is loaded and evaluated instead.",
                elem_classes="kd-lead")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            source = gr.Radio([SST2, HUB, UPLOAD], value=SST2, label="Dataset",
                              elem_id="kd-data-source")
            dataset = gr.Textbox("", label="Hub dataset id or path on the server",
                                 placeholder="e.g. imdb, owner/name, /data/reviews.csv",
                                 visible=False, elem_id="kd-dataset")
            upload = gr.File(label=f"CSV / TSV / JSON / JSONL / Parquet, at most "
                                   f"{studio.max_upload_bytes() / 1e6:.0f} MB",
                             file_types=[".csv", ".tsv", ".json", ".jsonl", ".parquet"],
                             type="filepath", visible=False, elem_id="kd-upload")
            # The stored upload's path on the server: kept for the job, never shown.
            uploaded = gr.Textbox("", interactive=False, visible=False)
            with gr.Row():
                text_col = gr.Dropdown([AUTO], value=AUTO, label="Text column",
                                       allow_custom_value=True)
                label_col = gr.Dropdown([AUTO], value=AUTO, label="Label column",
                                        allow_custom_value=True)
            no_header = gr.Checkbox(False, label="No header row (the file's first row is data)",
                                    info="unchecked: detected from the file")
            with gr.Row():
                max_train = gr.Number(defaults.data.max_train_examples or 0, precision=0,
                                      minimum=0, label="Training examples (0 = all)")
                max_val = gr.Number(defaults.data.max_validation_examples or 0, precision=0,
                                    minimum=0, label="Validation examples (0 = all)")
                # The texts beyond these are unlabelled: only the teacher labels them.
                max_labelled = gr.Number(defaults.data.max_labelled_examples or 0, precision=0,
                                         minimum=0, label="Labelled examples (0 = all)")
                seed = gr.Number(defaults.seed, precision=0, minimum=0,
                                 label="Seed (split, teacher, augmentation, student)")
            load_btn = gr.Button("Load and inspect data", variant="secondary",
                                 elem_id="kd-load-data")
            msg = gr.Markdown(elem_id="kd-data-msg")
        with gr.Column(scale=3):
            summary = gr.Markdown("Click **Load and inspect data** to see the columns, labels "
                                  "and a few rows.", elem_id="kd-data-summary")
            balance = gr.Dataframe(pd.DataFrame(columns=["label", "train", "train %",
                                                         "validation"]),
                                   label="Class balance", interactive=False, max_height=200)
            samples = gr.Dataframe(pd.DataFrame(columns=["text", "label"]),
                                   label="Sample training rows", interactive=False,
                                   # long sentences would push the label out of view
                                   wrap=True, max_height=300, column_widths=["82%", "18%"],
                                   elem_id="kd-samples")
    gr.Markdown("### Teacher")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            teacher_mode = gr.Radio([FINE_TUNE, LOAD], value=FINE_TUNE, label="Teacher")
            backbone = gr.Dropdown(BACKBONES, value=defaults.teacher.backbone,
                                   allow_custom_value=True,
                                   label="Backbone: the packaged MiniLM (offline), a Hub id "
                                         "or a local folder")
            pretrained = gr.Textbox("", label="Fine-tuned classifier: a local folder (e.g. "
                                          "runs/<id>/teacher) or a Hub id", visible=False,
                                    elem_id="kd-pretrained")
            teacher_epochs = gr.Number(defaults.teacher.epochs, minimum=0.1, step=0.5,
                                       label="Fine-tuning epochs")
            teacher_btn = gr.Button("Fine-tune teacher", variant="primary",
                                    elem_id="kd-teacher-btn")
            teacher_msg = gr.Markdown()
        with gr.Column(scale=3):
            teacher_status = gr.Markdown("No teacher yet.", elem_id="kd-teacher-status")
    return DataTab(source, dataset, upload, uploaded, text_col, label_col, no_header,
                   max_train, max_val, max_labelled,
                   seed, load_btn, msg, summary, balance, samples, teacher_mode, backbone,
                   pretrained, teacher_epochs, teacher_btn, teacher_msg, teacher_status)


# ---------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------
def _show_source(source: str):
    return (gr.update(visible=source == HUB), gr.update(visible=source == UPLOAD),
            gr.skip(), gr.update(value=AUTO), gr.update(value=AUTO))


def _show_teacher_mode(mode: str):
    return (gr.update(visible=mode == FINE_TUNE), gr.update(visible=mode == LOAD),
            gr.update(visible=mode == FINE_TUNE),
            gr.update(value="Fine-tune teacher" if mode == FINE_TUNE
                      else "Load and evaluate teacher"))


def _column_choices(cols: list[str], chosen: str | None) -> dict:
    choices = [AUTO] + cols
    if chosen and chosen not in choices:
        choices.append(chosen)
    return gr.update(choices=choices, value=chosen or AUTO)


def inspect_data(cfg: DataConfig, seed: int):
    """Load the data and describe it: (summary, balance, samples, detected text/label)."""
    task = studio.load_task_cached(cfg, int(seed or 0))
    bal = task.class_balance()
    n_tr, n_va = len(task.train), len(task.validation)
    balance = pd.DataFrame({
        "label": task.label_names,
        "train": [bal["train"][n] for n in task.label_names],
        "train %": [f"{bal['train'][n] / max(1, n_tr - task.unlabelled):.1%}"
                    for n in task.label_names],
        "validation": [bal["validation"][n] for n in task.label_names],
    })
    rows = [(t[:300], task.label_name(y))
            for t, y in zip(task.train.texts[:8], task.train.labels[:8], strict=False)]
    samples = pd.DataFrame(rows, columns=["text", "label"])
    notes = "".join(f"\n- {n}" for n in task.notes)
    unl = f" ({task.unlabelled:,} unlabelled)" if task.unlabelled else ""
    summary = (f"**{studio.dataset_title(cfg.dataset)}**: {n_tr:,} training{unl} and "
               f"{n_va:,} validation rows · "
               f"text column `{task.text_column}` · label column `{task.label_column}` · "
               f"{task.num_labels} labels: {', '.join(f'`{n}`' for n in task.label_names)}"
               f"{notes}")
    return summary, balance, samples, task.text_column, task.label_column


def _load(cfg: DataConfig, source: str, seed, uploaded_out) -> tuple:
    """Inspect ``cfg``'s data. Outputs: msg, summary, balance, samples, text_col, label_col,
    uploaded. If the file reads but its columns do not fit, offer its columns to pick."""
    cols = studio.table_columns(cfg.dataset)
    try:
        summary, balance, samples, tcol, lcol = inspect_data(cfg, seed)
    except USER_ERRORS as e:
        if not cols:
            raise
        msg = f"{e}. Pick the text and label columns, then click Load and inspect data"
        gr.Warning(msg)
        return (error_md(msg), gr.skip(), gr.skip(), gr.skip(),
                _column_choices(cols, cfg.text_column), _column_choices(cols, cfg.label_column),
                uploaded_out)
    if source == UPLOAD and not studio.is_stored_upload(cfg.dataset):
        # Only data that loads cleanly is kept with the runs.
        uploaded_out = str(studio.store_upload(cfg.dataset))
    return (ok_md(f"Data loaded: {Path(cfg.dataset).name or cfg.dataset}."), summary, balance,
            samples, _column_choices(cols, tcol), _column_choices(cols, lcol), uploaded_out)


def load_data(v: dict):
    """Outputs: msg, summary, balance, samples, text_col, label_col, uploaded."""
    return _load(data_config(v), v["source"], v["seed"], gr.skip())


def on_upload(v: dict):
    """A new upload: check size and type, then inspect it with detected columns."""
    path = v["path"]
    if not path:
        return (info_md("Upload a file to see its columns."),) + (gr.skip(),) * 6
    studio.check_upload(path)
    cfg = data_config({**v, "source": UPLOAD, "dataset": "", "uploaded": path,
                       "text_col": None, "label_col": None})
    return _load(cfg, UPLOAD, v["seed"], path)


def stored_data(v: dict) -> DataConfig:
    """The data a job will read: checked here (bad data fails now, not in the job), and an
    upload kept with the runs so the job and later sessions can read it."""
    dcfg = data_config(v)
    studio.load_task_cached(dcfg, int(v["seed"] or 0))
    if v["source"] == UPLOAD and not studio.is_stored_upload(dcfg.dataset):
        dcfg.dataset = str(studio.store_upload(dcfg.dataset))
    return dcfg


def start_teacher(defaults: RunConfig, v: dict):
    """Outputs: teacher_msg, run dropdown, watch state."""
    tcfg = teacher_config(v, defaults.teacher)
    dcfg = stored_data(v)
    cfg = RunConfig.from_dict({**defaults.to_dict(), "name": "teacher",
                               "seed": int(v["seed"] or 0), "data": dcfg.to_dict(),
                               "teacher": tcfg.to_dict()})
    run = studio.start_run(cfg, ["teacher"])
    what = "loading and evaluating" if tcfg.pretrained else "fine-tuning"
    return (ok_md(f"Started run {run.id}: {what} the teacher in the background."),
            gr.update(choices=studio.run_choices(), value=run.id), run.id)


def _count(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 100_000 else f"{n:,}"


def teacher_status_md(run_id: str | None) -> str:
    """What the selected run's teacher is doing, for the status box."""
    if not run_id:
        return "No teacher yet: fine-tune one above, or run the quick demo."
    try:
        run = studio.get_run(run_id)
    except studio.UserInputError as e:
        return str(e)
    try:
        cfg = run.config()
    except ValueError as e:
        return f"Run `{run.id}` has an unreadable config: {e}"
    t = studio.teacher_metrics(run)
    src = cfg.teacher.pretrained or cfg.teacher.backbone
    if t is not None:
        how = "loaded" if cfg.teacher.pretrained else (
            "from cache" if t.get("cached") else "fine-tuned")
        extra = " (cancelled early)" if t.get("cancelled") else ""
        return (f"**Teacher of run `{run.id}`: ready**{extra}<br>`{src}` ({how}) · "
                f"validation accuracy **{t.get('val_accuracy', 0):.1%}** · "
                f"{_count(t.get('parameters', 0))} parameters")
    snap = studio.snapshot(run)
    if snap.status == "running" and snap.stage == "teacher":
        p = snap.progress
        step = (f"step {p.get('step', 0)} / {p.get('total', '?')} · ~{duration(p.get('eta'))} "
                "left" if p else "starting")
        return f"**Teacher of run `{run.id}`: training** · `{src}` · {step}"
    return (f"Run `{run.id}` has no finished teacher ({snap.status}"
            f"{': ' + snap.message if snap.message else ''}).")


def wire(t: DataTab, defaults: RunConfig, run_dd: gr.Dropdown, watch: gr.State,
         admin: gr.Textbox) -> None:
    t.source.change(_show_source, t.source,
                    [t.dataset, t.upload, t.uploaded, t.text_col, t.label_col],
                    api_visibility="private")
    t.teacher_mode.change(_show_teacher_mode, t.teacher_mode,
                          [t.backbone, t.pretrained, t.teacher_epochs, t.teacher_btn],
                          api_visibility="private")
    data_outs = [t.msg, t.summary, t.balance, t.samples, t.text_col, t.label_col, t.uploaded]
    on(t.load_btn.click, load_data, t.data_form + t.seed_form, data_outs, t.msg,
       api_name="load_data")
    on(t.upload.upload, on_upload,
       Form(path=t.upload, max_train=t.max_train, max_val=t.max_val,
            max_labelled=t.max_labelled, seed=t.seed, no_header=t.no_header),
       data_outs, t.msg, admin=admin, api_name="upload_data")
    on(t.teacher_btn.click, functools.partial(start_teacher, defaults),
       t.data_form + t.teacher_form + t.seed_form, [t.teacher_msg, run_dd, watch],
       t.teacher_msg, admin=admin, api_name="start_teacher", concurrency_limit=1)
