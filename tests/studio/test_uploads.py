"""Uploads: checked before they are read, kept by content."""

from __future__ import annotations

import pytest

from kdstudio import studio


def test_upload_past_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("KDSTUDIO_MAX_UPLOAD_MB", "0.001")
    f = tmp_path / "big.csv"
    f.write_text("text,label\n" + "a fine film,1\n" * 200)
    with pytest.raises(studio.UserInputError, match="the limit is 0 MB"):
        studio.store_upload(f, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_stored_upload_is_content_addressed_and_idempotent(tmp_path):
    f = tmp_path / "my data.csv"
    f.write_text("text,label\nfine,1\nbad,0\n")
    a = studio.store_upload(f, tmp_path / "runs")
    assert a.name == "my_data.csv" and a.parent.parent == tmp_path / "runs" / "_uploads"
    assert studio.store_upload(f, tmp_path / "runs") == a
    assert studio.store_upload(a, tmp_path / "runs") == a
