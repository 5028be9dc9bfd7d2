"""Student families: one entry per kind of small model, each trained on the same transfer set.

An entry says how to build the family's model for a run (its table starting from the
teacher), which settings train it, what its rows are called, and which quantized ONNX
operators its int8 graph must hold. Training, export and comparison are shared: every
family maps student token ids (B, L) to logits (B, C).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .config import RunConfig, StudentConfig
from .student import (
    PAD,
    StaticClassifier,
    StudentVocab,
    TinyTransformerClassifier,
    build_student,
    pca_project,
    top_bigrams,
)


@dataclass(frozen=True)
class Family:
    name: str
    #: The run's student folder and ONNX file stem (the BiLSTM keeps "distilled").
    variant: str
    #: The row names in Compare: the PyTorch model, and its int8 graph.
    label: str
    int8_label: str
    #: teacher-int8 style kind of the int8 row ("student-int8" for the BiLSTM).
    int8_kind: str
    #: (config, vocabulary, number of labels, teacher, seed, the training rows' ids) → model
    build: Callable[[RunConfig, StudentVocab, int, object, int, list], nn.Module]
    train_config: Callable[[RunConfig], StudentConfig]
    #: Quantized operators the int8 graph must contain (quantize.check_quantized).
    int8_ops: tuple[str, ...]
    #: Train on at most this many transfer-set rows (None: all).
    max_rows: Callable[[RunConfig], int | None] = lambda cfg: None
    #: The operator types the int8 quantizer converts (None: every one it handles).
    int8_op_types: tuple[str, ...] | None = None
    #: (config, teacher tokenizer, the run's vocabulary) → the vocabulary this family reads.
    vocabulary: Callable[[RunConfig, object, StudentVocab], StudentVocab] = (
        lambda cfg, tok, vocab: vocab)


def _build_bilstm(cfg: RunConfig, vocab: StudentVocab, num_labels: int, teacher,
                  seed: int, ids: list) -> nn.Module:
    return build_student(cfg.student, vocab, num_labels, teacher.model, seed=seed, ids=ids)


def _bilstm_vocabulary(cfg: RunConfig, tok, vocab: StudentVocab) -> StudentVocab:
    """Every teacher token when the table starts from the teacher's, the transfer set's own
    first: a validation word the transfer set never uses (1 SST-2 sentence in 3 has one)
    keeps its teacher row instead of becoming unknown (docs/decisions.md, "BiLSTM
    vocabulary"), in a narrower part of the table (``student.NARROW_DIM``)."""
    return vocab.extended(tok) if cfg.student.embedding_init == "teacher" else vocab


@torch.no_grad()
def teacher_token_states(teacher, vocab: StudentVocab, grams: np.ndarray | None = None,
                         batch_size: int = 512) -> torch.Tensor:
    """(N, H): the teacher's last-layer states for ``[CLS] tokens [SEP]``, averaged over the
    positions: what Model2Vec distils a static table from, here from the fine-tuned teacher,
    so the vectors already lean towards the task. ``grams`` (N, n) are student token ids;
    None: each student token alone, with row ``PAD`` zero."""
    model, tok = teacher.model, teacher.tokenizer
    encoder = model.base_model.eval()
    device = next(model.parameters()).device
    to_teacher = torch.tensor([vocab.unk_teacher_id, vocab.unk_teacher_id] + vocab.teacher_ids)
    ids = (to_teacher[:, None] if grams is None
           else to_teacher[torch.as_tensor(grams, dtype=torch.long)])
    cls_id = tok.cls_token_id if tok.cls_token_id is not None else vocab.unk_teacher_id
    sep_id = tok.sep_token_id if tok.sep_token_id is not None else vocab.unk_teacher_id
    rows = []
    for s in range(0, len(ids), batch_size):
        chunk = ids[s:s + batch_size]
        ends = torch.full((len(chunk), 1), cls_id), torch.full((len(chunk), 1), sep_id)
        inp = torch.cat([ends[0], chunk, ends[1]], 1).to(device)
        out = encoder(input_ids=inp, attention_mask=torch.ones_like(inp)).last_hidden_state
        rows.append(out.mean(1).float().cpu())
    table = torch.cat(rows) if rows else torch.zeros(0, encoder.config.hidden_size)
    if grams is None:
        table[PAD] = 0.0
    return table


def _build_static(cfg: RunConfig, vocab: StudentVocab, num_labels: int, teacher,
                  seed: int, ids: list) -> nn.Module:
    torch.manual_seed(seed)
    st = cfg.static
    V = len(vocab)
    codes = top_bigrams(ids, V, st.bigrams)
    states = teacher_token_states(teacher, vocab)
    if len(codes):
        pairs = np.stack([codes // V, codes % V], 1)
        states = torch.cat([states, teacher_token_states(teacher, vocab, pairs)])
    table = pca_project(states, st.embedding_dim)
    model = StaticClassifier(V, table.shape[1], st.fc_size, num_labels, st.dropout,
                             bigrams=len(codes))
    with torch.no_grad():
        model.embedding.weight.copy_(table)
        if len(codes):
            model.bigram_codes.copy_(torch.from_numpy(codes))
    return model


def _static_training(cfg: RunConfig) -> StudentConfig:
    st = cfg.static
    kept = {"keep": "average", "patience": 0} if st.average_weights else {}
    return dataclasses.replace(cfg.student, learning_rate=st.learning_rate, dropout=st.dropout,
                               epochs=st.epochs or cfg.student.epochs,
                               batch_size=st.batch_size or cfg.student.batch_size, **kept)


def _build_transformer(cfg: RunConfig, vocab: StudentVocab, num_labels: int, teacher,
                       seed: int, ids: list) -> nn.Module:
    """The teacher cut to ``transformer.layers`` of its layers (evenly spaced, its last one
    kept) with a table of the student's tokens and a [CLS] row."""
    import copy

    torch.manual_seed(seed)
    src = teacher.model
    base = getattr(src, getattr(src, "base_model_prefix", ""), None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not hasattr(base, "embeddings") or not hasattr(src, "classifier"):
        raise ValueError(f"the transformer family needs a BERT-style teacher (embeddings, "
                         f"encoder.layer, classifier); {type(src).__name__} is not one: "
                         "leave it out of student.families")
    n = len(layers)
    k = min(cfg.transformer.layers, n)
    keep = [round((i + 1) * n / k) - 1 for i in range(k)]
    model = copy.deepcopy(src).cpu().float()
    base = getattr(model, model.base_model_prefix)
    base.encoder.layer = nn.ModuleList([base.encoder.layer[i] for i in keep])
    model.config.num_hidden_layers = k
    cls_id = teacher.tokenizer.cls_token_id
    cls_id = vocab.unk_teacher_id if cls_id is None else cls_id
    table = base.embeddings.word_embeddings.weight.detach()
    idx = torch.tensor([vocab.unk_teacher_id, vocab.unk_teacher_id] + vocab.teacher_ids
                       + [cls_id])
    emb = nn.Embedding(len(idx), table.shape[1], padding_idx=PAD)
    with torch.no_grad():
        emb.weight.copy_(table[idx])
        emb.weight[PAD] = 0.0
    base.embeddings.word_embeddings = emb
    model.config.vocab_size = len(idx)
    return TinyTransformerClassifier(model)


def _transformer_training(cfg: RunConfig) -> StudentConfig:
    tc = cfg.transformer
    return dataclasses.replace(cfg.student, learning_rate=tc.learning_rate, epochs=tc.epochs)


def family_rows(fam: Family, cfg: RunConfig, vocab: StudentVocab, tokenizer, data,
                val_ids: list, val_texts: list[str]) -> tuple:
    """(vocabulary, training rows, validation ids) for a family that may read a vocabulary of
    its own: the transfer set's ids mapped into it, and the validation texts encoded with it,
    as Compare reads them (mapped, its tokens the transfer set never uses would be unknown)."""
    from .train import TrainSet

    fvocab = fam.vocabulary(cfg, tokenizer, vocab)
    if fvocab is vocab:
        return vocab, data, val_ids
    if fvocab.teacher_ids[:len(vocab.teacher_ids)] != vocab.teacher_ids:  # ids move
        to = vocab.ids_in(fvocab)
        data = TrainSet([to[r] for r in data.ids], data.labels, data.teacher_logits)
    return fvocab, data, fvocab.encode_ragged(tokenizer, val_texts, cfg.student.max_length)


REGISTRY: dict[str, Family] = {
    "bilstm": Family("bilstm", "distilled", "BiLSTM + soft labels + augmentation",
                     "student ONNX int8", "student-int8", _build_bilstm,
                     lambda cfg: cfg.student, ("DynamicQuantizeLSTM", "MatMulInteger"),
                     vocabulary=_bilstm_vocabulary),
    "static": Family("static", "static", "Static embeddings + soft labels + augmentation",
                     "static ONNX int8", "static-int8", _build_static, _static_training,
                     # The quantizer stores the table in 8 bits (it is the size); the first
                     # layer then takes the pooled 8-bit row as it is
                     # (int8_rewrites.integer_matmul_after_dequantize). Quantizing the layers
                     # dynamically would add six nodes that cost more than they save.
                     ("MatMulInteger",), int8_op_types=("Gather",)),
    "transformer": Family("transformer", "transformer",
                          "Tiny transformer + soft labels + augmentation",
                          "transformer ONNX int8", "transformer-int8", _build_transformer,
                          _transformer_training, ("MatMulInteger",),
                          lambda cfg: cfg.transformer.max_rows,
                          # Its table is the teacher's own, so it keeps every token: the
                          # ones the transfer set never uses (1 validation sentence in 3
                          # has one) still mean what they meant to the teacher.
                          vocabulary=lambda cfg, tok, vocab: StudentVocab.whole(tok)),
}
