import json

from kdstudio.config import RunConfig
from kdstudio.runs import Run, latest_finished, list_runs


def test_create_status_events_and_listing(tmp_path):
    a = Run.create(RunConfig(name="a b/c"), tmp_path)
    b = Run.create(RunConfig(name="second"), tmp_path)
    assert a.config().name == "a b/c" and "/" not in a.id
    assert a.status()["status"] == "created"
    a.log("progress", step=1, total=2)
    a.log("metric", value=0.5)
    assert [e["kind"] for e in a.events()] == ["progress", "metric"]
    assert a.events("metric")[0]["value"] == 0.5
    # a half-written last line is not read
    with open(a.path / "events.jsonl", "a") as f:
        f.write('{"kind": "partial"')
    assert len(a.events()) == 2
    assert {r.id for r in list_runs(tmp_path)} == {a.id, b.id}
    assert latest_finished(tmp_path) is None
    b.set_status("done")
    (b.path / "results.json").write_text(json.dumps({"rows": []}))
    assert latest_finished(tmp_path).id == b.id


def test_cancel_flag(tmp_path):
    r = Run.create(RunConfig(), tmp_path)
    assert not r.cancel_requested()
    r.request_cancel()
    assert r.cancel_requested()
    r.clear_cancel()
    assert not r.cancel_requested()
