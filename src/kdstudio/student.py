"""The student: a BiLSTM classifier (Tang et al. 2019) and its vocabulary. No training code.

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

from .config import POOLINGS, StudentConfig

PAD, UNK = 0, 1


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
        ids = tokenizer(texts, add_special_tokens=False, truncation=True,
                        max_length=max_length)["input_ids"]
        used = sorted({i for row in ids for i in row} | {tokenizer.mask_token_id or 0})
        return cls(used, len(tokenizer), tokenizer.unk_token_id or 0)

    def encode(self, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
        """(N, L) int64 student ids, right-padded with 0; every row has at least one token."""
        rows = tokenizer(list(texts), add_special_tokens=False, truncation=True,
                         max_length=max_length)["input_ids"]
        width = max(1, max((len(r) for r in rows), default=1))
        out = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            if r:
                out[i, :len(r)] = self._lut[np.asarray(r, dtype=np.int64)]
            else:
                out[i, 0] = UNK  # an empty text still needs one step through the LSTM
        return out

    def encode_ragged(self, tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
        rows = tokenizer(list(texts), add_special_tokens=False, truncation=True,
                         max_length=max_length)["input_ids"]
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
    """Embedding → BiLSTM → pooled features → ReLU layer → logits.

    Features are [h_fwd; h_bwd] at each direction's last token (``pooling="last"``, Tang et
    al.), their element-wise max over the sentence's positions (``"max"``), or both,
    concatenated (``"last_max"``).
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, fc_size: int,
                 num_labels: int, dropout: float = 0.1, pooling: str = "last"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.fwd = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.bwd = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        n_feat = 4 if pooling == "last_max" else 2
        self.fc = nn.Linear(n_feat * hidden_size, fc_size)
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
        feats = []
        if self.pooling in ("last", "last_max"):
            last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, h_f.shape[-1])  # (B, 1, H)
            feats += [h_f.gather(1, last).squeeze(1), h_b.gather(1, last).squeeze(1)]
        if self.pooling in ("max", "last_max"):
            # Positions past a row's length (its padding) never win; both directions hold
            # their valid states in the first `length` positions.
            pad = (pos >= lengths.unsqueeze(1)).unsqueeze(-1)  # (B, L, 1)
            feats += [h_f.masked_fill(pad, -2.0).amax(1), h_b.masked_fill(pad, -2.0).amax(1)]
        feat = torch.cat(feats, dim=-1)  # (B, 2H) or (B, 4H)
        hidden = torch.relu(self.fc(self.dropout(feat)))  # (B, F)
        return self.out(self.dropout(hidden))  # (B, C)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pca_project(rows: torch.Tensor, dim: int) -> torch.Tensor:
    """Project embedding rows (row 0 = padding) onto their top ``dim`` principal components.

    The cheapest way to a narrower table that keeps the teacher's geometry; the result is
    rescaled to the rows' original spread so training starts at a familiar scale.
    """
    if dim >= rows.shape[1]:
        return rows
    kept = rows[1:]
    mean = kept.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(kept - mean, full_matrices=False)
    proj = v[:dim].T  # (E, k), k = min(dim, rows kept): a tiny vocabulary has fewer
    out = (rows - mean) @ proj
    out = out / out[1:].std().clamp(min=1e-6) * kept.std()
    if out.shape[1] < dim:  # pad with zero columns, which training can still fill
        out = torch.cat([out, out.new_zeros(out.shape[0], dim - out.shape[1])], 1)
    out[PAD] = 0.0
    return out


def teacher_embedding_rows(teacher_model: nn.Module, vocab: StudentVocab,
                           dim: int | None) -> torch.Tensor:
    """Teacher input-embedding rows for the student's tokens, optionally PCA-projected."""
    table = teacher_model.get_input_embeddings().weight.detach().float().cpu()  # (V_t, E_t)
    idx = torch.tensor([vocab.unk_teacher_id, vocab.unk_teacher_id] + vocab.teacher_ids)
    rows = table[idx].clone()  # (V_s, E_t)
    rows[PAD] = 0.0
    return rows if dim is None else pca_project(rows, dim)


def context_sample(texts: list[str], labels: np.ndarray, n: int) -> list[str]:
    """The transfer-set sentences "teacher-context" embeddings are averaged over: the first
    ``n``, the originals (label >= 0) before the augmented copies."""
    order = np.concatenate([np.flatnonzero(labels >= 0), np.flatnonzero(labels < 0)])
    return [texts[i] for i in order[:n]]


