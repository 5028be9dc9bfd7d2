"""The students: a BiLSTM classifier (Tang et al. 2019), a static-embedding classifier (as
Model2Vec), a few of the teacher's own transformer layers (as DistilBERT), and the vocabulary
they share. No training code.

The student reads the teacher's WordPiece tokens, so ``[MASK]`` in an augmented sentence
means the same thing to both. Its vocabulary is only the teacher tokens the training data
uses (index 0 = padding, 1 = unknown), which keeps the embedding table small; the table can
start from the teacher's input embeddings (optionally projected onto their top principal
components) or from random values.

The two directions run as two one-way LSTMs; the backward one reads each sentence reversed
*within its own length*, so right-padding never leaks into either final state (no packed
sequences). That is exactly a forward and a reverse ONNX LSTM with ``sequence_lens``, which is
what :func:`kdstudio.quantize.export_student` writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import StudentConfig
from .tokens import token_ids

PAD, UNK = 0, 1
#: Columns a BiLSTM keeps in the rows of tokens its training never reads (teacher rows
#: through the PCA, so its first components): on SST-2 40 of 200 keep the int8 file 25x
#: smaller than the teacher for 0.23 points (docs/decisions.md, "NARROW_DIM").
NARROW_DIM = 40


class StudentVocab:
    """Maps teacher token ids to the student's compact ids."""

    def __init__(self, teacher_ids: list[int], teacher_vocab_size: int, unk_teacher_id: int):
        self.teacher_ids = list(teacher_ids)  # student id k+2 ↔ teacher id teacher_ids[k]
        self.teacher_vocab_size = teacher_vocab_size
        self.unk_teacher_id = unk_teacher_id
        lut = np.full(teacher_vocab_size, UNK, dtype=np.int64)
        lut[np.asarray(self.teacher_ids, dtype=np.int64)] = np.arange(2, len(teacher_ids) + 2)
        self._lut = lut

    def __len__(self) -> int:
        return len(self.teacher_ids) + 2

    @classmethod
    def build(cls, tokenizer, texts: list[str], max_length: int) -> StudentVocab:
        ids = token_ids(tokenizer, texts, max_length)
        used = sorted({i for row in ids for i in row} | {tokenizer.mask_token_id or 0})
        return cls(used, len(tokenizer), tokenizer.unk_token_id or 0)

    @classmethod
    def whole(cls, tokenizer) -> StudentVocab:
        """Every teacher token but the special ones ([MASK] kept): for a student whose table
        is the teacher's own, where a token the training data never uses still means what
        it meant to the teacher."""
        special = set(tokenizer.all_special_ids) - {tokenizer.mask_token_id}
        return cls([i for i in range(len(tokenizer)) if i not in special], len(tokenizer),
                   tokenizer.unk_token_id or 0)

    def extended(self, tokenizer) -> StudentVocab:
        """This vocabulary's tokens, keeping their ids, then every other teacher token but
        the special ones: a word training never saw is still the teacher's, not unknown."""
        own = set(self.teacher_ids)
        rest = [i for i in StudentVocab.whole(tokenizer).teacher_ids if i not in own]
        return StudentVocab(self.teacher_ids + rest, self.teacher_vocab_size,
                            self.unk_teacher_id)

    def ids_in(self, other: StudentVocab) -> np.ndarray:
        """``result[k]`` is ``other``'s id of this vocabulary's id ``k`` (padding stays 0)."""
        return np.concatenate([[PAD, UNK], other._lut[np.asarray(self.teacher_ids,
                                                                 dtype=np.int64)]])

    def encode(self, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
        """(N, L) int64 student ids, right-padded with 0; every row has at least one token."""
        rows = token_ids(tokenizer, list(texts), max_length)
        width = max(1, max((len(r) for r in rows), default=1))
        out = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            if r:
                out[i, :len(r)] = self._lut[np.asarray(r, dtype=np.int64)]
            else:
                out[i, 0] = UNK  # an empty text still needs one step through the LSTM
        return out

    def encode_ragged(self, tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
        rows = token_ids(tokenizer, list(texts), max_length)
        return [self._lut[np.asarray(r, dtype=np.int64)] if r else
                np.asarray([UNK], dtype=np.int64) for r in rows]

    def to_json(self) -> str:
        return json.dumps({"teacher_ids": self.teacher_ids,
                           "teacher_vocab_size": self.teacher_vocab_size,
                           "unk_teacher_id": self.unk_teacher_id})

    @classmethod
    def from_json(cls, text: str) -> StudentVocab:
        d = json.loads(text)
        return cls(d["teacher_ids"], d["teacher_vocab_size"], d["unk_teacher_id"])


def pad_batch(rows: list[np.ndarray]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.from_numpy(r)
    return out


class BiLSTMClassifier(nn.Module):
    """Embedding → BiLSTM → [h_fwd; h_bwd] at each direction's last token → ReLU layer →
    logits (Tang et al.)."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, fc_size: int,
                 num_labels: int, dropout: float = 0.1, narrow: tuple[int, int] | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        #: (first row, columns): the table's rows from there on are zero past those columns,
        #: so the exported graph stores them narrower (quantize.export_bilstm).
        self.narrow = tuple(narrow) if narrow else None
        self.fwd = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.bwd = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * hidden_size, fc_size)
        self.out = nn.Linear(fc_size, num_labels)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # input_ids: (B, L), right-padded with 0
        mask = input_ids != PAD  # (B, L)
        lengths = mask.sum(1).clamp(min=1)  # (B,)
        L = input_ids.shape[1]
        pos = torch.arange(L, device=input_ids.device).unsqueeze(0)  # (1, L)
        # Reverse each row within its own length; padding stays at the end.
        rev_idx = torch.where(pos < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - pos, pos)
        emb = self.dropout(self.embedding(input_ids))  # (B, L, E)
        emb_rev = torch.gather(emb, 1, rev_idx.unsqueeze(-1).expand_as(emb))
        h_f, _ = self.fwd(emb)  # (B, L, H)
        h_b, _ = self.bwd(emb_rev)  # (B, L, H)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, h_f.shape[-1])  # (B, 1, H)
        feat = torch.cat([h_f.gather(1, last).squeeze(1),
                          h_b.gather(1, last).squeeze(1)], dim=-1)  # (B, 2H)
        hidden = torch.relu(self.fc(self.dropout(feat)))  # (B, F)
        return self.out(self.dropout(hidden))  # (B, C)


#: What the static student's max pooling puts at padding positions: below any table entry,
#: and finite, so an all-padding row gives no NaN.
PAD_FILL = -1e4


class StaticClassifier(nn.Module):
    """Embedding → max over the sentence's rows, per dimension → ReLU layer → logits: a
    static-embedding model whose cost is a table lookup and two small matrix products. Max
    pooling (SWEM-max, Shen et al. 2018) scores about a point above the mean Model2Vec
    takes (docs/decisions.md, "static pooling").

    ``bigrams`` rows after the token rows belong to pairs of neighbouring tokens
    (``bigram_codes``, sorted, each ``first * vocab_size + second``): a pair in the list adds
    its row to the sentence's, which gives the bag of tokens some word order ("not good")."""

    def __init__(self, vocab_size: int, embedding_dim: int, fc_size: int, num_labels: int,
                 dropout: float = 0.1, bigrams: int = 0):
        super().__init__()
        self.num_tokens = vocab_size
        self.embedding = nn.Embedding(vocab_size + bigrams, embedding_dim, padding_idx=PAD)
        if bigrams:  # saved with the weights; students without pairs have no such entry
            self.register_buffer("bigram_codes", torch.zeros(bigrams, dtype=torch.long))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embedding_dim, fc_size)
        self.out = nn.Linear(fc_size, num_labels)

    @property
    def bigrams(self) -> int:
        return self.embedding.num_embeddings - self.num_tokens

    def table_rows(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids → (B, 2L - 1) table rows: the tokens', then each neighbouring
        pair's (padding where the pair has no row)."""
        if not self.bigrams or input_ids.shape[1] < 2:
            return input_ids
        codes = self.bigram_codes
        pair = input_ids[:, :-1] * self.num_tokens + input_ids[:, 1:]
        at = torch.searchsorted(codes, pair).clamp(max=len(codes) - 1)
        row = torch.where(codes[at] == pair, at + self.num_tokens, PAD)
        return torch.cat([input_ids, row], 1)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.table_rows(input_ids)
        pad = (rows == PAD).unsqueeze(-1)  # (B, R, 1)
        pooled = self.embedding(rows).masked_fill(pad, PAD_FILL).amax(1)  # (B, E)
        hidden = torch.relu(self.fc(self.dropout(pooled)))
        return self.out(self.dropout(hidden))


def top_bigrams(rows: list[np.ndarray], vocab_size: int, k: int) -> np.ndarray:
    """The ``k`` most frequent pairs of neighbouring tokens in ``rows`` (neither padding nor
    unknown), as sorted codes ``first * vocab_size + second``."""
    parts = [(r[:-1] * vocab_size + r[1:])[(r[:-1] > UNK) & (r[1:] > UNK)]
             for r in rows if len(r) > 1]
    if not k or not parts:
        return np.zeros(0, dtype=np.int64)
    codes, counts = np.unique(np.concatenate(parts), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:k]  # ties: the smaller code first
    return np.sort(codes[order]).astype(np.int64)


class TinyTransformerClassifier(nn.Module):
    """A transformers sequence classifier cut down to a few layers, reading the student's
    ids: the last row of its table is a [CLS] row, put before every sentence, which the
    teacher's own pooler and classifier read."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.cls_id = model.config.vocab_size - 1

    @property
    def embedding(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def out(self) -> nn.Linear:
        return self.model.classifier

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # (ids[:, :1] * 0 + cls) rather than torch.full: the ONNX trace keeps the batch axis
        # The teacher has position embeddings for this many tokens, the [CLS] row included.
        input_ids = input_ids[:, :self.model.config.max_position_embeddings - 1]
        cls = input_ids[:, :1] * 0 + self.cls_id
        ids = torch.cat([cls, input_ids], 1)
        # Positions and segments computed from the ids: the library's cached buffers would
        # be traced at the export's example length.
        zeros = ids * 0
        return self.model(input_ids=ids, attention_mask=(ids != PAD).long(),
                          token_type_ids=zeros, position_ids=(zeros + 1).cumsum(1) - 1).logits


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pca_project(rows: torch.Tensor, dim: int, fit: torch.Tensor | None = None) -> torch.Tensor:
    """Project embedding rows (row 0 = padding) onto the top ``dim`` principal components of
    the rows ``fit`` names (default: all but padding).

    The cheapest way to a narrower table that keeps the teacher's geometry; the result is
    rescaled to the fitted rows' original spread so training starts at a familiar scale.
    Fitting on the rows training uses keeps rows no text uses (BERT's ``[unused]`` tokens,
    other scripts) from bending the basis: 0.75 points on SST-2 (docs/decisions.md).
    """
    if dim >= rows.shape[1]:
        return rows
    fit = torch.arange(1, rows.shape[0]) if fit is None else fit
    kept = rows[fit]
    mean = kept.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(kept - mean, full_matrices=False)
    proj = v[:dim].T  # (E, k), k = min(dim, rows kept): a tiny vocabulary has fewer
    out = (rows - mean) @ proj
    out = out / out[fit].std().clamp(min=1e-6) * kept.std()
    if out.shape[1] < dim:  # pad with zero columns, which training can still fill
        out = torch.cat([out, out.new_zeros(out.shape[0], dim - out.shape[1])], 1)
    out[PAD] = 0.0
    return out


def teacher_embedding_rows(teacher_model: nn.Module, vocab: StudentVocab,
                           dim: int | None, fit: torch.Tensor | None = None) -> torch.Tensor:
    """Teacher input-embedding rows for the student's tokens, optionally PCA-projected (the
    basis fitted on the rows ``fit`` names)."""
    table = teacher_model.get_input_embeddings().weight.detach().float().cpu()  # (V_t, E_t)
    idx = torch.tensor([vocab.unk_teacher_id, vocab.unk_teacher_id] + vocab.teacher_ids)
    rows = table[idx].clone()  # (V_s, E_t)
    rows[PAD] = 0.0
    return rows if dim is None else pca_project(rows, dim, fit)


def build_student(cfg: StudentConfig, vocab: StudentVocab, num_labels: int,
                  teacher_model: nn.Module | None = None, seed: int = 42,
                  ids: list[np.ndarray] | None = None) -> BiLSTMClassifier:
    """A student for ``vocab``; "teacher" embeddings need the ``teacher_model``, and their
    PCA is fitted on the rows the training rows ``ids`` use (all rows without them)."""
    torch.manual_seed(seed)
    init = narrow = None
    if cfg.embedding_init == "teacher":
        if teacher_model is None:
            raise ValueError("embedding_init='teacher' needs the teacher model")
        fit = None
        if ids:
            fit = torch.from_numpy(np.union1d(np.concatenate(ids), [UNK]))
            fit = fit[fit != PAD]
        init = teacher_embedding_rows(teacher_model, vocab, cfg.embedding_dim, fit)
        dim = init.shape[1]
        projected = dim < teacher_model.get_input_embeddings().weight.shape[1]
        first = int(fit.max()) + 1 if fit is not None and len(fit) else len(vocab)
        if projected and first < len(vocab) and dim > NARROW_DIM:
            init[first:, NARROW_DIM:] = 0.0  # PCA columns: the first ones say the most
            narrow = (first, NARROW_DIM)
    else:
        dim = cfg.embedding_dim or 300
    model = BiLSTMClassifier(len(vocab), dim, cfg.hidden_size, cfg.fc_size, num_labels,
                             cfg.dropout, narrow)
    if init is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(init)
    if cfg.embeddings_frozen:
        model.embedding.weight.requires_grad_(False)
    return model


def student_arch(model: nn.Module) -> dict:
    """What :func:`student_from_arch` needs to build ``model`` again."""
    if isinstance(model, TinyTransformerClassifier):
        return {"family": "transformer", "config": model.model.config.to_dict()}
    a = {"vocab_size": model.embedding.num_embeddings,
         "embedding_dim": model.embedding.embedding_dim, "fc_size": model.fc.out_features,
         "num_labels": model.out.out_features}
    if isinstance(model, StaticClassifier):
        return {"family": "static", **a, "vocab_size": model.num_tokens,
                "bigrams": model.bigrams, "pooling": "max"}
    return {"family": "bilstm", **a, "hidden_size": model.fwd.hidden_size,
            **({"narrow": list(model.narrow)} if model.narrow else {})}


def student_from_arch(a: dict) -> nn.Module:
    family = a.get("family", "bilstm")  # runs written before families had none
    if family == "transformer":
        from transformers import AutoConfig, AutoModelForSequenceClassification

        conf = dict(a["config"])
        config = AutoConfig.for_model(conf.pop("model_type"), **conf)
        return TinyTransformerClassifier(
            AutoModelForSequenceClassification.from_config(config).eval())
    if family == "static":
        if a.get("pooling") != "max":  # students saved before max pooling averaged
            raise ValueError("this static student averages its tokens, which this version no "
                             "longer supports (it pools by max); train it again")
        return StaticClassifier(a["vocab_size"], a["embedding_dim"], a["fc_size"],
                                a["num_labels"], dropout=0.0, bigrams=a.get("bigrams", 0))
    if family != "bilstm":
        raise ValueError(f"unknown student family {family!r}; this version knows bilstm, "
                         "static and transformer")
    if a.get("pooling", "last") != "last":
        raise ValueError(f"this BiLSTM student pools its states by {a['pooling']!r}, which "
                         "this version no longer supports; train it again")
    return BiLSTMClassifier(a["vocab_size"], a["embedding_dim"], a["hidden_size"],
                            a["fc_size"], a["num_labels"], dropout=0.0, narrow=a.get("narrow"))


def save_student(model: nn.Module, vocab: StudentVocab, label_names: list[str],
                 out_dir: str | Path, meta: dict | None = None) -> None:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out_dir / "model.safetensors"))
    arch = {**student_arch(model), "label_names": label_names}
    (out_dir / "student.json").write_text(json.dumps({"arch": arch, **(meta or {})}, indent=1))
    (out_dir / "vocab.json").write_text(vocab.to_json())


def load_student(path: str | Path) -> tuple[nn.Module, StudentVocab, dict]:
    from safetensors.torch import load_file

    path = Path(path)
    vocab, meta = read_student_files(path)
    try:
        model = student_from_arch(meta["arch"])
    except ValueError as e:
        raise ValueError(f"the student in {path}: {e}") from None
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.eval(), vocab, meta


def read_student_files(path: str | Path) -> tuple[StudentVocab, dict]:
    """A saved student's vocabulary and ``student.json``, without building the model."""
    path = Path(path)
    return (StudentVocab.from_json((path / "vocab.json").read_text()),
            json.loads((path / "student.json").read_text()))
