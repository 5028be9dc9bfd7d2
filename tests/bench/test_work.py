import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertForSequenceClassification

from kdstudio.student import BiLSTMClassifier


def _bert():
    cfg = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=32,
                     attn_implementation="eager")
    return BertForSequenceClassification(cfg).eval()


def test_teacher_count_matches_torchs_flop_counter(work):
    model = _bert()
    ids = torch.randint(1, 50, (3, 7))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(input_ids=ids)
    assert work.teacher_macs(model, (3, 7)) == fc.get_total_flops() / 2
    # By hand: 2 layers of 4·8·8 + 2·8·16 weights a token, attention 2·7²·8 a layer,
    # pooler 8·8 and classifier 8·2 a sentence; the embedding tables cost nothing.
    assert work.teacher_macs(model, (3, 7)) == 3 * (7 * 1024 + 2 * 2 * 49 * 8 + 80)


def test_student_count(work):
    model = BiLSTMClassifier(vocab_size=10, embedding_dim=4, hidden_size=3, fc_size=5,
                             num_labels=2)
    # Two directions of 4·3·(4 + 3) weights a token; 6·5 + 5·2 a sentence.
    assert work.student_macs(model, (2, 7)) == 2 * (7 * 168 + 40)


def test_per_sentence_pads_within_compares_length_buckets(work):
    texts = ["a " * n for n in (1, 2, 3, 9)]

    def encode(batch):
        return np.zeros((len(batch), max(len(t.split()) for t in batch)))

    b1, b2 = work.per_sentence(lambda s: s[0] * s[1], encode, texts, batch_size=2)
    assert b1 == (1 + 2 + 3 + 9) / 4
    assert b2 == (2 * 2 + 2 * 9) / 4  # buckets {1, 2} and {3, 9}, each padded to its longest


def test_rates_and_table(work):
    count = {"run": "r", "shape": [150, 200], "batch_size": 32, "sentences": 872,
             "teacher_macs_b1": 300e6, "teacher_macs_b32": 400e6,
             "student_macs_b1": 10e6, "student_macs_b32": 16e6}
    run = {"file": "sst2.json", "machine": "AMD EPYC (AVX2)", "teacher_b1_ms": 10.0,
           "int8_b1_ms": 0.25, "teacher_b32_per_s": 200.0, "int8_b32_per_s": 8000.0,
           "speedup_b1": 40.0, "speedup_b32": 40.0, "buckets": True}
    old = {**run, "file": "old.json", "buckets": False}
    rows = work.rates(count, [run, old])
    assert [r["file"] for r in rows] == ["sst2.json"]  # timed without length buckets: left out
    assert rows[0]["teacher_gmacs_b1"] == 30.0 and rows[0]["int8_gmacs_b1"] == 40.0
    assert rows[0]["teacher_gmacs_b32"] == 80.0 and rows[0]["int8_gmacs_b32"] == 128.0
    out = work.render(count, rows)
    assert "1/30.0 of the teacher's work at batch 1 and 1/25.0 at batch 32" in out
    assert "50x at batch 1 needs it to get through 1.67x" in out and "batch 32 4.00x" in out
    assert "| sst2.json | AMD EPYC (AVX2) | 30.0 | 40.0 | 1.33x | 80.0 | 128.0 | 1.60x " in out
