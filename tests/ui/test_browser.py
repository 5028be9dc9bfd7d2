"""The studio in a real browser: Debian's Chromium driven by Playwright.

Opens the app, visits every tab, previews augmentation, classifies a sentence, checks that
the results appear and that an empty text gets a message, and saves screenshots under
``test-artifacts/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from kdstudio.runs import list_runs

from .conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's Chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # A fresh profile per test; Playwright must not download a browser of its own.
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(60_000)
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_every_tab_augmentation_and_prediction(page, studio, finished_run):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(studio.url)
    # With a finished run present, the studio opens on it (Compare tab) at once.
    page.wait_for_selector("#kd-compare-table")
    page.locator("#kd-compare-header").get_by_text(finished_run.id, exact=False).wait_for()

    _tab(page, "Data & teacher")
    page.locator("#kd-load-data").click()
    page.locator("#kd-data-summary").get_by_text("160 training and 40 validation rows",
                                                 exact=False).wait_for()
    page.locator("#kd-teacher-status").get_by_text("ready", exact=False).wait_for()
    page.screenshot(path=str(ARTIFACTS / "studio-1-data.png"), full_page=True)

    _tab(page, "Augmentation")
    box = page.locator("#kd-aug-sentence textarea")
    box.fill("the movie was good and the acting was great")
    page.locator("#kd-aug-preview").click()
    page.locator("#kd-aug-copies table.kd-copies").wait_for()
    page.locator("#kd-aug-copies .kd-prob").first.wait_for()  # teacher soft labels
    assert page.locator("#kd-aug-copies tr").count() >= 3
    page.screenshot(path=str(ARTIFACTS / "studio-2-augmentation.png"), full_page=True)

    _tab(page, "Distillation")
    # With no job running, the progress panel shows the newest run (other tests add runs).
    newest = list_runs(studio.root)[0].id
    expect(page.locator("#kd-monitor")).to_contain_text(newest)
    expect(page.locator("#kd-runs")).to_contain_text(finished_run.id)
    page.screenshot(path=str(ARTIFACTS / "studio-3-distillation.png"), full_page=True)

    _tab(page, "Compare")
    text = page.locator("#kd-predict-text textarea")
    text.fill("")
    page.locator("#kd-predict").click()
    page.locator("#kd-predict-msg").get_by_text("Type a sentence first").wait_for()
    text.fill("a wonderful , moving film")
    page.locator("#kd-predict").click()
    page.locator("#kd-timing").get_by_text("time of this call").wait_for()
    for kind in ("teacher", "student", "student-int8", "static-int8", "transformer-int8",
                 "baseline-fasttext"):  # the shared run has every family and fastText
        assert " ms" in page.locator(f"#kd-label-{kind}").inner_text()
    # the shortlist of what to ship, as the run's own numbers give it
    from kdstudio.studio import trade_offs

    front = trade_offs(finished_run.results())
    if front:
        expect(page.locator("#kd-front")).to_have_text(front)
    else:
        expect(page.locator("#kd-front")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "studio-4-compare.png"), full_page=True)

    _tab(page, "Export")
    page.locator("#kd-card-preview").get_by_text("BiLSTM student distilled from",
                                                 exact=False).wait_for()
    page.screenshot(path=str(ARTIFACTS / "studio-5-export.png"), full_page=True)
    shutil.copyfile(ARTIFACTS / "studio-4-compare.png", ARTIFACTS / "studio.png")
    assert studio.alive()


def _table_rows(page, selector: str) -> list[str]:
    """The text of each body row of a Gradio Dataframe, as the user sees it."""
    # Gradio's virtual table draws its body rows as role=row divs (the header is a tr).
    return [" | ".join(c.inner_text().strip() for c in r.locator("[role=gridcell]").all())
            for r in page.locator(f"{selector} div[role=row]").all()]


def _charts_overflow(page) -> list[dict]:
    """Visible Plotly charts laid out wider than the panel that holds them."""
    return page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .filter(e => e.offsetParent && e._fullLayout)
        .map(e => ({drawn: e._fullLayout.width,
                    panel: Math.round(e.closest('.block').getBoundingClientRect().width)}))
        .filter(c => c.drawn > c.panel + 1)""")


