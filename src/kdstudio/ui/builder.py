"""The studio app: a header with the run picker and the quick demo, five tabs, one timer.

The only state a browser session holds is the selected run (a dropdown) and the id of the
run it last started (``gr.State``); everything shown is read from the runs folder, so a page
reload, a second browser or a restarted server sees the same jobs. One timer polls the run
being watched and redraws the progress panel only when its folder changed.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

import gradio as gr

from .. import studio
from ..config import RunConfig
from . import augment_tab, compare_tab, data_tab, distill_tab, export_tab
from .common import Form, info_md, ok_md, on

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # package data: kdstudio/assets
POLL_SECONDS = 1.5
TITLE = "Knowledge-distillation studio"


def defaults() -> RunConfig:
    """Settings the widgets start from: the quick preset, which finishes on a small CPU."""
    return RunConfig.load("quick")


# ---------------------------------------------------------------------------------------
# Handlers that span tabs
# ---------------------------------------------------------------------------------------
def quick_demo():
    """Outputs: header message, run dropdown, watch state, tabs."""
    cfg = defaults()
    run = studio.start_run(cfg)
    d = cfg.data
    labelled = f", {d.max_labelled_examples:,} of them labelled" if d.max_labelled_examples else ""
    return (ok_md(f"Quick demo started as run {run.id}: the whole pipeline on "
                  f"{f'{d.max_train_examples:,}' if d.max_train_examples else 'all'} SST-2 "
                  f"training sentences{labelled}. Progress below."),
            gr.update(choices=studio.run_choices(), value=run.id), run.id,
            gr.Tabs(selected="distill"))


def on_load(settings: list[Form]):
    """Open on the running job if there is one, else on the latest finished run. A page
    reloaded mid-job also shows the job's settings in ``settings`` (the forms' widgets)."""
    root = studio.runs_root()
    active = studio.active_job(root)
    fin = studio.default_run(root)
    choices = studio.run_choices(root)
    shown = active or fin  # a page reloaded mid-job follows the job
    value = shown.id if shown is not None else (choices[0][1] if choices else None)
    # A first visit opens on the reference benchmark (Compare) when there is no run yet.
    first_visit = fin is None and studio.reference_benchmark() is not None
    tab = "distill" if active is not None else (
        "compare" if fin is not None or first_visit else "data")
    n = sum(len(f.widgets) for f in settings)
    restored: list = [gr.skip()] * n
    if active is not None:
        try:
            cfg = active.config()
            values = data_tab.widget_values(cfg) | distill_tab.widget_values(cfg)
            restored = [values.get(k, gr.skip()) for f in settings for k in f.widgets]
        except ValueError:
            pass
    return (gr.update(choices=choices, value=value), gr.Tabs(selected=tab), *restored)


def _signature(run, selected: str | None) -> list:
    if run is None:
        return [None, selected]
    files = [run.path / "status.json", run.path / "events.jsonl", run.path.parent]
    return [run.id, selected] + [f.stat().st_mtime_ns if f.exists() else 0 for f in files] + [
        (run.path / "events.jsonl").stat().st_size if (run.path / "events.jsonl").exists()
        else 0]


#: What a poll redraws, in order (see :func:`tick`).
POLL_OUTPUTS = ("monitor", "bar", "loss plot", "accuracy plot", "runs table", "run dropdown",
                "teacher status", "poll state", "ended")


def tick(watch: str | None, selected: str | None, last: dict | None):
    """Redraw the progress panel from the watched run's folder (skipped when unchanged).
    Outputs: :data:`POLL_OUTPUTS`. "ended" changes when a job this page followed ends, which
    refreshes Compare, Export and the teacher status in every open browser."""
    skip = (gr.skip(),) * len(POLL_OUTPUTS)
    try:
        last = last or {}
        run = studio.watch_target(watch)
        sig = _signature(run, selected)
        # Idle pages cost two stat calls per poll; while a job runs, redraw every time so
        # the elapsed time moves even in phases that report rarely.
        running = run is not None and run.status().get("status") == "running"
        if sig == last.get("sig") and not running:
            return skip
        return _redraw(run, selected, last, sig)
    except Exception:  # noqa: BLE001 - a poll must never break the page; the next one retries
        import logging

        logging.getLogger("kdstudio.ui").exception("progress poll failed")
        return skip


def _redraw(run, selected: str | None, last: dict, sig: list) -> tuple:
    snap = studio.snapshot(run) if run is not None else None
    loss, acc = (distill_tab.curve_figures(snap.curves) if snap is not None else
                 (distill_tab.empty_figure("Training loss"),
                  distill_tab.empty_figure("Validation accuracy")))
    choices = [list(c) for c in studio.run_choices()]
    dd: Any = gr.skip()
    if choices != last.get("choices"):
        dd = gr.update(choices=[tuple(c) for c in choices])
    ended: Any = gr.skip()
    # The job this page was following has just ended (also in a reloaded page or a second
    # browser, which follow the running job too): show it. Setting the dropdown to the value
    # it already holds fires no change event, so "ended" drives the refresh.
    if (snap is not None and snap.status != "running" and last.get("status") == "running"
            and last.get("run") == snap.run_id):
        dd = gr.update(choices=[tuple(c) for c in choices], value=snap.run_id)
        ended = f"{snap.run_id}:{snap.status}:{sig[2:]}"
    state = {"sig": sig, "choices": choices, "status": snap.status if snap else None,
             "run": snap.run_id if snap else None}
    return (distill_tab.monitor_md(snap), distill_tab.bar_html(snap), loss, acc,
            distill_tab.runs_frame(), dd, data_tab.teacher_status_md(selected), state, ended)


def ended_note(ended: str) -> str:
    """The header's line once the job this page followed ends (it replaces "started")."""
    run_id, status = ended.split(":")[:2]
    if status == "done":
        return ok_md(f"Run {run_id} finished: its results are on Compare, its files on Export.")
    return info_md(f"Run {run_id} ended ({status}): the Distillation tab says why and can "
                   "resume it.")


