"""The studio as an API: ``gradio_client`` against the app launched on localhost.

Predictions, the augmentation preview, bad input of every kind (each gets a message, the
server keeps serving, nothing on disk changes), ten concurrent clients, and a background job
started, watched across a server restart, refused a second time, and cancelled.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from kdstudio import jobs
from kdstudio.runs import Run, list_runs

from .conftest import UPLOAD_LIMIT_MB


def snapshot_of(root: Path) -> dict[str, float]:
    """Every file under the runs folder with its mtime: "nothing saved changes"."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file() and "_cache" not in p.parts and "_exports" not in p.parts}


def probs(label_update: dict) -> dict[str, float]:
    value = label_update.get("value") or {}
    return {c["label"]: c["confidence"] for c in value.get("confidences", [])}


def test_predict_gives_every_model_side_by_side(client, finished_run):
    msg, *models, timing = client.predict(
        "the movie was wonderful and moving", finished_run.id, api_name="/predict")
    # teacher, BiLSTM student, the int8 graph of each family (BiLSTM, static, transformer),
    # fastText
    assert len(models) == 7
    for out in models:
        p = probs(out)
        assert set(p) == {"0", "1"} and abs(sum(p.values()) - 1) < 1e-4
        assert max(p, key=p.get) == "1", out  # "wonderful", "moving": positive words
        assert " ms" in out["label"]  # the time of that call, in the label
    assert "| Teacher |" in timing and "Student int8 (ONNX)" in timing
    assert "Static student int8 (ONNX)" in timing and "fastText baseline" in timing
    assert "Model2Vec baseline" in timing
    assert "Tiny transformer int8 (ONNX)" in timing
    assert finished_run.id in msg


def test_predict_defaults_to_the_latest_finished_run(client, finished_run):
    msg, *models, _ = client.predict("a dull film", "", api_name="/predict")
    assert finished_run.id in msg
    for out in models:
        p = probs(out)
        assert max(p, key=p.get) == "0", out  # "dull": a negative word


@pytest.mark.parametrize("text,expect", [
    ("", "Type a sentence first"),
    ("   ", "Type a sentence first"),
    ("good " * 2000, "only the first 2,000 were used"),
    ("😍🍿 loved it 🎬", None),
    ("这部电影非常好看", None),
    ("فيلم رائع", None),
])
def test_predict_odd_text_gets_an_answer_or_a_message(client, finished_run, studio, text,
                                                      expect):
    before = snapshot_of(studio.root)
    msg, teacher, *_ = client.predict(text, finished_run.id, api_name="/predict")
    if expect == "Type a sentence first":
        assert expect in msg and "kd-error" in msg
    else:
        assert probs(teacher), msg
        if expect:
            assert expect in msg
    assert "Traceback" not in msg
    assert snapshot_of(studio.root) == before
    assert studio.alive()


def test_predict_unknown_run_gets_a_message(client):
    msg, *_ = client.predict("fine", "no-such-run", api_name="/predict")
    assert "does not exist" in msg


def test_ten_concurrent_clients_all_get_answers(studio, finished_run):
    def ask(i: int):
        c = Client(studio.url, verbose=False, download_files=False)
        return c.predict(f"sentence number {i} was great", finished_run.id, api_name="/predict")

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(ask, range(10)))
    assert len(answers) == 10
    for msg, *models, _ in answers:
        assert all(probs(out) for out in models), msg


def test_augmentation_preview_shows_copies_tags_and_soft_labels(client, finished_run):
    msg, tags, html = client.predict(
        sentence="the movie was good and the acting was great", p_mask=0.3, p_pos=0.3,
        p_ng=0.3, n_iter=8, aug_seed=1, run_id=finished_run.id, api_name="/augment_preview")
    words = [t["token"] for t in tags]
    assert words[:3] == ["the", "movie", "was"] and all(t["class_or_confidence"] for t in tags)
    assert "<table class='kd-copies'>" in html
    assert "kd-mask" in html or "kd-pos" in html or "kd-ngram" in html
    assert "kd-prob" in html  # the teacher's probabilities for each copy
    assert "distinct copies" in msg and finished_run.id in msg
    again = client.predict(
        sentence="the movie was good and the acting was great", p_mask=0.3, p_pos=0.3,
        p_ng=0.3, n_iter=8, aug_seed=1, run_id=finished_run.id, api_name="/augment_preview")
    assert again[2] == html  # same seed → same copies


