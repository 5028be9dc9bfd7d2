"""Measure models side by side: accuracy, agreement, size, parameters, latency, throughput.

Every model is wrapped as a :class:`Predictor` (encode texts once, then time only the model
call, so tokenisation cost does not blur the comparison; each row says so). Latency is batch
1 over real validation sentences after warm-up (p50/p95); throughput is sentences per second
at a fixed batch size over the whole validation set. Accuracy is read in batches of that
size, except for graphs whose logits depend on the batch (:attr:`Predictor.per_sentence`).
"""

from __future__ import annotations

import html
import math
import os
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .quantize import dynamically_quantized, run_student_onnx, session
from .student import StudentVocab, load_student, num_parameters
from .teacher import Teacher
from .tokens import model_inputs


@dataclass
class Predictor:
    """A model behind one interface: ``encode(texts) -> inputs``, ``run(inputs) -> logits``."""

    name: str
    #: "teacher", "teacher-int8", "student:<variant>", "student-onnx", "student-int8",
    #: "<family>-int8", "baseline:<name>"
    kind: str
    encode: Callable[[list[str]], Any]
    run: Callable[[Any], np.ndarray]
    params: int
    size_bytes: int
    backend: str
    #: ``with_threads(n)`` → a ``run`` that uses n intra-op threads (None: fixed settings).
    with_threads: Callable[[int], Callable[[Any], np.ndarray]] | None = None
    #: A sentence's logits depend on the batch around it (dynamic int8: one activation
    #: scale per batch, padding included), so accuracy is read one sentence at a time, as
    #: the live box runs it.
    per_sentence: bool = False

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.run(self.encode(texts))


def _torch_threads(run: Callable[[Any], np.ndarray]) -> Callable[[int], Callable]:
    def with_threads(n: int) -> Callable[[Any], np.ndarray]:
        def run_n(x):
            torch.set_num_threads(n)
            return run(x)
        return run_n
    return with_threads


def _onnx_threads(path: Path, call: Callable[[Any, Any], np.ndarray]) -> Callable[[int], Callable]:
    sessions: dict[int, Any] = {}

    def with_threads(n: int) -> Callable[[Any], np.ndarray]:
        if n not in sessions:
            sessions[n] = session(path, n)
        return lambda x: call(sessions[n], x)
    return with_threads


def dir_size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())


def teacher_predictor(teacher: Teacher, weights_dir: Path | None = None) -> Predictor:
    def encode(texts):
        enc = model_inputs(teacher.tokenizer, texts, teacher.max_length)
        return {k: torch.from_numpy(v).to(teacher.device) for k, v in enc.items()}

    @torch.no_grad()
    def run(enc):
        teacher.model.eval()
        return teacher.model(**enc).logits.float().cpu().numpy()

    size = dir_size(list(Path(weights_dir).glob("*.safetensors"))) if weights_dir else 0
    return Predictor("teacher", "teacher", encode, run, teacher.num_parameters(), size,
                     "pytorch", _torch_threads(run))


def student_predictor(name: str, student_dir: Path, tokenizer, max_length: int) -> Predictor:
    model, vocab, _ = load_student(student_dir)

    def encode(texts):
        return torch.from_numpy(vocab.encode(tokenizer, texts, max_length))

    @torch.no_grad()
    def run(ids):
        return model(ids).numpy()

    return Predictor(name, "student", encode, run, num_parameters(model),
                     dir_size([student_dir / "model.safetensors"]), "pytorch",
                     _torch_threads(run))


def onnx_student_predictor(name: str, kind: str, onnx_path: Path, vocab: StudentVocab,
                           tokenizer, max_length: int, params: int,
                           threads: int | None = None) -> Predictor:
    sess = session(onnx_path, threads)
    return Predictor(
        name, kind, lambda texts: vocab.encode(tokenizer, texts, max_length),
        lambda ids: run_student_onnx(sess, ids), params, onnx_path.stat().st_size,
        "onnxruntime", None if threads else _onnx_threads(onnx_path, run_student_onnx),
        per_sentence=dynamically_quantized(onnx_path))


