"""Tab 2, Augmentation: see what Tang et al.'s three rules do to a sentence.

Widgets map to an :class:`AugmentConfig` (:func:`augment_config`); the preview tags the
sentence with spaCy, draws copies with :func:`augment.preview` from a POS dictionary of the
chosen data's training sentences, and — when the selected run has a teacher — shows the
teacher's probabilities for each copy: the soft labels the student will learn from.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass

import gradio as gr
import numpy as np

from .. import studio
from ..config import AugmentConfig, RunConfig
from .common import Form, info_md, on, section
from .data_tab import data_config

RULE_CLASS = {"mask": ("kd-mask", "mask"), "pos": ("kd-pos", "POS swap"),
              "ngram-mask": ("kd-mask", "n-gram mask")}
EXAMPLE = "the film's sharp writing and warm performances make it a quiet triumph ."


@dataclass
class AugmentTab:
    sentence: gr.Textbox
    random_btn: gr.Button
    p_mask: gr.Slider
    p_pos: gr.Slider
    p_ng: gr.Slider
    n_iter: gr.Slider
    aug_seed: gr.Number
    preview_btn: gr.Button
    msg: gr.Markdown
    tags: gr.HighlightedText
    copies: gr.HTML

    @property
    def params(self) -> Form:
        return aug_form([self.p_mask, self.p_pos, self.p_ng, self.n_iter])


#: The augmentation widgets, by AugmentConfig setting, and how each value is read.
AUG_FIELDS = {"p_mask": float, "p_pos": float, "p_ng": float, "n_iter": int}


def aug_form(sliders: list) -> Form:
    return Form(**dict(zip(AUG_FIELDS, sliders, strict=True)))


def augment_config(v: dict, defaults: AugmentConfig) -> AugmentConfig:
    """Augmentation widgets → :class:`AugmentConfig` (validation names a bad value)."""
    return section(AugmentConfig, defaults, v, AUG_FIELDS)


def aug_sliders(defaults: AugmentConfig, n_iter_max: int = 30) -> list:
    return [
        gr.Slider(0, 1, value=defaults.p_mask, step=0.05, label="p_mask",
                  info="chance each word becomes the mask token"),
        gr.Slider(0, 1, value=defaults.p_pos, step=0.05, label="p_pos",
                  info="chance each word is swapped for another with the same POS tag"),
        gr.Slider(0, 1, value=defaults.p_ng, step=0.05, label="p_ng",
                  info="chance a copy keeps only a random n-gram (1-5 words)"),
        gr.Slider(0, n_iter_max, value=defaults.n_iter, step=1, label="n_iter",
                  info="copies drawn per sentence (duplicates dropped)"),
    ]


def build(defaults: RunConfig) -> AugmentTab:
    gr.Markdown("Each word draws X ~ U(0, 1): below p_mask it becomes the mask token, below "
                "p_mask + p_pos it is swapped for another word with the same POS tag; then "
                "with probability p_ng only an n-gram is kept. The student learns from the "
                "teacher's output on every copy.", elem_classes="kd-lead")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            sentence = gr.Textbox(EXAMPLE, label="Sentence", lines=2, max_lines=6,
                                  elem_id="kd-aug-sentence")
            random_btn = gr.Button("Draw a random training sentence", size="sm")
            p_mask, p_pos, p_ng, n_iter = aug_sliders(defaults.augment)
            aug_seed = gr.Number(0, precision=0, minimum=0, label="Seed (same seed → same "
                                                                   "copies)")
            preview_btn = gr.Button("Preview augmentation", variant="primary",
                                    elem_id="kd-aug-preview")
        with gr.Column(scale=3):
            msg = gr.Markdown(elem_id="kd-aug-msg")
            tags = gr.HighlightedText(label="POS tags of the original", show_legend=False,
                                      combine_adjacent=False, elem_id="kd-aug-tags")
            copies = gr.HTML("<p class='kd-muted'>Click <b>Preview augmentation</b>.</p>",
                             elem_id="kd-aug-copies")
    return AugmentTab(sentence, random_btn, p_mask, p_pos, p_ng, n_iter, aug_seed,
                      preview_btn, msg, tags, copies)


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------
def _word(w: str, cls: str | None, title: str | None = None) -> str:
    t = f" title='{html.escape(title)}'" if title else ""
    w = html.escape(w)
    return f"<span class='kd-w {cls}'{t}>{w}</span>" if cls else f"<span class='kd-w'>{w}</span>"


def render_copy(copy: studio.AugmentedCopy | None, words: list[str]) -> str:
    """One copy as HTML: changed words marked by rule; words an n-gram dropped, struck out."""
    if copy is None:
        return " ".join(_word(w, None) for w in words)
    kept = "".join(
        (_word(w, RULE_CLASS[r][0], f"{RULE_CLASS[r][1]}: was “{o}”") if r else _word(w, None))
        + " " for w, r, o in zip(copy.words, copy.rules, copy.originals, strict=True))
    if copy.ngram is None or any(r == "ngram-mask" for r in copy.rules):
        return kept
    a, b = copy.ngram
    before = " ".join(_word(w, "kd-drop") for w in words[:a])
    after = " ".join(_word(w, "kd-drop") for w in words[b:])
    return (f"{before} <span class='kd-ngram' title='n-gram kept: words {a + 1}-{b}'>"
            f"{kept.strip()}</span> {after}")


def _bars(probs: np.ndarray | None, names: list[str]) -> str:
    if probs is None:
        return "<span class='kd-muted'>no teacher yet</span>"
    cells = []
    for n, p in zip(names, probs, strict=True):
        cells.append(f"<div class='kd-prob'><span class='kd-prob-name'>{html.escape(n)}</span>"
                     f"<span class='kd-bar'><span style='width:{100 * p:.1f}%'></span></span>"
                     f"<span class='kd-prob-val'>{p:.0%}</span></div>")
    return "".join(cells)


def render_copies(words: list[str], copies: list[studio.AugmentedCopy], probs: np.ndarray | None,
                  names: list[str]) -> str:
    legend = ("<div class='kd-legend'>" + _word("mask", "kd-mask") + _word("POS swap", "kd-pos")
              + "<span class='kd-ngram'>n-gram kept</span>" + _word("dropped", "kd-drop")
              + "</div>")
    head = ("<tr><th>#</th><th>copy</th><th>changes</th><th>teacher probabilities "
            "(soft labels)</th></tr>")
    rows = [f"<tr class='kd-orig'><td>original</td><td>{render_copy(None, words)}</td><td></td>"
            f"<td>{_bars(None if probs is None else probs[0], names)}</td></tr>"]
    for i, c in enumerate(copies):
        rules = [r for r in c.rules if r]
        parts = [f"{rules.count(r)} {RULE_CLASS[r][1]}" for r in ("mask", "pos") if r in rules]
        if c.ngram is not None:
            parts.append(f"n-gram {c.ngram[1] - c.ngram[0]} word(s)")
        rows.append(f"<tr><td>{i + 1}</td><td>{render_copy(c, words)}</td>"
                    f"<td class='kd-muted'>{', '.join(parts)}</td>"
                    f"<td>{_bars(None if probs is None else probs[i + 1], names)}</td></tr>")
    if not copies:
        rows.append("<tr><td colspan='4' class='kd-muted'>No copy differs from the original: "
                    "raise p_mask, p_pos or p_ng, or n_iter.</td></tr>")
    return f"{legend}<table class='kd-copies'>{head}{''.join(rows)}</table>"


# ---------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------
def _context(v: dict, defaults: RunConfig):
    """(task, run or None, pos dictionary, note) for the chosen data."""
    task = studio.load_task_cached(data_config(v), int(v["seed"] or 0))
    run = None
    if v["run_id"]:
        try:
            run = studio.get_run(v["run_id"])
        except studio.UserInputError:
            run = None
    pos, note = studio.preview_pos_dictionary(task, defaults.augment.spacy_model, run)
    return task, run, pos, note


def preview_augmentation(defaults: RunConfig, v: dict):
    """Outputs: msg, POS tags, copies HTML."""
    text, notes = studio.clean_text(v["sentence"])
    if len(text) > 600:
        notes.append("long sentence: only the first 600 characters are previewed")
        text = text[:600]
    cfg = augment_config(v, defaults.augment)
    task, run, pos, note = _context(v, defaults)
    teacher = studio.teacher_for(run) if run is not None else None
    mask = teacher.mask_token if teacher is not None else "[MASK]"
    tags, copies = studio.augment_preview(text, pos, cfg, int(v["aug_seed"] or 0), mask)
    words = [w for w, _ in tags]
    probs, names = None, task.label_names
    if teacher is not None:
        names, probs = studio.soft_labels(run, [" ".join(words)] + [c.text for c in copies])
        notes.append(f"teacher of run {run.id}")
    else:
        notes.append("no finished teacher in the selected run yet, so no soft labels")
    notes.insert(0, note)
    msg = info_md(f"{len(copies)} distinct copies from {cfg.n_iter} draws · "
                  + " · ".join(notes))
    return msg, tags, render_copies(words, copies, probs, names)


def random_sentence(v: dict):
    """Outputs: the sentence box, msg."""
    task = studio.load_task_cached(data_config(v), int(v["seed"] or 0))
    rng = np.random.default_rng()
    return task.train.texts[int(rng.integers(len(task.train)))], ""


def wire(t: AugmentTab, defaults: RunConfig, data_form: Form, run_dd: gr.Dropdown) -> None:
    _preview = functools.partial(preview_augmentation, defaults)
    # The API's parameter order: sentence, the four rates, seed, run, then the data.
    form = (Form(sentence=t.sentence) + t.params + Form(aug_seed=t.aug_seed, run_id=run_dd)
            + data_form)
    outs = [t.msg, t.tags, t.copies]
    on(t.preview_btn.click, _preview, form, outs, t.msg, api_name="augment_preview")
    on(t.sentence.submit, _preview, form, outs, t.msg, api_visibility="private")
    random = on(t.random_btn.click, random_sentence, data_form, [t.sentence, t.msg], t.msg,
                api_name="random_sentence")
    on(random.then, _preview, form, outs, t.msg, api_visibility="private")