def test_augmentation_rejects_bad_settings_and_empty_text(client):
    msg, *_ = client.predict(sentence="a fine film", p_mask=0.7, p_pos=0.6,
                             api_name="/augment_preview")
    assert "p_mask + p_pos must be at most 1" in msg
    msg, *_ = client.predict(sentence="", api_name="/augment_preview")
    assert "Type a sentence first" in msg


def test_load_data_shows_columns_labels_and_balance(client, studio_data):
    msg, summary, balance, samples, text_col, label_col, _ = client.predict(
        source="SST-2 (built in)", max_train=0, max_val=0, seed=0, api_name="/load_data")
    assert "Data loaded" in msg
    assert "160 training and 40 validation rows" in summary
    assert "`sentence`" in summary and "`label`" in summary
    assert balance["headers"][:2] == ["label", "train"] and len(balance["data"]) == 2
    assert len(samples["data"]) == 8
    assert text_col["value"] == "sentence" and label_col["value"] == "label"


def _upload(client, path: Path):
    return client.predict(path=handle_file(str(path)), max_train=0, max_val=0, seed=0,
                          api_name="/upload_data")


def test_good_upload_is_stored_with_the_runs(client, studio, tmp_path):
    f = tmp_path / "reviews.csv"
    f.write_text("review,stars\n" + "".join(
        f"{'great fun' if i % 2 else 'dull and slow'} {i},{'pos' if i % 2 else 'neg'}\n"
        for i in range(40)), encoding="utf-8")
    msg, summary, _, _, text_col, label_col, stored = _upload(client, f)
    assert "Data loaded: reviews.csv" in msg, msg
    assert text_col["value"] == "review" and label_col["value"] == "stars"
    assert "`neg`, `pos`" in summary
    assert Path(stored).is_relative_to(studio.root / "_uploads") and Path(stored).exists()


@pytest.mark.parametrize("kind", ["wrong-columns", "too-big", "binary", "empty"])
def test_bad_upload_gets_a_message_and_changes_nothing(client, studio, tmp_path, kind):
    f = tmp_path / "data.csv"
    if kind == "wrong-columns":
        f.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(30)))
        expect = "could not tell which column"
    elif kind == "too-big":
        f.write_text("text,label\n" + "a fine film,1\n" * int(UPLOAD_LIMIT_MB * 1e6 / 12 + 10))
        expect = f"the limit is {UPLOAD_LIMIT_MB} MB"
    elif kind == "binary":
        f.write_bytes(bytes(range(256)) * 64)
        expect = "looks like a binary file"
    else:
        f.write_text("")
        expect = "is empty"
    before = snapshot_of(studio.root)
    runs_before = len(list_runs(studio.root))
    msg, *rest = _upload(client, f)
    assert expect in msg and "kd-error" in msg, msg
    assert "Traceback" not in msg
    assert snapshot_of(studio.root) == before
    assert len(list_runs(studio.root)) == runs_before
    if kind == "wrong-columns":  # the file's columns are offered to pick from
        assert rest[3]["choices"][1:] == [["a", "a"], ["b", "b"]]
    assert studio.alive()


def test_teacher_path_that_does_not_exist_gets_a_message(client, studio):
    runs_before = len(list_runs(studio.root))
    msg, *_ = client.predict(source="SST-2 (built in)", teacher_mode="Load a fine-tuned "
                             "classifier", pretrained="/no/such/teacher", seed=0,
                             api_name="/start_teacher")
    assert "teacher path '/no/such/teacher' does not exist" in msg
    assert len(list_runs(studio.root)) == runs_before