def test_start_distillation_shows_progress_and_then_the_new_run(page, studio, finished_run,
                                                                tiny_data_dir):
    """Start from the browser (reusing the finished run's teacher), reload the page while
    the job runs, and see the new run's comparison and downloads when it is done, with no
    reload after it ended; a second browser sees the same."""
    from playwright.sync_api import expect

    from kdstudio.runs import Run

    page.goto(studio.url)
    page.wait_for_selector("#kd-compare-table")
    _tab(page, "Data & teacher")
    page.get_by_label("Hub id or server path").check()
    page.locator("#kd-dataset textarea, #kd-dataset input").first.fill(str(tiny_data_dir))
    for label, value in (("Training examples (0 = all)", "0"),
                         ("Validation examples (0 = all)", "0"),
                         ("Seed (split, teacher, augmentation, student)", "0")):
        page.get_by_label(label).fill(value)
    page.locator("#kd-load-data").click()
    expect(page.locator("#kd-data-summary")).to_contain_text("160 training")

    _tab(page, "Distillation")
    soft = page.get_by_label("Also train soft labels without augmentation")
    soft.uncheck()  # a setting away from the preset, to find again after the reload
    page.locator("#kd-start").click()
    msg = page.locator("#kd-distill-msg")
    expect(msg).to_contain_text(f"reusing the teacher of run {finished_run.id}")
    new_id = msg.inner_text().split("Started run ")[1].split(":")[0]
    expect(page.locator("#kd-monitor")).to_contain_text(new_id)
    # Reload while the job runs: the page follows the running job.
    assert Run(studio.root / new_id).status()["status"] == "running"
    page.reload()
    _tab(page, "Distillation")
    # A page's first poll waits behind the job for the CPU: give it time.
    expect(page.locator("#kd-monitor")).to_contain_text(new_id, timeout=30_000)
    expect(page.locator("#kd-run input")).to_have_value(re.compile(re.escape(new_id)))
    expect(page.get_by_label("Also train soft labels without augmentation")).not_to_be_checked()
    # A second browser (a fresh page) shows the same job, read from the runs folder.
    other = page.context.new_page()
    other.goto(studio.url)
    _tab(other, "Distillation")
    expect(other.locator("#kd-monitor")).to_contain_text(new_id, timeout=30_000)
    expect(page.locator("#kd-monitor")).to_contain_text(f"{new_id} — done", timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "studio-6-job-done.png"), full_page=True)
    # When the job ends, Compare and Export show the new run, without a reload.
    for p in (page, other):
        expect(p.locator("#kd-header-msg")).to_contain_text(f"Run {new_id} finished")
        _tab(p, "Compare")
        expect(p.locator("#kd-compare-header")).to_contain_text(new_id, timeout=15_000)
        expect(p.locator("#kd-headline")).to_contain_text("int8 student: ")
        expect(p.locator("#kd-compare-table")).to_contain_text("student ONNX int8")
        rows = _table_rows(p, "#kd-compare-table")
        assert any(r.startswith("teacher") for r in rows), rows
        assert any("student ONNX int8" in r and "%" in r for r in rows), rows
        # The charts were drawn while Compare was hidden: they fit their panels once shown.
        p.wait_for_timeout(500)
        assert _charts_overflow(p) == [], _charts_overflow(p)
        _tab(p, "Export")
        expect(p.locator("#kd-export-msg")).to_contain_text(new_id)
        expect(p.locator("#kd-dl-int8")).to_be_enabled()
        expect(p.locator("#kd-card-preview")).to_contain_text(f"run {new_id}")
        # Names only on screen, no server paths.
        expect(p.locator("#kd-card-preview")).to_contain_text(
            f"the teacher of run {finished_run.id}")
        for where in ("#kd-card-preview", "#kd-compare-header"):
            expect(p.locator(where)).not_to_contain_text(str(studio.root))
    other.close()


def test_first_visit_in_presenter_mode(page, tmp_path, studio_data):
    """An empty runs folder on a public deployment: the reference benchmark with its
    headline and the next step; the Quick demo needs the presenter key."""
    from playwright.sync_api import expect

    from kdstudio.studio import reference_benchmark, reference_headline

    from .conftest import ADMIN_KEY, Server

    server = Server(tmp_path / "runs", studio_data, tmp_path / "server.log",
                    env={"KDSTUDIO_ADMIN_KEY": ADMIN_KEY}).start()
    try:
        page.goto(server.url)
        header = page.locator("#kd-compare-header")
        expect(header).to_contain_text("Reference benchmark: SST-2 validation", timeout=30_000)
        expect(header).to_contain_text("Quick demo")
        expect(page.locator("#kd-headline")).to_have_text(
            reference_headline(reference_benchmark()))
        names = [r["name"] for r in reference_benchmark()["rows"]]
        rows = _table_rows(page, "#kd-compare-table")
        assert [r.split(" | ")[0] for r in rows] == names, rows
        assert rows[-1].startswith("teacher"), rows
        # The chart draws one legend entry per model, and one for the Pareto front.
        legend = page.locator("#kd-scatter .legend .traces")
        expect(legend).to_have_count(len(names) + 1, timeout=30_000)
        expect(legend.last).to_contain_text("Pareto front")
        page.screenshot(path=str(ARTIFACTS / "studio-0-first-visit.png"), full_page=True)
        page.locator("#kd-quick").click()
        expect(page.locator("#kd-header-msg")).to_contain_text("presenter key")
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
        page.locator("#kd-admin-key input").fill("not the key")
        page.locator("#kd-quick").click()
        expect(page.locator("#kd-header-msg")).to_contain_text("Wrong presenter key")
    finally:
        server.stop()


def test_no_key_is_asked_without_presenter_mode(page, studio):
    from playwright.sync_api import expect

    page.goto(studio.url)
    page.wait_for_selector("#kd-compare-table")
    expect(page.locator("#kd-admin-key")).to_be_hidden()
