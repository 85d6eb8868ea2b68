"""Write README.md from nbs/index.ipynb (the docs home page), so the two always say the same thing.
`nbdev_readme` does the same through Quarto; this needs nothing but the notebook.
Usage: python scripts/make_readme.py [--check]   (--check: exit 1 if README.md differs)"""
import sys
from pathlib import Path

import nbformat

root = Path(__file__).resolve().parent.parent

def render(nb_path=root / "nbs" / "index.ipynb") -> str:
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for c in nb.cells:
        src = c.source.strip()
        if not src or src.startswith("#|"): continue
        parts.append(src if c.cell_type == "markdown" else f"```python\n{src}\n```")
    return "\n\n".join(parts) + "\n"

if __name__ == "__main__":
    text = render()
    readme = root / "README.md"
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text(encoding="utf-8") != text:
            print("README.md differs from nbs/index.ipynb: run python scripts/make_readme.py"); sys.exit(1)
        print("README.md matches nbs/index.ipynb")
    else:
        readme.write_text(text, encoding="utf-8"); print(f"wrote {readme}")