def onnx_teacher_predictor_from(onnx_path: Path, tokenizer, max_length: int, params: int,
                                threads: int | None = None, name: str = "teacher int8",
                                kind: str = "teacher-int8") -> Predictor:
    """The teacher in ONNX Runtime from its tokenizer alone (picklable arguments, so that
    :func:`measure_isolated` can build it in a process of its own)."""
    sess = session(onnx_path, threads)

    def encode(texts):
        return model_inputs(tokenizer, texts, max_length)

    def call(sess, feeds):
        return sess.run(["logits"], feeds)[0]

    return Predictor(name, kind, encode, lambda feeds: call(sess, feeds),
                     params, onnx_path.stat().st_size, "onnxruntime",
                     None if threads else _onnx_threads(onnx_path, call),
                     per_sentence=dynamically_quantized(onnx_path))


@dataclass(frozen=True)
class Timing:
    """How :func:`measure` times a model: ``latency_samples`` sentences at batch 1 after
    ``warmup`` calls, then whole passes at ``batch_size``. The throughput is the median of
    passes repeated until ``min_seconds`` were timed or ``max_passes`` made: one pass of a
    fast student takes a tenth of a second, short enough for a busy moment to skew it."""

    latency_samples: int
    warmup: int
    batch_size: int
    seed: int = 0
    min_seconds: float = 0.0
    max_passes: int = 1
    #: Thread counts tried per batch size, the fastest kept; () keeps each model's own.
    threads: tuple[int, ...] = ()

    @classmethod
    def from_config(cls, cc, seed: int = 0, latency_samples: int | None = None) -> Timing:
        """From a :class:`~kdstudio.config.CompareConfig`: without ``threads`` set, one
        thread and all cores are tried (which wins depends on the CPU and the batch)."""
        tried = () if cc.threads else tuple(sorted({1, os.cpu_count() or 1}))
        return cls(latency_samples or cc.latency_samples, cc.warmup, cc.throughput_batch_size,
                   seed, cc.throughput_min_seconds, cc.throughput_max_passes, tried)


def fastest_run(p: Predictor, inputs: list, threads: tuple[int, ...], rounds: int = 3
                ) -> tuple[Callable[[Any], np.ndarray], int | None]:
    """The ``run`` (and its thread count) with the lowest median call time on ``inputs``;
    rounds alternate between the settings so that a busy moment does not decide."""
    if len(threads) < 2 or p.with_threads is None:
        return p.run, None
    runs = {n: p.with_threads(n) for n in threads}
    calls: dict[int, list[float]] = {n: [] for n in threads}
    for _ in range(rounds):
        for n, run in runs.items():
            run(inputs[0])  # warm-up (a new session's first call is slow)
            for x in inputs:
                t0 = time.perf_counter()
                run(x)
                calls[n].append(time.perf_counter() - t0)
    n = min(calls, key=lambda k: float(np.median(calls[k])))
    return runs[n], n


