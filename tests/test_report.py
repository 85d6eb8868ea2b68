"""The run report: metrics.json with the device each stage recorded, a report.html of real tables and figures
with the headline first, and the page as a headless browser shows it (skipped where none is installed)."""
import json, logging, subprocess, sys
from pathlib import Path

import pytest

from scnotebook.report import (METRICS_KEYS, SCHEMA_VERSION, browser_dom, find_browser, gather_metrics, md_table,
                               render_html, report_markdown, screenshot_report, write_report)

ROOT = Path(__file__).resolve().parent.parent
# a tiny valid PNG (1x1), and a wide one: enough for the report, which only links and sizes them
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def _png(path, w=1, h=1):
    b = bytearray(PNG); b[16:20] = w.to_bytes(4, "big"); b[20:24] = h.to_bytes(4, "big")
    path.parent.mkdir(parents=True, exist_ok=True); path.write_bytes(bytes(b))


class FolderRun:
    "What the report reads of a run (`path`, `config`, `metrics`, `done_info`), over a plain run folder."
    def __init__(self, path, name="toy", device="auto"):
        self.path, self.config = Path(path), {"name": name, "device": device}
    def metrics(self, stage):
        f = self.path / stage / "metrics.json"
        return json.loads(f.read_text()) if f.exists() else None
    def done_info(self, stage):
        f = self.path / ".done" / stage
        return json.loads(f.read_text()) if f.exists() else None


def _stage(root, stage, metrics, seconds, **files):
    (root / stage).mkdir(parents=True, exist_ok=True); (root / ".done").mkdir(exist_ok=True)
    (root / stage / "metrics.json").write_text(json.dumps(metrics))
    (root / ".done" / stage).write_text(json.dumps({"stage": stage, "seconds": seconds}))
    for name, text in files.items(): (root / stage / name).write_text(text)


@pytest.fixture
def run(tmp_path):
    "A hand-built run folder: four stages with metrics, the stages' Markdown tables and three figures."
    root = tmp_path / "run"
    _stage(root, "01_data", {"human": {"n_cells": 300}, "mouse": {"n_cells": 300}}, 7.1)
    _stage(root, "04_train", {"device": "cpu", "final_loss": {"mouse": 0.9}}, 11.8)
    _stage(root, "06_affinity", {"datasets": {"mouse": {"use_rep": "X_scn", "spearman": 0.65, "p_value": 0.001, "n_types": 11}},
                                 "cross_species": {"source": "mouse", "target": "human", "use_rep": "X_scn_aligned",
                                                   "n_shared": 9, "n_partner_nearest": 7, "mean_partner_rank": 1.22,
                                                   "open_set_flagged": ["acinar"], "open_set_truth": ["acinar"],
                                                   "types": {"beta": {}}}}, 7.3,
           **{"cross_affinity.md": "| human type | nearest mouse type |\n|---|---|\n| beta | beta |\n"})
    _stage(root, "08_baselines", {"device": "cuda", "table1": {"dataset": "mouse", "rows": [
        {"embedding": "Transformer", "n_types": 11, "L1 accuracy (%)": 81.8, "L1 accuracy lo": 57.3,
         "L1 accuracy hi": 90.0, "L2 accuracy (%)": 72.7}]}}, 14.1,
           **{"table1.md": "**Table 1 on mouse**\n\n| embedding | L1 acc. (%) |\n|---|---|\n| Transformer | 81.8 |\n",
              "table1.csv": "embedding,L1\nTransformer,81.8\n"})
    lt = {m: {"accuracy": a, "balanced_accuracy": a / 2, "majority_accuracy": 0.327, "max_reachable": 0.887}
          for m, a in (("none", 0.15), ("symbols", 0.887), ("muse", 0.564))}
    _stage(root, "09_metrics", {"device": "cuda", "source": "mouse", "target": "human", "use_rep": "X_scn",
                                "label_transfer": lt, "integration": {m: {"ari": 0.3} for m in lt}}, 45.7,
           **{"method_comparison.md": "| method | accuracy |\n|:--|--:|\n| none | 0.15 |\n| symbols | 0.887 |\n"})
    _png(root / "06_affinity" / "cross_affinity.png", 40, 34)
    _png(root / "07_taxonomy" / "dendrogram_mouse.png", 150, 50)
    _png(root / "10_figures" / "figure5_mouse.png", 30, 34)
    (root / "notebooks").mkdir(); (root / "notebooks" / "04_train.ipynb").write_text("{}")
    return FolderRun(root)


def test_metrics_device_is_what_the_stages_recorded(run):
    run.config["device"] = "cuda"  # asked for, but never resolved by the report: this machine may have no GPU
    m = gather_metrics(run)
    assert list(m) == METRICS_KEYS and m["schema_version"] == SCHEMA_VERSION == 2
    assert m["device"] == {"04_train": "cpu", "08_baselines": "cuda", "09_metrics": "cuda"}
    on_disk = json.loads((run.path / "metrics.json").read_text())
    assert on_disk["device"] == m["device"] and sorted(on_disk) == sorted(METRICS_KEYS)
    assert m["timings"]["02_preprocess"] is None and m["timings"]["09_metrics"] == 45.7
    assert m["training"] == {"device": "cpu", "final_loss": {"mouse": 0.9}} and "types" not in m["cross_species"]
    assert m["affinity_taxonomy"]["mouse"]["spearman"] == 0.65 and m["alignment"] is None


