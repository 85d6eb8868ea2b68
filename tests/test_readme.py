"""README.md is generated from nbs/index.ipynb and states the two commands that set up and run."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from make_readme import render  # noqa: E402


def test_readme_equals_index():
    assert (ROOT / "README.md").read_text(encoding="utf-8") == render(), \
        "README.md differs from nbs/index.ipynb: run python scripts/make_readme.py"


def test_readme_top_commands_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text[: text.index("## What it does")]
    assert "bash scripts/setup.sh && .venv/bin/scnotebook reproduce --config configs/default.yaml --out runs/default" in head
    assert "bash scripts/test.sh" in head
    for f in ("scripts/setup.sh", "scripts/test.sh", "configs/default.yaml", ".ci/run"):
        assert (ROOT / f).exists(), f


def test_docs_check_passes():
    # the configuration, titles and links; .ci/run runs the full check (every notebook executed, outputs on every page)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_docs.py"), "--static"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