def length_buckets(texts: list[str], batch_size: int) -> list[list[str]]:
    """The batches throughput is timed on: the whole set sorted by length in words, so a batch
    pads little, and the same batches for every model."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i].split()))
    return [[texts[i] for i in order[s:s + batch_size]] for s in range(0, len(texts), batch_size)]


def measure(p: Predictor, texts: list[str], labels: np.ndarray | None,
            teacher_pred: np.ndarray | None, timing: Timing) -> dict[str, Any]:
    """Accuracy, agreement and timing of one predictor on validation ``texts``.

    ``labels=None`` skips the accuracy pass (latency-only references).
    """
    latency_samples, warmup, batch_size, seed, min_seconds, max_passes = (
        timing.latency_samples, timing.warmup, timing.batch_size, timing.seed,
        timing.min_seconds, timing.max_passes)
    torch_threads = torch.get_num_threads()
    pred = logits = None
    step = 1 if p.per_sentence else batch_size
    if labels is not None:
        logits = np.concatenate([p.predict(texts[s:s + step])
                                 for s in range(0, len(texts), step)])  # (N, C)
        pred = logits.argmax(-1)
    # Batch-1 latency over real sentences, inputs encoded beforehand.
    rng = np.random.default_rng(seed)
    n = min(latency_samples, len(texts))
    pick = rng.choice(len(texts), n, replace=False) if n < len(texts) else np.arange(n)
    singles = [p.encode([texts[i]]) for i in pick]
    run_b1, threads_b1 = fastest_run(p, singles[:30], timing.threads)
    for i in range(min(warmup, n)):
        run_b1(singles[i % n])
    times = np.empty(n)
    for i, x in enumerate(singles):
        t0 = time.perf_counter()
        run_b1(x)
        times[i] = time.perf_counter() - t0
    # End to end, as a caller with a string pays: tokenising can cost more than a small
    # model's call.
    e2e = np.empty(n)
    for i, k in enumerate(pick):
        t0 = time.perf_counter()
        run_b1(p.encode([texts[k]]))
        e2e[i] = time.perf_counter() - t0
    batches = [p.encode(b) for b in length_buckets(texts, batch_size)]
    run_b32, threads_b32 = fastest_run(p, batches[::8], timing.threads)
    run_b32(batches[0])
    passes: list[float] = []
    while not passes or (sum(passes) < min_seconds and len(passes) < max_passes):
        t0 = time.perf_counter()
        for b in batches:
            run_b32(b)
        passes.append(time.perf_counter() - t0)
    total = float(np.median(passes))
    torch.set_num_threads(torch_threads)
    return {
        "name": p.name, "kind": p.kind, "backend": p.backend,
        "accuracy": None if pred is None else float((pred == labels).mean()),
        "agreement_with_teacher": None if teacher_pred is None or pred is None
        else float((pred == teacher_pred).mean()),
        "accuracy_batch_size": step,
        "params": int(p.params), "size_mb": round(p.size_bytes / 1e6, 3),
        "latency_b1_ms_p50": float(np.percentile(times, 50) * 1e3),
        "latency_b1_ms_p95": float(np.percentile(times, 95) * 1e3),
        "latency_b1_ms_mean": float(times.mean() * 1e3),
        "latency_b1_e2e_ms_p50": float(np.percentile(e2e, 50) * 1e3),
        "latency_samples": int(n),
        "b1_total_s": float(times.sum()),
        "throughput_batch_size": batch_size,
        "throughput_per_s": float(len(texts) / total),
        "b32_total_s": float(total),
        "throughput_passes": len(passes),
        "threads_b1": threads_b1,
        "threads_b32": threads_b32,
        "_pred": pred,
        "_logits": logits,
    }


def measure_isolated(build: Callable[[], Predictor], *args, **kwargs) -> dict[str, Any]:
    """:func:`measure` on the predictor ``build()`` makes, in a fresh process of its own.

    For ONNX Runtime rows: multi-threaded sessions now and then run a few times slower, and
    the slow draws cluster within a process (docs/decisions.md). A fresh process per row
    makes each row's draw its own; a single row can still draw slow. ``build`` and
    the arguments must pickle (a ``functools.partial`` of a module-level function, such as
    :func:`onnx_student_predictor`).
    """
    from .jobs import in_fresh_process

    return in_fresh_process(measure_built, build, *args, isolate=False, **kwargs)


def measure_built(build: Callable[[], Predictor], *args, isolate: bool,
                  **kwargs) -> dict[str, Any]:
    """:func:`measure` on ``build()``'s predictor: in a fresh process with ``isolate``
    (:func:`measure_isolated`, ``CompareConfig.isolate_onnx``), in this one otherwise."""
    if isolate:
        return measure_isolated(build, *args, **kwargs)
    return measure(build(), *args, **kwargs)


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    teacher = next((r for r in rows if r["kind"] == "teacher"), None)
    for r in rows:
        r.pop("_pred", None)
        r.pop("_logits", None)
        if teacher is not None:
            r["speedup_b1"] = teacher["latency_b1_ms_p50"] / r["latency_b1_ms_p50"]
            if teacher.get("latency_b1_e2e_ms_p50") and r.get("latency_b1_e2e_ms_p50"):
                r["speedup_b1_e2e"] = (teacher["latency_b1_e2e_ms_p50"]
                                       / r["latency_b1_e2e_ms_p50"])
            r["speedup_throughput"] = r["throughput_per_s"] / teacher["throughput_per_s"]
            r["size_ratio"] = (teacher["size_mb"] / r["size_mb"]) if r["size_mb"] else None
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | accuracy | agreement | params | size (MB) | p50 b1 (ms) | p95 b1 (ms) "
            "| p50 b1 end to end (ms) | throughput b32 (/s) | speed-up b1 | size ratio "
            "| threads b1/b32 |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        agree = "—" if r.get("agreement_with_teacher") is None else \
            f"{100 * r['agreement_with_teacher']:.1f}%"
        lines.append(
            f"| {r['name']} | {100 * r['accuracy']:.2f}% | {agree} | {r['params'] / 1e6:.2f}M "
            f"| {r['size_mb']:.2f} | {r['latency_b1_ms_p50']:.3f} | "
            f"{r['latency_b1_ms_p95']:.3f} | {_ms(r.get('latency_b1_e2e_ms_p50'))} | "
            f"{r['throughput_per_s']:.0f} | "
            f"{r.get('speedup_b1', 1.0):.1f}x | {r.get('size_ratio') or 0:.1f}x | "
            f"{r.get('threads_b1') or '—'}/{r.get('threads_b32') or '—'} |")
    return "\n".join(lines) + "\n"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def role(row: dict[str, Any]) -> str:
    """"teacher", "baseline" (trained without the teacher) or "student"."""
    kind = row["kind"]
    if kind.startswith("teacher"):
        return "teacher"
    return "baseline" if kind.startswith("baseline") or kind == "student:baseline" else "student"


def pareto_front(rows: list[dict[str, Any]], x: str = "latency_b1_e2e_ms_p50"
                 ) -> list[dict[str, Any]]:
    """The rows no other row beats on both speed (lower ``x``) and accuracy, fastest first."""
    pts = [r for r in rows if r.get(x) is not None and r.get("accuracy") is not None]
    front = [r for r in pts if not any(
        o[x] <= r[x] and o["accuracy"] >= r["accuracy"]
        and (o[x] < r[x] or o["accuracy"] > r["accuracy"]) for o in pts)]
    return sorted(front, key=lambda r: r[x])


def log_ticks(values: list[float]) -> dict[str, Any]:
    """1-2-5 ticks spanning ``values``, written out in full: Plotly's own log ticks print
    0.2 ms as a bare "2" between decades."""
    if not values:
        return {}
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    ticks = [m * 10.0 ** e for e in range(lo, hi + 1) for m in (1, 2, 5)
             if min(values) / 2.5 <= m * 10.0 ** e <= max(values) * 2.5]
    return {"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def _wrap(name: str, width: int = 80) -> str:
    """A model name as Plotly text, broken into lines of at most ``width`` characters: a
    longer line is cut at the edge of a half-width panel."""
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(name, width)) or name


def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Plotly figures: accuracy against batch-1 latency (log x, bubble = size, the Pareto
    front drawn through the models nothing beats on both) and size bars. The latency is end
    to end where rows have it (what a caller with a string pays), else the model call."""
    import plotly.graph_objects as go

    x = ("latency_b1_e2e_ms_p50" if all(r.get("latency_b1_e2e_ms_p50") for r in rows)
         else "latency_b1_ms_p50")
    sizes = np.array([max(r["size_mb"], 1e-3) for r in rows])
    bubble = 12 + 48 * np.sqrt(sizes / sizes.max())
    symbols = {"teacher": "square", "student": "circle", "baseline": "diamond"}
    # 24 distinct colours: Plotly's default 10 repeat in a run with every family.
    from plotly.colors import qualitative
    colours = qualitative.Dark24
    # One trace per model, named in the legend: labels printed beside close bubbles overlap.
    traces = [go.Scatter(
        x=[r[x]], y=[100 * r["accuracy"]], mode="markers",
        name=_wrap(r["name"] + (" · baseline" if r.get("kind") and role(r) == "baseline"
                                else "")),
        marker={"size": [b], "sizemode": "diameter", "opacity": 0.75,
                "color": colours[i % len(colours)],
                "symbol": symbols[role(r)] if r.get("kind") else "circle"},
        customdata=[[r["size_mb"], r["params"] / 1e6]],
        hovertemplate=f"{r['name']}<br>%{{y:.2f}}% at %{{x:.3f}} ms<br>%{{customdata[0]:.2f}}"
                      " MB, %{customdata[1]:.2f}M params<extra></extra>")
        for i, (r, b) in enumerate(zip(rows, bubble, strict=True))]
    front = pareto_front(rows, x)
    if len(front) > 1:
        traces.append(go.Scatter(x=[r[x] for r in front], y=[100 * r["accuracy"] for r in front],
                                 mode="lines", name="Pareto front (nothing both faster and "
                                 "more accurate)", line={"dash": "dash", "color": "#555"},
                                 hoverinfo="skip"))
    scatter = go.Figure(traces)
    lines = sum(t.name.count("<br>") + 1 for t in traces)
    what = "end to end (tokenise + call)" if x == "latency_b1_e2e_ms_p50" else "model call"
    scatter.update_layout(title="Accuracy against batch-1 latency (bubble = size on disk)",
                          xaxis={"type": "log", "title": f"p50 latency at batch 1, {what} "
                                                         "(ms, log)",
                                 **log_ticks([r[x] for r in rows if r.get(x)])},
                          yaxis={"title": "validation accuracy (%)"}, template="plotly_white",
                          # The legend sits below the axis title and the figure grows with
                          # it, so a run with every family keeps a readable plot area.
                          legend={"orientation": "h", "yanchor": "top", "y": -0.3},
                          height=440 + 21 * lines, margin={"b": 40 + 21 * lines})
    # Horizontal bars, each model's name written above its bar: names as axis labels took
    # most of a half-width panel and squeezed the bars.
    top = max(r["size_mb"] for r in rows)
    extra_lines = [_wrap(r["name"]).count("<br>") for r in rows]
    bars = go.Figure(go.Bar(y=list(range(len(rows))), x=[r["size_mb"] for r in rows],
                            orientation="h", width=0.4, cliponaxis=False,
                            text=[f"{r['size_mb']:.2f} MB" for r in rows],
                            textposition="outside", hovertext=[r["name"] for r in rows],
                            hovertemplate="%{hovertext}: %{x:.2f} MB<extra></extra>"))
    bars.update_layout(title="Size on disk",
                       xaxis={"title": "MB", "range": [0, 1.25 * top]},
                       yaxis={"autorange": "reversed", "showticklabels": False,
                              "showgrid": False, "zeroline": False},
                       annotations=[{"x": 0, "y": i - 0.25, "xref": "x", "yref": "y",
                                     "text": _wrap(r["name"]), "showarrow": False,
                                     "xanchor": "left", "yanchor": "bottom", "align": "left"}
                                    for i, r in enumerate(rows)],
                       margin={"l": 20, "r": 20}, template="plotly_white",
                       # rows grow with the longest name, whose lines sit above its bar
                       height=max(320, 110 + (56 + 16 * max(extra_lines)) * len(rows)))
    return {"accuracy_latency": scatter, "size": bars}


def load_students(run_dir: Path) -> dict[str, tuple[torch.nn.Module, StudentVocab, dict]]:
    out = {}
    for d in sorted((run_dir / "students").glob("*")):
        # student.json marks a distilled student; a baseline's folder may hold safetensors too
        if (d / "model.safetensors").exists() and (d / "student.json").exists():
            out[d.name] = load_student(d)
    return out
