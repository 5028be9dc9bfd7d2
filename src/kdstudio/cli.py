"""Command line over the pipeline: ``python -m kdstudio run --config quick``, one
subcommand per stage on an existing run folder, and ``python -m kdstudio ui`` for the studio."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from . import runs as R
from .config import RunConfig, preset_names
from .progress import Progress


class _Bar:
    """A tqdm bar per stage, fed by progress callbacks."""

    def __init__(self) -> None:
        self.bar = None
        self.key = None

    def __call__(self, p: Progress) -> None:
        from tqdm import tqdm

        key = (p.stage, p.metrics.get("phase"))
        if key != self.key:
            if self.bar is not None:
                self.bar.close()
            desc = p.stage + (f" ({key[1]})" if key[1] else "")
            self.bar = tqdm(total=p.total, desc=desc, unit="step", dynamic_ncols=True)
            self.key = key
        self.bar.total = p.total
        self.bar.n = p.step
        post = {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in p.metrics.items()
                if k in ("loss", "val_accuracy", "epoch")}
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set takes key=value (e.g. student.epochs=3), got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _run_dir(arg: str, runs_dir: str | None) -> R.Run:
    p = Path(arg)
    if not (p / "config.yaml").exists() and runs_dir:
        p = Path(runs_dir) / arg
    if not (p / "config.yaml").exists():
        raise ValueError(f"{arg!r} is not a run folder (no config.yaml in it)")
    return R.Run(p.resolve())


def _finish(run: R.Run, status: str) -> int:
    st = run.status()
    print(f"\nrun {run.path}: {status}" + (f" — {st.get('message')}" if st.get("message") else ""))
    if status == "done" and run.file(R.RESULTS_MD).exists():
        print(run.file(R.RESULTS_MD).read_text())
    return 0 if status == "done" else (130 if status == "cancelled" else 1)


def launch_studio(host: str | None = None, port: int | None = None) -> None:
    """Start the studio web app (what ``python app.py`` and ``kdstudio ui`` do).

    Host and port default to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (Gradio reads them),
    the runs folder to KDSTUDIO_RUNS_DIR (default ./runs); GRADIO_SHARE=1 asks for a share
    link. The CSS and examples are package data, so any working directory will do.
    """
    # The job children are started while the server holds tokenizers; without this the Rust
    # tokenizers library warns about (harmless) parallelism after fork on every job start.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from .ui import build_app, launch_kwargs, queue

    kwargs = launch_kwargs()
    if host:
        kwargs["server_name"] = host
    if port:
        kwargs["server_port"] = port
    queue(build_app()).launch(**kwargs)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kdstudio", description=__doc__)
    ap.add_argument("--runs-dir", default=None,
                    help="folder holding run folders (default: $KDSTUDIO_RUNS_DIR or ./runs)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="create a run and run the whole pipeline")
    p.add_argument("--config", required=True,
                   help=f"YAML file or preset name ({', '.join(preset_names())})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set student.epochs=3 (repeatable)")
    p.add_argument("--name", default=None)
    p = sub.add_parser("create", help="create a run folder without running it")
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p = sub.add_parser("stages", help="run some stages on an existing run folder")
    p.add_argument("run")
    p.add_argument("--stages", default=",".join(R.STAGES))
    for stage in R.STAGES:
        p = sub.add_parser(stage, help=f"run the {stage} stage alone on an existing run folder")
        p.add_argument("run")
    sub.add_parser("list", help="list runs and their status")
    p = sub.add_parser("ui", help="start the studio in the browser (like python app.py)")
    p.add_argument("--host", default=None, help="default: $GRADIO_SERVER_NAME or 127.0.0.1")
    p.add_argument("--port", type=int, default=None,
                   help="default: $GRADIO_SERVER_PORT or 7860")
    p = sub.add_parser("cancel", help="ask a running run to stop")
    p.add_argument("run")
    p = sub.add_parser("resume", help="run the stages a failed or cancelled run did not finish")
    p.add_argument("run")
    p = sub.add_parser("data", help="show what the studio would read from a data source")
    p.add_argument("dataset", help="sst2, a file, a folder or a Hub id")
    p.add_argument("--header", choices=["auto", "true", "false"], default="auto",
                   help="whether a CSV/TSV file's first row names its columns")
    p.add_argument("--text-column", default=None)
    p.add_argument("--label-column", default=None)
    return ap


def _describe_data(args: argparse.Namespace) -> int:
    from .config import DataConfig
    from .data import load_task

    header = {"auto": "auto", "true": True, "false": False}[args.header]
    try:
        task = load_task(DataConfig(dataset=args.dataset, header=header,
                                    text_column=args.text_column,
                                    label_column=args.label_column))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bal = task.class_balance()
    print(f"source:     {task.source}")
    print(f"columns:    {', '.join(task.columns) or '(named by the source)'}")
    print(f"text:       {task.text_column}")
    print(f"label:      {task.label_column}")
    unl = f" ({task.unlabelled:,} unlabelled)" if task.unlabelled else ""
    print(f"train:      {len(task.train):,} rows{unl}")
    print(f"validation: {len(task.validation):,} rows")
    print("labels:")
    for name in task.label_names:
        print(f"  {name}\ttrain {bal['train'][name]:,}\tvalidation {bal['validation'][name]:,}")
    for note in task.notes:
        print(f"note: {note}")
    return 0


def _run_with_bar(run: R.Run, stages: list[str] | None) -> int:
    from .pipeline import run_stages

    bar = _Bar()
    try:
        status = run_stages(run, stages, bar)
    finally:
        bar.close()
    return _finish(run, status)


def _new_run(args: argparse.Namespace, root: str | None) -> int:
    if R.process_rank()[1] > 1:
        raise ValueError("under several processes only the student stage runs: create the run "
                         "and run its teacher and augment stages in one process, then launch "
                         "'kdstudio student <run>'")
    cfg = RunConfig.load(args.config).with_overrides(_parse_sets(args.set))
    if getattr(args, "name", None):
        cfg.name = args.name
    run = R.Run.create(cfg, root)
    print(f"run folder: {run.path}")
    return 0 if args.cmd == "create" else _run_with_bar(run, None)


def _on_run(args: argparse.Namespace, root: str | None) -> int:
    """The commands that act on an existing run folder."""
    run = _run_dir(args.run, root)
    if args.cmd == "cancel":
        run.request_cancel()
        print(f"cancel requested for {run.id}")
        return 0
    if args.cmd == "resume":
        stages = R.stages_left(run)
        print(f"resuming {run.id}: {', '.join(stages)}")
    else:
        stages = args.stages.split(",") if args.cmd == "stages" else [args.cmd]
    return _run_with_bar(run, stages)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.runs_dir
    if args.cmd == "data":
        return _describe_data(args)
    if args.cmd == "ui":
        if root:
            os.environ["KDSTUDIO_RUNS_DIR"] = root
        launch_studio(args.host, args.port)
        return 0
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say more than "Loading weights"
    try:
        if args.cmd in ("run", "create"):
            return _new_run(args, root)
        if args.cmd == "list":
            for run in R.list_runs(root):
                st = run.status()
                print(f"{run.id}\t{st.get('status')}\t{st.get('stage') or ''}\t"
                      f"{st.get('message', '')}")
            return 0
        return _on_run(args, root)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
