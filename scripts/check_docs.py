"""Check the documentation without Quarto (which `nbdev_docs` needs): every notebook converts to HTML,
its relative links resolve, and the docs configuration (_quarto.yml, nbdev.yml, sidebar.yml) is
consistent with the notebooks. Exits non-zero with a list of problems."""
import re, sys
from pathlib import Path

import nbformat
import yaml
from nbconvert import HTMLExporter

nbs = Path(__file__).resolve().parent.parent / "nbs"
problems = []

quarto = yaml.safe_load((nbs / "_quarto.yml").read_text())
for f in quarto.get("metadata-files", []):
    if not (nbs / f).exists(): problems.append(f"_quarto.yml names metadata file {f}, which does not exist")
sidebar = yaml.safe_load((nbs / "sidebar.yml").read_text())
listed = []
def walk(x):
    if isinstance(x, dict):
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
    elif isinstance(x, str) and x.endswith(".ipynb"): listed.append(x)
walk(sidebar)
for f in listed:
    if not (nbs / f).exists(): problems.append(f"sidebar.yml lists {f}, which does not exist")
notebooks = sorted(p for p in nbs.glob("*.ipynb") if not p.name.startswith("_"))
for p in notebooks:
    if p.name not in listed: problems.append(f"{p.name} is missing from sidebar.yml")

link = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
exporter = HTMLExporter()
for p in notebooks:
    nb = nbformat.read(p, as_version=4)
    try:
        nbformat.validate(nb)
        html, _ = exporter.from_notebook_node(nb)
        assert "<html" in html
    except Exception as e:
        problems.append(f"{p.name} does not convert to HTML: {type(e).__name__}: {e}")
    if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.startswith("# "):
        problems.append(f"{p.name} does not start with a '# title' markdown cell")
    for c in nb.cells:
        if c.cell_type != "markdown": continue
        for target, _ in link.findall(c.source):
            if re.match(r"^[a-z]+:", target) or target.startswith("/"): continue
            if not (nbs / target).exists() and not (nbs.parent / target).exists():
                problems.append(f"{p.name}: link to {target} does not resolve")

if problems:
    print("docs check failed:"); print("\n".join(f"  - {q}" for q in problems)); sys.exit(1)
print(f"docs check: {len(notebooks)} notebooks convert to HTML, {len(listed)} sidebar entries, links resolve")