def test_no_stage_recorded_a_device(tmp_path):
    r = FolderRun(tmp_path / "r"); _stage(r.path, "01_data", {"human": {"n_cells": 3}}, 1.0)
    m = gather_metrics(r, ["01_data"])
    assert m["device"] == {} and m["label_transfer"] is None
    assert "No stage recorded its device." in report_markdown(r, m, ["01_data"])


def test_report_headline_first_and_stage_devices(run):
    rep = write_report(run, screenshot=False)
    text = rep.read_text()
    order = ["# scnotebook report: toy", "### Label transfer per method", "### Table 1 beside the paper's",
             "### The cross-species map", "## Stages", "## Tables", "## Figures"]
    pos = [text.index(h) for h in order]
    assert pos == sorted(pos), pos
    assert "| 04_train | cpu | 11.8 | [04_train.ipynb](notebooks/04_train.ipynb) |" in text
    assert "| 09_metrics | cuda | 45.7 |" in text and "| 02_preprocess |  |  |  |" in text  # listed, did not run
    assert "| symbols | **0.887** |" in text and "81.8 [57.3, 90.0]" in text and "**7 of 9**" in text
    assert "86.7" in text  # the paper's Transformer, beside the run's
    assert (run.path / "table1.md").exists() and (run.path / "table1.csv").exists()


def test_report_html_is_a_page_of_tables_and_figures(run):
    write_report(run, screenshot=False)
    page = (run.path / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<pre>" not in page
    assert "|---|" not in page and "| method |" not in page  # no raw Markdown left
    md_tables = (run.path / "report.md").read_text().count("\n|--") + (run.path / "report.md").read_text().count("\n|:--")
    assert page.count("<table>") == md_tables >= 7
    assert page.count("<figure>") == page.count("<figcaption>") == 3
    assert '<a href="06_affinity/cross_affinity.png"><img src="06_affinity/cross_affinity.png"' in page
    assert page.index("cross_affinity.png") < page.index("<h2>Stages</h2>") < page.index("figure5_mouse.png")
    assert '<div class="wide">' in page  # the 3:1 tree spans the gallery row
    assert "<strong>0.887</strong>" in page and '<div class="beside">' in page


def test_markdown_converter_details():
    t = md_table({"a": {"x": 1.0, "y": "p|q"}, "b": {"x": 2.0, "y": None}}, index="name", bold_max=["x"])
    assert t.splitlines()[:2] == ["| name | x | y |", "|:--|--:|:--|"] and "| b | **2.000** |  |" in t and "p\\|q" in t
    html = render_html(t + "\n![f](a.png)\n\n*the caption*\n\n![g](b.png \"a title\")\n")
    assert '<td style="text-align:left">p|q</td>' in html and html.count("<figure>") == 2
    assert "<figcaption>the caption</figcaption>" in html and "<figcaption>a title</figcaption>" in html
    assert md_table([]) == "" and md_table({}) == ""


def test_sections_left_out_when_their_stage_did_not_run(tmp_path):
    r = FolderRun(tmp_path / "r"); _stage(r.path, "01_data", {"human": {"n_cells": 3}}, 1.0)
    write_report(r, ["01_data"], screenshot=False)
    text = (r.path / "report.md").read_text()
    assert "## Headline" not in text and "## Tables" not in text and "## Figures" not in text and "## Stages" in text
    assert "<table>" in (r.path / "report.html").read_text()


def test_screenshot_without_a_browser(run, monkeypatch):
    write_report(run, screenshot=False)
    monkeypatch.setenv("SCNOTEBOOK_BROWSER", str(run.path / "no-such-browser"))
    assert find_browser() is None
    seen = []
    h = logging.Handler(); h.emit = lambda rec: seen.append(rec.getMessage())
    log = logging.getLogger("scnotebook.report"); log.addHandler(h)
    try:
        assert screenshot_report(run) is None and browser_dom(run) is None
    finally: log.removeHandler(h)
    assert any("no headless browser found" in s and "report.png not written" in s for s in seen), seen
    assert not (run.path / "report.png").exists()
    with pytest.raises(FileNotFoundError, match="write the report first"): screenshot_report(run.path / "elsewhere")


@pytest.mark.skipif(find_browser() is None, reason="no headless browser installed (chromium or google-chrome; "
                    "Debian: apt-get install chromium), or $SCNOTEBOOK_BROWSER")
def test_report_in_a_real_browser(run):
    write_report(run)  # with the screenshot of the first screen
    png = run.path / "report.png"
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")) == (1280, 900)
    dom = browser_dom(run)
    assert dom.count("<table>") == (run.path / "report.html").read_text().count("<table>") >= 7
    assert '<th style="text-align:left">method</th>' in dom and "<figcaption>" in dom and "|---|" not in dom
    assert "<title>scnotebook report: toy</title>" in dom


@pytest.mark.slow
def test_report_of_a_real_ci_run(tmp_path):
    out = tmp_path / "run"
    exe = Path(sys.executable).parent / "scnotebook"
    cmd = ([str(exe)] if exe.exists() else [sys.executable, "-m", "scnotebook.pipeline"]) + \
          ["reproduce", "--config", "ci", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    run = FolderRun(out, name="ci")
    write_report(run)
    text, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    for h in ("### Label transfer per method", "### Table 1 beside the paper's", "### The cross-species map"):
        assert h in text, h
    assert "<pre>" not in page and page.count("<table>") >= 8 and page.count("<figcaption>") >= 5
    m = json.loads((out / "metrics.json").read_text())
    assert m["device"].get("04_train") == "cpu" and set(m["device"]) <= set(m["timings"])
    if find_browser(): assert (out / "report.png").stat().st_size > 0
