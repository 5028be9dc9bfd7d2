"""Student hyper-parameter sweeps over one fixed transfer set (for bench/NOTES.md).

    # 1. pack what student training needs from a run that has a transfer set (~30 MB):
    python bench/sweep.py pack runs/bench/<run> /tmp/sweep.npz [--context-layers 2,4,6]
    # 2. train one student per setting, several at once, on the CPU or a GPU:
    python bench/sweep.py train /tmp/sweep.npz --jobs 4 --out bench/results/sweep.jsonl \
        --try optimizer=adadelta,learning_rate=1.0 --try loss=kl,temperature=2 ...

The pack holds the student token ids of the transfer set (originals and augmented copies),
hard labels, the teacher's logits, the validation ids and labels and the teacher's embedding
rows (``emb``; with ``--context-layers``, also each layer's "teacher-context" rows as
``emb_ctx<layer>``), so training needs neither the teacher nor spaCy (it can travel to a GPU
machine).
Each ``--try`` is a comma-separated list of StudentConfig overrides, plus two sweep-only
keys: ``data=aug|noaug`` (train on the whole transfer set or the originals only),
``aug_fraction=0.5`` (the originals plus that share of the augmented copies, to see what the
amount of augmented data is worth), ``mode=distill|baseline`` and ``table=emb_ctx6`` (the
pack's embedding rows to start from; default ``emb``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import yaml


def pack(run_dir: str, out: str, context_layers: tuple[int, ...] = ()) -> None:
    from kdstudio import runs as R
    from kdstudio.data import load_task
    from kdstudio.student import (
        StudentVocab,
        context_sample,
        teacher_context_rows,
        teacher_embedding_rows,
    )
    from kdstudio.teacher import load_teacher
    from kdstudio.transfer import read_transfer_set

    run = R.Run(Path(run_dir))
    cfg = run.config()
    task = load_task(cfg.data, cfg.seed)
    teacher = load_teacher(str(run.file(R.TEACHER_DIR)), task)
    texts, labels, logits = read_transfer_set(run.file(R.TRANSFER_FILE))
    L = cfg.student.max_length
    vocab = StudentVocab.build(teacher.tokenizer, texts, L)
    ids = vocab.encode_ragged(teacher.tokenizer, texts, L)
    val = vocab.encode_ragged(teacher.tokenizer, task.validation.texts, L)
    emb = teacher_embedding_rows(teacher.model, vocab, None)
    # Over the sentences the pipeline's "teacher-context" init reads (with the run's
    # context_sentences).
    sample = context_sample(texts, labels, cfg.student.context_sentences)
    extra = {f"emb_ctx{k}": teacher_context_rows(
        teacher.model, teacher.tokenizer, sample, vocab, k, cfg.teacher.max_length
    ).numpy().astype(np.float16) for k in context_layers}
    np.savez_compressed(
        out, ids=np.concatenate(ids).astype(np.uint16), lens=np.array([len(x) for x in ids]),
        labels=labels.astype(np.int8), logits=logits.astype(np.float32),
        val_ids=np.concatenate(val).astype(np.uint16), val_lens=np.array([len(x) for x in val]),
        val_labels=task.validation.labels.astype(np.int8), emb=emb.numpy().astype(np.float16),
        **extra)
    print(f"packed {len(ids)} rows, vocab {len(vocab)}, into {out} "
          f"({Path(out).stat().st_size / 1e6:.1f} MB)")


def _split(flat: np.ndarray, lens: np.ndarray) -> list[np.ndarray]:
    return np.split(flat.astype(np.int64), np.cumsum(lens)[:-1])


def train_one(args: tuple[str, dict, str]) -> dict:
    path, setting, device = args
    import torch

    torch.set_num_threads(1 if device == "cpu" else 2)
    from kdstudio.config import StudentConfig
    from kdstudio.student import BiLSTMClassifier, pca_project
    from kdstudio.train import TrainSet, train_student

    d = np.load(path)
    setting = dict(setting)
    data = setting.pop("data", "aug")
    mode = setting.pop("mode", "distill")
    aug_fraction = float(setting.pop("aug_fraction", 1.0))
    seed = int(setting.pop("seed", 1))
    table = str(setting.pop("table", "emb"))
    cfg = StudentConfig(**setting)
    ids = _split(d["ids"], d["lens"])
    labels = d["labels"].astype(np.int64)
    logits = d["logits"]
    if data == "noaug":
        keep = np.flatnonzero(labels >= 0)
        ids, labels, logits = [ids[i] for i in keep], labels[keep], logits[keep]
    elif aug_fraction < 1.0:  # keep the originals and this fraction of the augmented copies
        rng = np.random.default_rng(0)
        aug = np.flatnonzero(labels < 0)
        keep = np.sort(np.concatenate([np.flatnonzero(labels >= 0), rng.choice(
            aug, int(round(aug_fraction * len(aug))), replace=False)]))
        ids, labels, logits = [ids[i] for i in keep], labels[keep], logits[keep]
    emb = torch.from_numpy(d[table].astype(np.float32))
    if cfg.embedding_dim:
        emb = pca_project(emb, cfg.embedding_dim)
    torch.manual_seed(seed)
    model = BiLSTMClassifier(emb.shape[0], emb.shape[1], cfg.hidden_size, cfg.fc_size,
                             logits.shape[1], cfg.dropout, cfg.pooling)
    if cfg.embedding_init != "random":  # the pack's rows: `table` says which
        with torch.no_grad():
            model.embedding.weight.copy_(emb)
    t0 = time.time()
    hist = train_student(model, TrainSet(ids, labels, logits),
                         _split(d["val_ids"], d["val_lens"]),
                         d["val_labels"].astype(np.int64), cfg, mode=mode, seed=seed,
                         device=device)
    return {"setting": {**setting, "data": data, "mode": mode, "seed": seed,
                        "aug_fraction": aug_fraction, "table": table},
            "best": hist["best"], "history": hist["history"], "steps": hist["steps"],
            "train_rows": len(ids), "seconds": round(time.time() - t0, 1),
            "device": hist["device"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("run")
    p.add_argument("out")
    p.add_argument("--context-layers", default="",
                   help="comma-separated teacher layers whose context rows to pack too")
    p = sub.add_parser("train")
    p.add_argument("pack")
    p.add_argument("--try", dest="tries", action="append", default=[])
    p.add_argument("--tries-file", help="one setting per line (# comments allowed)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        pack(args.run, args.out,
             tuple(int(k) for k in args.context_layers.split(",") if k.strip()))
        return 0
    tries = list(args.tries)
    if args.tries_file:
        for line in Path(args.tries_file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                tries.append(line)
    settings = []
    for t in tries:
        s = {}
        for kv in t.split(","):
            k, v = kv.split("=", 1)
            s[k.strip()] = yaml.safe_load(v)
        settings.append(s)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    # One JSON line per finished setting, written as it finishes (a cut-off sweep keeps
    # what it got).
    with ProcessPoolExecutor(args.jobs) as ex:
        futures = [ex.submit(train_one, (args.pack, s, args.device)) for s in settings]
        for f in as_completed(futures):
            r = f.result()
            print(json.dumps({"setting": r["setting"], "best": r["best"]["val_accuracy"],
                              "last": r["history"][-1]["val_accuracy"] if r["history"]
                              else None, "seconds": r["seconds"]}), flush=True)
            with open(out, "a") as fh:
                fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