def test_bad_settings_are_refused_before_a_job_starts(client, studio):
    runs_before = len(list_runs(studio.root))
    msg, _ = client.predict(source="SST-2 (built in)", seed=0, p_mask=0.7, p_pos=0.6,
                            api_name="/start_distillation")
    assert "p_mask + p_pos must be at most 1" in msg
    assert len(list_runs(studio.root)) == runs_before


def test_disagreements_and_export(client, finished_run):
    msg, table = client.predict(finished_run.id, api_name="/disagreements")
    assert "validation sentences" in msg
    out = client.predict(finished_run.id, api_name="/export")
    msg, int8, fp32, static_int8, transformer_int8, results, card, bundle, preview = out
    assert finished_run.id in msg
    assert static_int8["value"]["path"].endswith("static.int8.onnx"), static_int8
    assert transformer_int8["value"]["path"].endswith("transformer.int8.onnx")
    for b in (int8, fp32, static_int8, transformer_int8, results, card, bundle):
        assert b["interactive"] and b["value"]
    assert preview["visible"] is True
    assert "BiLSTM student distilled from" in preview["value"] and "## Measured" in preview["value"]


def _status(client, run_id: str = "") -> dict:
    return client.predict(run_id, api_name="/job_status")


def _wait(pred, timeout: float = 90.0, every: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def test_job_start_progress_restart_busy_and_cancel(studio, finished_run, tiny_data_dir):
    """Start a long distillation, watch its progress, restart the server (the job keeps
    running and the new server shows it), get refused a second Start, cancel it."""
    client = Client(studio.url, verbose=False, download_files=False)
    args = dict(source="Hub id or server path", dataset=str(tiny_data_dir), max_train=0,
                max_val=0, seed=0, hidden_size=16, epochs=50, batch_size=1,
                train_baseline=False, n_iter=2, run_id=finished_run.id)
    msg, dd = client.predict(**args, api_name="/start_distillation")
    assert "Started run" in msg and f"reusing the teacher of run {finished_run.id}" in msg
    watch = dd["value"]  # the new run is selected
    run = Run(studio.root / watch)
    # progress from the child process, read from the run folder
    st = _wait(lambda: (s := _status(client, watch))["progress"].get("stage", "").startswith(
        "student") and s)
    p = st["progress"]
    assert st["status"] == "running" and p["total"] > p["step"] > 0
    assert {"elapsed", "eta", "loss", "device"} <= set(p)
    assert st["stages"][:2] == [["augment", "done"], ["student", "running"]]
    assert st["teacher_reused_from"] == finished_run.id
    pid = run.status()["pid"]

    # a restarted server shows the same job, still running
    studio.restart()
    client = Client(studio.url, verbose=False, download_files=False)
    st = _status(client)
    assert st["run_id"] == watch and st["status"] == "running"
    assert jobs.pid_alive(pid)

    # one job at a time: a second Start is refused and leaves no folder behind
    n_runs = len(list_runs(studio.root))
    msg, *_ = client.predict(**args, api_name="/start_distillation")
    assert f"Run {watch} is still running" in msg
    assert len(list_runs(studio.root)) == n_runs

    msg = client.predict(api_name="/cancel")
    assert f"Cancel requested for {watch}" in msg
    st = _wait(lambda: (s := _status(client, watch))["status"] != "running" and s, 40)
    assert st["status"] == "cancelled"
    _wait(lambda: not jobs.pid_alive(pid), 20)  # no process left behind
    assert (run.path / "transfer.parquet").exists()
    assert (run.path / "students" / "distilled" / "model.safetensors").exists()
    assert client.predict(api_name="/cancel").endswith("No job is running.</div>")
    events = [json.loads(line) for line in (run.path / "events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "cancelled"


def test_load_a_fine_tuned_teacher_as_a_job(studio, finished_run, tiny_data_dir):
    client = Client(studio.url, verbose=False, download_files=False)
    msg, dd = client.predict(
        source="Hub id or server path", dataset=str(tiny_data_dir), max_train=0, max_val=0,
        seed=0, teacher_mode="Load a fine-tuned classifier",
        pretrained=str(finished_run.path / "teacher"), api_name="/start_teacher")
    assert "loading and evaluating the teacher" in msg, msg
    st = _wait(lambda: (s := _status(client, dd["value"]))["status"] != "running" and s, 60)
    assert st["status"] == "done" and st["stages"] == [["teacher", "done"]]
    t = json.loads((studio.root / dd["value"] / "teacher" / "teacher.json").read_text())
    first = json.loads((finished_run.path / "teacher" / "teacher.json").read_text())
    assert t["fine_tuned_here"] is False and t["val_accuracy"] >= 0.9
    assert t["val_accuracy"] == first["val_accuracy"]


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_presenter_mode_refuses_actions_without_the_key(locked_studio, finished_run, tmp_path):
    """With KDSTUDIO_ADMIN_KEY set, starting, cancelling and uploading need the key: a
    refusal is one sentence and changes nothing; watching, predicting and downloading stay
    open."""
    client = Client(locked_studio.url, verbose=False, download_files=False)
    before = _tree(locked_studio.root)
    refusals = [
        client.predict(api_name="/quick_demo")[0],
        client.predict(api_name="/cancel"),
        client.predict(source="SST-2 (built in)", seed=0, api_name="/start_distillation")[0],
        client.predict(source="SST-2 (built in)", seed=0, admin_key="wrong",
                       api_name="/start_teacher")[0],
    ]
    f = tmp_path / "data.csv"
    f.write_text("text,label\na fine film,pos\na dull film,neg\n")
    refusals.append(client.predict(path=handle_file(str(f)), max_train=0, max_val=0, seed=0,
                                   api_name="/upload_data")[0])
    for msg in refusals:
        assert "presenter" in msg.lower() and "key" in msg, msg
    assert "Wrong presenter key" in refusals[3]
    assert _tree(locked_studio.root) == before  # nothing started, nothing stored
    # Visitors still watch, predict and download.
    msg, teacher, *_ = client.predict("a wonderful and moving film", finished_run.id,
                                      api_name="/predict")
    p = probs(teacher)
    assert max(p, key=p.get) == "1", teacher
    assert _status(client, finished_run.id)["status"] == "done"
    out = client.predict(finished_run.id, api_name="/export")
    assert finished_run.id in out[0]
    # With the key, the same action goes through: a cancel with nothing running says so.
    from .conftest import ADMIN_KEY

    assert client.predict(ADMIN_KEY, api_name="/cancel").endswith("No job is running.</div>")


def test_without_presenter_mode_no_key_is_asked(client):
    assert client.predict(api_name="/cancel").endswith("No job is running.</div>")


def test_resume_finishes_a_cancelled_run_from_the_studio(client, studio, finished_run):
    """A cancelled run (here: a copy of the finished one whose compare stage never ran) is
    resumed through the API: only the missing stage runs, and the run ends done."""
    import json
    import shutil

    src = finished_run.path
    # A name that sorts before every other run: the studio still opens on the newest one.
    run = Run(studio.root / "00000000-000000-resume")
    shutil.copytree(src, run.path)
    (run.path / "results.json").unlink()
    events = [json.loads(x) for x in (run.path / "events.jsonl").read_text().splitlines()]
    keep = [e for e in events if not (e["kind"] in ("stage_finished", "stage_started")
                                      and e.get("stage") == "compare")
            and e["kind"] != "run_finished"]
    (run.path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in keep))
    run.set_status("cancelled", stage="compare", message="cancelled before the compare stage")
    msg = client.predict(run.id, api_name="/resume")
    assert f"Resumed run {run.id}: compare" in msg, msg
    _wait(lambda: _status(client, run.id)["status"] == "done", timeout=180)
    assert run.results() is not None
    started = [e["stages"] for e in run.events() if e["kind"] == "run_started"]
    assert started[-1] == ["compare"]
    msg = client.predict(run.id, api_name="/resume")  # nothing left to resume
    assert "only a failed or cancelled run can be resumed" in msg
