"""The committed SST-2 benchmark, shown on a first visit before any run of the user's exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..machine import cpu_description

#: bench/results/sst2.json of the checkout the studio runs from (a Space is a checkout).
REFERENCE = Path(__file__).resolve().parents[3] / "bench" / "results" / "sst2.json"


def reference_benchmark(path: Path = REFERENCE) -> dict | None:
    """The committed benchmark's results, or None when this installation has none."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def reference_title(ref: dict) -> str:
    env = ref.get("environment", {})
    return (f"Reference benchmark: SST-2 validation ({ref.get('validation_size')} sentences), "
            f"{len(ref.get('seeds', []))} student seeds, run {str(ref.get('date', ''))[:10]} "
            f"on {cpu_description(env)}, {env.get('cores', '?')} cores")


def reference_table(ref: dict) -> list[dict[str, Any]]:
    """One row per model, in the units people read (mean ± sd over the seeds)."""
    out = []
    for r in ref["rows"]:
        # Students show their spread over the seeds, even 0.00; the teacher is one model.
        sd = None if r["kind"].startswith("teacher") else r.get("accuracy_std")
        out.append({
            "model": r["name"],
            "accuracy": f"{r['accuracy_mean']:.1%}" + ("" if sd is None else f" ± {100 * sd:.2f}"),
            "size": f"{r['size_mb']:.2f} MB",
            "latency p50, batch 1": f"{r['latency_b1_ms_p50']:.2f} ms",
            "speed-up, batch 1": f"{r['speedup_b1']:.1f}×",
            "speed-up, batch 32": f"{r['speedup_b32']:.1f}×",
            "smaller by": f"{r['size_ratio_vs_teacher']:.1f}×",
        })
    return out


def reference_headline(ref: dict) -> str:
    rows = {r["kind"]: r for r in ref["rows"]}
    s8, te = rows.get("student-int8"), rows.get("teacher")
    if not (s8 and te):
        return ""
    return (f"int8 student: {s8['accuracy_mean'] / te['accuracy_mean']:.1%} of the teacher's "
            f"accuracy, {s8['speedup_b1']:.0f}x faster at batch 1, "
            f"{s8['size_ratio_vs_teacher']:.0f}x smaller")


def reference_figures(ref: dict) -> dict:
    """The same charts as a run's (accuracy against latency, size), from the seeds' means."""
    from ..compare import figures

    keep = ("name", "kind", "latency_b1_ms_p50", "latency_b1_e2e_ms_p50", "size_mb", "params")
    return figures([{"accuracy": r["accuracy_mean"], **{k: r[k] for k in keep if k in r}}
                    for r in ref["rows"]])
