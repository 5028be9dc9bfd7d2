"""A finished run's numbers as the tables the Compare tab shows."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import runs as R
from ..runs import Run
from .cache import VersionedCache
from .errors import UserInputError
from .models import model_version, run_models, softmax
from .runviews import read_results
from .uploads import load_task_cached


def result_figures(res: dict) -> dict:
    """The Compare tab's charts (accuracy against latency, size) for a run's results."""
    from ..compare import figures

    return figures(res["rows"])


def headline(res: dict) -> str:
    """One line for the stage: the int8 student against the teacher, from a run's results."""
    rows = {r["kind"]: r for r in res["rows"]}
    s8, te = rows.get("student-int8"), rows.get("teacher")
    if not (s8 and te) or not te["accuracy"]:
        return ""
    return (f"int8 student: {s8['accuracy'] / te['accuracy']:.1%} of the teacher's accuracy, "
            f"{s8.get('speedup_b1') or 0:.0f}x faster at batch 1, "
            f"{s8.get('size_ratio') or 0:.0f}x smaller")


def trade_offs(res: dict) -> str:
    """The models nothing in the run beats on both accuracy and end-to-end batch-1 latency,
    fastest first: the shortlist of what to ship. Empty when the run has a single student
    family and no baseline (the headline says it all)."""
    from ..compare import pareto_front, role

    rows = res["rows"]
    kinds = {r["kind"] for r in rows}
    families = {k for k in kinds if k.endswith("-int8") and not k.startswith("teacher")}
    if len(families) < 2 and not any(k.startswith("baseline:") for k in kinds):
        return ""
    front = pareto_front(rows)
    if len(front) < 2:
        return ""
    return ("Nothing in this run beats these on both accuracy and end-to-end latency: "
            + " · ".join(f"{r['name']}{', baseline' if role(r) == 'baseline' else ''}: "
                         f"{r['accuracy']:.1%} at {r['latency_b1_e2e_ms_p50']:.2f} ms"
                         for r in front))


def finished_results(run: Run | None) -> dict:
    if run is None:
        raise UserInputError(
            "No finished run yet: run the quick demo or start a distillation")
    res = read_results(run)
    if res is None:
        st = run.status()
        raise UserInputError(
            f"Run {run.id} has no comparison yet ({st.get('status')}"
            f"{', ' + st['stage'] if st.get('stage') else ''}); pick a finished run, or wait "
            "for this one to finish")
    return res


def comparison_table(res: dict) -> list[dict[str, Any]]:
    """One row per model, in the units people read."""
    out = []
    for r in res["rows"]:
        agree = r.get("agreement_with_teacher")
        out.append({
            "model": r["name"], "backend": r["backend"],
            "accuracy": f"{r['accuracy']:.1%}",
            "agrees with teacher": "—" if agree is None else f"{agree:.1%}",
            "params": f"{r['params'] / 1e6:.2f} M",
            "size": f"{r['size_mb']:.2f} MB",
            "latency p50, batch 1": f"{r['latency_b1_ms_p50']:.2f} ms",
            "end to end, batch 1": "—" if r.get("latency_b1_e2e_ms_p50") is None
            else f"{r['latency_b1_e2e_ms_p50']:.2f} ms",
            "throughput, batch 32": f"{r['throughput_per_s']:,.0f} /s",
            "speed-up": ratio(r.get("speedup_b1")),
            "smaller by": ratio(r.get("size_ratio")),
        })
    return out


def ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}×"


def seed_table(res: dict) -> list[dict[str, Any]]:
    """Tang et al.'s table: baseline / + soft labels / + augmentation / teacher."""
    by_kind = {r["kind"]: r for r in res["rows"]}
    n_val = res.get("validation_size")
    spec = [("BiLSTM (baseline, hard labels)", "student:baseline"),
            ("BiLSTM + soft labels", "student:distilled-noaug"),
            ("BiLSTM + soft labels + augmentation", "student:distilled"),
            ("BiLSTM + soft labels + augmentation, int8 ONNX", "student-int8"),
            ("Teacher", "teacher")]
    out = []
    for name, kind in spec:
        r = by_kind.get(kind)
        if r is None:
            out.append({"model": name, "accuracy": "not trained in this run",
                        "params": "", "inference, batch 1 (p50)": "",
                        f"validation set, batch 32 ({n_val} sentences)": ""})
            continue
        out.append({"model": name, "accuracy": f"{r['accuracy']:.1%}",
                    "params": f"{r['params'] / 1e6:.2f} M",
                    "inference, batch 1 (p50)": f"{r['latency_b1_ms_p50']:.2f} ms",
                    f"validation set, batch 32 ({n_val} sentences)": f"{r['b32_total_s']:.2f} s"})
    return out


_DISAGREE: VersionedCache[tuple[list[dict[str, Any]], int]] = VersionedCache(3)


def disagreements(run: Run, n: int = 8) -> tuple[list[dict[str, Any]], int, int]:
    """Validation sentences where the distilled student and the teacher disagree.
    Returns (up to ``n`` examples, number of disagreements, validation size)."""
    rows, n_val = _DISAGREE.get(str(run.path), model_version(run),
                                lambda: _all_disagreements(run))
    return rows[:n], len(rows), n_val


def _validation_probs(run: Run, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's and the distilled student's class probabilities on ``texts`` (the
    validation set): saved by the compare stage, or computed for runs made before."""
    saved = run.file(R.PREDICTIONS)
    if saved.exists():
        with np.load(saved) as z:
            if len(z["teacher"]) == len(texts):
                return (softmax(z["teacher"].astype(np.float64)),
                        softmax(z["student"].astype(np.float64)))
    models = run_models(run)
    if "student" not in models.predictors:
        raise UserInputError(f"run {run.id} has no trained student yet")
    with models.lock:
        t = models.teacher.predict_logits(texts)
        p = models.predictors["student"]
        s = np.concatenate([p.predict(texts[i:i + 64]) for i in range(0, len(texts), 64)])
    return softmax(t.astype(np.float64)), softmax(s.astype(np.float64))


def _all_disagreements(run: Run) -> tuple[list[dict[str, Any]], int]:
    """Every disagreement, the sharpest first, and the validation size."""
    cfg = run.config()
    task = load_task_cached(cfg.data, cfg.seed)
    texts, gold = task.validation.texts, task.validation.labels
    t, s = _validation_probs(run, texts)  # (N, C) each
    names = finished_results(run)["label_names"]
    found = []
    for i in np.flatnonzero(t.argmax(-1) != s.argmax(-1)):
        ti, si = int(t[i].argmax()), int(s[i].argmax())
        margin = float(abs(t[i, ti] - s[i, ti]))
        # The short columns first: they stay in view beside a long sentence.
        found.append((margin, {"gold": names[int(gold[i])],
                               "teacher": f"{names[ti]} ({t[i, ti]:.0%})",
                               "student": f"{names[si]} ({s[i, si]:.0%})",
                               "sentence": texts[i]}))
    found.sort(key=lambda m_row: -m_row[0])  # the sharpest disagreements first
    return [row for _, row in found], len(texts)