def teacher_context_rows(teacher_model: nn.Module, tokenizer, texts: list[str],
                         vocab: StudentVocab, layer: int = -1, max_length: int = 64,
                         batch_size: int = 64, on_batch=None) -> torch.Tensor:
    """Each student token's mean hidden state at the teacher's ``layer`` over ``texts``.

    A static embedding distilled from the teacher's contextual ones (Gupta & Jaggi 2021):
    every occurrence of a token in ``texts`` (the teacher reads them with its special tokens)
    adds the hidden state at its position; a token's row is the mean. ``layer`` indexes the
    model's ``hidden_states`` (0 = the embedding layer's output, -1 = the last layer). Tokens
    that never occur keep their input-embedding row. The table is rescaled to the input
    embeddings' spread, so training starts at the scale it does with ``embedding_init:
    teacher``. Returns (len(vocab), hidden size), row 0 (padding) zero.
    """
    inputs = teacher_embedding_rows(teacher_model, vocab, None)  # (V_s, E_t)
    lut = torch.from_numpy(vocab._lut)
    specials = torch.tensor(sorted(set(tokenizer.all_special_ids) - {tokenizer.mask_token_id}))
    sums = torch.zeros_like(inputs, dtype=torch.float64)
    counts = torch.zeros(len(vocab), dtype=torch.float64)
    device = next(teacher_model.parameters()).device
    was_training = teacher_model.training
    teacher_model.eval()
    texts = sorted(texts, key=len)  # batches of similar length: less padding to run
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], padding=True,
                            truncation=True, max_length=max_length, return_tensors="pt")
            out = teacher_model(**{k: v.to(device) for k, v in enc.items()},
                                output_hidden_states=True)
            n = len(out.hidden_states)
            if not -n <= layer < n:
                raise ValueError(f"context_layer {layer} is out of range: the teacher has {n} "
                                 f"hidden states (0 = its embedding layer, {n - 1} or -1 = "
                                 f"its last layer)")
            states = out.hidden_states[layer].float().cpu()  # (B, L, E_t)
            tid = enc["input_ids"]
            keep = enc["attention_mask"].bool() & ~torch.isin(tid, specials)
            sid = lut[tid[keep]]
            sums.index_add_(0, sid, states[keep].double())
            counts.index_add_(0, sid, torch.ones(len(sid), dtype=torch.float64))
            if on_batch is not None:
                on_batch(min(start + batch_size, len(texts)), len(texts))
    teacher_model.train(was_training)
    seen = counts > 0
    seen[PAD] = False
    rows = inputs.clone()
    ctx = (sums[seen] / counts[seen].unsqueeze(1)).float()
    rows[seen] = (ctx - ctx.mean(0)) / ctx.std().clamp(min=1e-6) * inputs[1:].std() \
        + inputs[seen].mean(0)
    rows[PAD] = 0.0
    return rows


def build_student(cfg: StudentConfig, vocab: StudentVocab, num_labels: int,
                  teacher_model: nn.Module | None = None, seed: int = 42,
                  context_rows: torch.Tensor | None = None) -> BiLSTMClassifier:
    """A student for ``vocab``; "teacher-context" embeddings need ``context_rows`` (from
    :func:`teacher_context_rows`), "teacher" ones the ``teacher_model``."""
    torch.manual_seed(seed)
    init = None
    if cfg.embedding_init == "teacher-context":
        if context_rows is None or context_rows.shape[0] != len(vocab):
            raise ValueError("embedding_init='teacher-context' needs the teacher's context "
                             "rows for this vocabulary (student.teacher_context_rows)")
        rows = context_rows.float()
        init = rows if cfg.embedding_dim is None else pca_project(rows, cfg.embedding_dim)
        dim = init.shape[1]
    elif cfg.embedding_init == "teacher":
        if teacher_model is None:
            raise ValueError("embedding_init='teacher' needs the teacher model")
        init = teacher_embedding_rows(teacher_model, vocab, cfg.embedding_dim)
        dim = init.shape[1]
    else:
        dim = cfg.embedding_dim or 300
    model = BiLSTMClassifier(len(vocab), dim, cfg.hidden_size, cfg.fc_size, num_labels,
                             cfg.dropout, cfg.pooling)
    if init is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(init)
    if cfg.embeddings_frozen:
        model.embedding.weight.requires_grad_(False)
    return model


def save_student(model: BiLSTMClassifier, vocab: StudentVocab, label_names: list[str],
                 out_dir: str | Path, meta: dict | None = None) -> None:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out_dir / "model.safetensors"))
    arch = {"vocab_size": model.embedding.num_embeddings,
            "embedding_dim": model.embedding.embedding_dim,
            "hidden_size": model.fwd.hidden_size, "fc_size": model.fc.out_features,
            "num_labels": model.out.out_features, "pooling": model.pooling,
            "label_names": label_names}
    (out_dir / "student.json").write_text(json.dumps({"arch": arch, **(meta or {})}, indent=1))
    (out_dir / "vocab.json").write_text(vocab.to_json())


def load_student(path: str | Path) -> tuple[BiLSTMClassifier, StudentVocab, dict]:
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads((path / "student.json").read_text())
    a = meta["arch"]
    model = BiLSTMClassifier(a["vocab_size"], a["embedding_dim"], a["hidden_size"],
                             a["fc_size"], a["num_labels"], dropout=0.0,
                             pooling=a.get("pooling", "last"))  # older runs: "last"
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    model.eval()
    vocab = StudentVocab.from_json((path / "vocab.json").read_text())
    return model, vocab, meta
