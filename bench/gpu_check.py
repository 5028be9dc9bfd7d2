"""Check the CUDA path on a machine with a GPU: teacher fine-tuning (bf16 autocast), teacher
logits, student training through Accelerate, and that the GPU-trained student still exports
to ONNX and matches on the CPU. Tiny models and data, a few seconds of work.

    python bench/gpu_check.py
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    # "--cpu" dry-runs the same steps on the CPU (to check the script, not the GPU).
    dev = "cpu" if "--cpu" in sys.argv else "cuda"
    if dev == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here")
        return 1
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from kdstudio.config import StudentConfig, TeacherConfig
    from kdstudio.data import Split, TaskData
    from kdstudio.student import StudentVocab, build_student, load_student, save_student
    from kdstudio.teacher import fine_tune, load_teacher
    from kdstudio.train import TrainSet, train_student

    rng = random.Random(0)
    good, bad = ["good", "great", "fine"], ["bad", "dull", "awful"]
    filler = ["the", "movie", "was", "very", "plot", "and"]

    def rows(n):
        out = []
        for _ in range(n):
            y = rng.randint(0, 1)
            w = [rng.choice(filler) for _ in range(4)] + [rng.choice(good if y else bad)]
            rng.shuffle(w)
            out.append((" ".join(w), y))
        return out

    tr, va = rows(512), rows(128)
    task = TaskData(Split([t for t, _ in tr], np.array([y for _, y in tr])),
                    Split([t for t, _ in va], np.array([y for _, y in va])),
                    ["neg", "pos"], "text", "label", "synthetic")
    report = {"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
              "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + good + bad + filler
        (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
        tok = BertTokenizerFast(vocab=str(d / "vocab.txt"))
        BertForSequenceClassification(BertConfig(
            vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=128)).save_pretrained(d / "bb")
        tok.save_pretrained(d / "bb")
        m = fine_tune(task, TeacherConfig(backbone=str(d / "bb"), epochs=3, batch_size=32,
                                          learning_rate=1e-3, max_length=16),
                      d / "teacher", seed=0, device=dev)
        report["teacher_val_accuracy"] = m["val_accuracy"]
        teacher = load_teacher(str(d / "teacher"), task, device=dev, max_length=16)
        report["teacher_device"] = str(teacher.device)
        logits = teacher.predict_logits(task.train.texts)
        svocab = StudentVocab.build(teacher.tokenizer, task.train.texts, 16)
        ids = svocab.encode_ragged(teacher.tokenizer, task.train.texts, 16)
        val = svocab.encode_ragged(teacher.tokenizer, task.validation.texts, 16)
        cfg = StudentConfig(hidden_size=32, fc_size=32, epochs=3, batch_size=32, patience=0)
        student = build_student(cfg, svocab, 2, teacher.model.cpu())
        hist = train_student(student, TrainSet(ids, task.train.labels, logits), val,
                             task.validation.labels, cfg, seed=0, device=dev)
        report["student_device"] = hist["device"]
        report["student_val_accuracy"] = hist["best"]["val_accuracy"]
        save_student(student.cpu(), svocab, ["neg", "pos"], d / "s")
        from kdstudio.quantize import export_student, run_student_onnx, session

        cpu_model, _, _ = load_student(d / "s")
        x = svocab.encode(teacher.tokenizer, task.validation.texts, 16)
        with torch.no_grad():
            ref = cpu_model(torch.from_numpy(x)).numpy()
        y = run_student_onnx(session(export_student(cpu_model, d / "s.onnx")), x)
        report["onnx_max_abs_diff"] = float(np.abs(y - ref).max())
    print(json.dumps(report, indent=1))
    ok = (report["teacher_device"].startswith(dev) and report["student_device"]
          .startswith(dev) and report["onnx_max_abs_diff"] <= 1e-4)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