def job_status(run_id: str = "") -> dict:
    """The state of a run (default: the running job, else the newest run), for scripts."""
    try:
        run = studio.get_run(run_id) if run_id else studio.watch_target(None)
    except studio.UserInputError as e:
        return {"status": "unknown", "message": str(e)}
    if run is None:
        return {"status": "none", "message": "no runs yet"}
    snap = studio.snapshot(run)
    d = dataclasses.asdict(snap)
    d.pop("curves")
    d["stages"] = [list(s) for s in snap.stages]
    d["has_results"] = run.results() is not None
    return d


# ---------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------
def build_app() -> gr.Blocks:
    cfg = defaults()
    with gr.Blocks(title=TITLE) as demo:
        watch = gr.State(None)  # id of the run this browser started last
        poll = gr.State(None)  # what the last poll drew (to skip unchanged redraws)
        ended = gr.State(None)  # set when a followed job ends: refreshes the result views
        with gr.Row(equal_height=True, elem_classes="kd-title"):
            with gr.Column(scale=3):
                gr.Markdown(f"# 🧪 {TITLE}\nDistil a fine-tuned transformer into small "
                            "students (Tang et al.'s BiLSTM, static embeddings, a tiny "
                            "transformer), quantize them to int8, and compare them.")
            with gr.Column(scale=2):
                # Custom values allowed: choices change as runs appear, and the API takes any
                # run id (studio.get_run checks it).
                run_dd = gr.Dropdown(studio.run_choices(), value="", label="Run",
                                     elem_id="kd-run", allow_custom_value=True,
                                     info="Compare and Export show this run; Augmentation "
                                          "uses its teacher")
            with gr.Column(scale=1, min_width=160):
                demo_btn = gr.Button("▶ Quick demo", variant="primary", elem_id="kd-quick")
                # Public deployments: starting, cancelling and uploading need this key.
                admin = gr.Textbox("", type="password", label="Presenter key",
                                   visible=studio.admin_key_required(), elem_id="kd-admin-key",
                                   info="needed to start, cancel or upload")
        header_msg = gr.Markdown(elem_id="kd-header-msg")
        with gr.Tabs(selected="data") as tabs:
            with gr.Tab("1 · Data & teacher", id="data", elem_id="kd-tab-data"):
                data = data_tab.build(cfg)
            with gr.Tab("2 · Augmentation", id="augment", elem_id="kd-tab-augment"):
                aug = augment_tab.build(cfg)
            with gr.Tab("3 · Distillation", id="distill", elem_id="kd-tab-distill"):
                dist = distill_tab.build(cfg)
            with gr.Tab("4 · Compare", id="compare", elem_id="kd-tab-compare"):
                comp = compare_tab.build()
            with gr.Tab("5 · Export", id="export", elem_id="kd-tab-export"):
                exp = export_tab.build()
        timer = gr.Timer(POLL_SECONDS)

        data_tab.wire(data, cfg, run_dd, watch, admin)
        data_form = data.data_form + data.seed_form
        augment_tab.wire(aug, cfg, data_form, run_dd)
        distill_tab.wire(dist, cfg, data.data_form + data.teacher_form, data.seed, run_dd,
                         watch, admin)
        compare_tab.wire(comp, run_dd)
        # Plotly sizes a chart drawn in a hidden tab from a stale width and overflows its
        # panel; a resize once the tab shows redraws the charts at the panel's width.
        tabs.select(None, None, None, js="() => { setTimeout(() => window.dispatchEvent("
                    "new Event('resize')), 60); }", api_visibility="private", queue=False)

        # The augmentation sliders live on two tabs; keep them equal (.input fires only on
        # a user's change, so the two listeners cannot ping-pong).
        for a, b in zip(aug.params.inputs, dist.aug_form.inputs, strict=True):
            a.input(lambda v: v, a, b, api_visibility="private", queue=False)
            b.input(lambda v: v, b, a, api_visibility="private", queue=False)

        on(demo_btn.click, quick_demo, None, [header_msg, run_dd, watch, tabs], header_msg,
           admin=admin, api_name="quick_demo", concurrency_limit=1)
        poll_outs = [dist.monitor, dist.bar, dist.loss_plot, dist.acc_plot, dist.runs, run_dd,
                     data.teacher_status, poll, ended]
        timer.tick(tick, [watch, run_dd, poll], poll_outs, api_visibility="private",
                   concurrency_limit=None, show_progress="hidden", trigger_mode="always_last")
        selected = Form(run_id=run_dd)
        for trigger, api in ((run_dd.change, "results"), (ended.change, None)):
            vis = {"api_name": api} if api else {"api_visibility": "private"}
            shown = on(trigger, compare_tab.show_results, selected, comp.results_outputs,
                       comp.header, **vis)
            ready = on(shown.then, export_tab.prepare, selected, exp.outputs, exp.msg,
                       **({"api_name": "export"} if api else vis))
            ready.then(data_tab.teacher_status_md, run_dd, data.teacher_status,
                       api_visibility="private")
        ended.change(ended_note, ended, header_msg, api_visibility="private", queue=False)
        # The settings a reloaded page shows: the running job's (both copies of the sliders).
        settings = [data.data_form, data.teacher_form, data.seed_form, dist.student_form,
                    dist.aug_form, aug.params]
        demo.load(functools.partial(on_load, settings), None,
                  [run_dd, tabs, *(w for f in settings for w in f.inputs)],
                  api_visibility="private").then(
            tick, [watch, run_dd, poll], poll_outs, api_visibility="private",
            show_progress="hidden")
        gr.api(job_status, api_name="job_status")
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Arguments for ``demo.launch``: host and port come from GRADIO_SERVER_NAME/PORT (Gradio
    reads them), the runs folder from KDSTUDIO_RUNS_DIR; no share link unless asked for."""
    root = studio.runs_root()
    root.mkdir(parents=True, exist_ok=True)
    limit = studio.max_upload_bytes()
    return {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="slate"),
        "css_paths": [ASSETS / "studio.css"],
        # Downloads are served from the runs folder (exports, ONNX files, results.json).
        "allowed_paths": [str(root)],
        # Gradio refuses far larger uploads before they land on disk; the handler gives the
        # readable message for anything past the studio's own limit.
        "max_file_size": 4 * limit,
        "show_error": True,
        "share": os.environ.get("GRADIO_SHARE", "").lower() in ("1", "true"),
    }


def queue(demo: gr.Blocks) -> gr.Blocks:
    # Two cores: two requests at a time by default; a bounded queue says "busy" instead of
    # piling up work nobody will wait for.
    return demo.queue(default_concurrency_limit=2, max_size=64)
