"""Check the documentation without Quarto (which `nbdev_docs` needs), with the pages' outputs.

The notebooks are stored without outputs; the docs show results because the site is built from executed
copies, which this script writes and checks:

1. static checks: the docs configuration (_quarto.yml, nbdev.yml, sidebar.yml) agrees with the notebooks,
   every notebook is valid, starts with a '# title' cell, and its relative links resolve;
2. every notebook runs the way `nbdev_test` runs it (execnb's CaptureShell, working directory nbs/,
   `IN_TEST=1`, cells with `#| eval: false` or a flag of settings.ini's `tst_flags` skipped, 2 worker
   processes), with the `show_doc` cells that nbdev adds after exported definitions; an error fails the
   check, so this is also the notebook test. The copy says `skip_showdoc: true`, so that nbdev keeps
   those outputs instead of running imports and `show_doc` again in a shell of its own;
3. the executed copy goes through nbdev's own docs processing (`FilterDefaults`, what `nbdev_proc_nbs`
   does: `#| hide` and `#| export` cells dropped, `show_doc` inputs hidden) and becomes an HTML page,
   with Quarto's `include` / `echo` / `output` cell options honoured;
4. a page that shows example code cells but none of their outputs (no printed text, no value, no table,
   no image) fails the check; each page's count of example cells with outputs is reported.

Written under _docs_check/ (git-ignored): html/ (one page per notebook, to open) and nbs/ (the executed
notebooks with the docs configuration). To build the site with Quarto from them:
    nbdev_proc_nbs --path _docs_check/nbs && cd _proc && quarto render      # the site in _proc/_docs

    python scripts/check_docs.py                     # everything (a few minutes)
    python scripts/check_docs.py 05_align.ipynb      # the static checks, and these notebooks only
    python scripts/check_docs.py --static            # the static checks only (seconds)
"""
import argparse, os, re, shutil, sys, time
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
OUT = ROOT / "_docs_check"
_QDIR = re.compile(r"^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")


def static_problems(notebooks):
    "The docs configuration, titles, validity and links of `notebooks` (paths)."
    import nbformat, yaml
    problems = []
    quarto = yaml.safe_load((NBS / "_quarto.yml").read_text())
    for f in quarto.get("metadata-files", []):
        if not (NBS / f).exists(): problems.append(f"_quarto.yml names metadata file {f}, which does not exist")
    execute = quarto.get("execute") if isinstance(quarto.get("execute"), dict) else {}
    if str(execute.get("enabled", False)).lower() == "true":
        problems.append("_quarto.yml sets execute: enabled: true, but nbdev drops hidden and exported cells "
                        "before Quarto runs, so Quarto cannot execute the pages: build from executed copies")
    sidebar = yaml.safe_load((NBS / "sidebar.yml").read_text())
    listed = []
    def walk(x):
        if isinstance(x, dict):
            for v in x.values(): walk(v)
        elif isinstance(x, list):
            for v in x: walk(v)
        elif isinstance(x, str) and x.endswith(".ipynb"): listed.append(x)
    walk(sidebar)
    for f in listed:
        if not (NBS / f).exists(): problems.append(f"sidebar.yml lists {f}, which does not exist")
    for p in sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_")):
        if p.name not in listed: problems.append(f"{p.name} is missing from sidebar.yml")
    link = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
    for p in notebooks:
        try:
            nb = nbformat.read(p, as_version=4)
            nbformat.validate(nb)
        except Exception as e:
            problems.append(f"{p.name} is not a valid notebook: {type(e).__name__}: {e}"); continue
        if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.startswith("# "):
            problems.append(f"{p.name} does not start with a '# title' markdown cell")
        for c in nb.cells:
            if c.cell_type != "markdown": continue
            for target, _ in link.findall(c.source):
                if re.match(r"^[a-z]+:", target) or target.startswith("/"): continue
                if not (NBS / target).exists() and not (NBS.parent / target).exists():
                    problems.append(f"{p.name}: link to {target} does not resolve")
    return problems, len(listed)


def _qopts(source):
    "Quarto cell options (`#| key: value` lines at the top) and the code without them."
    opts, lines = {}, source.splitlines()
    i = 0
    while i < len(lines) and (m := _QDIR.match(lines[i])):
        opts[m.group(1)] = m.group(2).lower(); i += 1
    return opts, "\n".join(lines[i:])


def _text(x): return "".join(x) if isinstance(x, list) else (x or "")


def _shows_something(outputs):
    "Does one of `outputs` put a result on the page: printed text, a value, a table or an image (not a warning)?"
    for o in outputs:
        t = o.get("output_type")
        if t == "stream" and o.get("name") == "stdout" and _text(o.get("text")).strip(): return True
        if t in ("execute_result", "display_data") and any(_text(v).strip() for v in (o.get("data") or {}).values()):
            return True
    return False


def _plain(nb):
    "An nbformat notebook from an execnb one (nbdev's private keys dropped, lists joined)."
    import nbformat
    from nbformat import v4
    cells = []
    for c in nb.cells:
        if c.cell_type == "code":
            outs = []
            for o in c.get("outputs", []):
                o = {k: v for k, v in dict(o).items() if not k.endswith("_")}
                if "text" in o: o["text"] = _text(o["text"])
                if "data" in o: o["data"] = {k: (_text(v) if isinstance(v, (list, str)) else v) for k, v in dict(o["data"]).items()}
                if o["output_type"] in ("execute_result", "display_data"): o.setdefault("metadata", {})
                if o["output_type"] == "execute_result": o.setdefault("execution_count", None)
                outs.append(nbformat.from_dict(o))
            cells.append(v4.new_code_cell(_text(c.source), outputs=outs, metadata=dict(c.get("metadata", {}))))
        elif c.cell_type == "markdown": cells.append(v4.new_markdown_cell(_text(c.source)))
        else: cells.append(v4.new_raw_cell(_text(c.source)))
    return v4.new_notebook(cells=cells, metadata={"language_info": {"name": "python"}})


def run_page(path_str, out_str):
    """Execute one notebook as `nbdev_test` does, keep its outputs, process it as `nbdev_proc_nbs` does and
    write the executed notebook and its HTML page under `out_str`. Runs in its own process."""
    fn, out = Path(path_str).resolve(), Path(out_str)
    if "matplotlib.pyplot" in sys.modules: sys.modules["matplotlib.pyplot"].close("all")  # none from the last page
    os.chdir(fn.parent)
    os.environ["IN_TEST"] = "1"
    res = dict(name=fn.name, error=None, secs=0.0, examples=0, with_output=0, not_run=0, images=0, twice=0)
    from fastcore.xtras import working_directory
    from fastcore.basics import str2bool
    from execnb.nbio import read_nb, write_nb, mk_cell
    from execnb.shell import CaptureShell
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.processors import FilterDefaults, add_show_docs
    cfg = get_config()
    sys.path.insert(0, str(cfg.config_path))
    skip_flags = set(cfg.get("tst_flags", "").split())

    # 1. the page's source: the notebook with the `show_doc` cells nbdev adds after exported definitions
    # (nbdev's add_show_docs), run below with everything else, and `skip_showdoc` so that nbdev does not run
    # them again in a shell of its own (exec_show_docs runs only cells with an import, so a cell that mixes
    # imports with other code fails there); the executed copy is what the docs are built from
    t0 = time.time()
    raw = read_nb(fn)
    NBProcessor(nb=raw, procs=[add_show_docs], rm_directives=False).process()
    for c in raw.cells: c.pop("has_sd", None)
    raw.cells.insert(0, mk_cell("---\nskip_showdoc: true\n---", "raw"))
    (out / "nbs").mkdir(parents=True, exist_ok=True)
    dest = out / "nbs" / fn.name
    write_nb(raw, dest)
    raw = read_nb(dest)

    # 2. execute it with nbdev_test's rules (nbdev.test.test_nb)
    proc = NBProcessor(dest, procs=FrontmatterProc)
    where = {id(c): i for i, c in enumerate(proc.nb.cells)}
    proc.process()
    nb = proc.nb
    skipped = set()
    def _no_eval(cell):
        if cell.cell_type != "code": return True
        if "nbdev_export" + "(" in cell.source: return True
        direc = getattr(cell, "directives_", {}) or {}
        if direc.get("eval:", [""])[0].lower() == "false" or skip_flags & direc.keys():
            skipped.add(where.get(id(cell))); return True
        return False
    fm = getattr(nb, "frontmatter_", {})
    if not str2bool(fm.get("skip_exec", False)):
        k = CaptureShell(fn)
        k.run_cell("from nbdev.showdoc import show_doc")
        try:
            with working_directory(fn.parent): k.run_all(nb, exc_stop=True, preproc=_no_eval)
        except Exception:
            res["error"] = "execution failed:\n" + k.prettytb(fname=fn.name)
    for c in nb.cells:
        i = where.get(id(c))
        if i is not None and c.cell_type == "code":
            raw.cells[i].outputs = c.get("outputs", [])
            raw.cells[i].execution_count = c.get("execution_count")
    res["secs"] = time.time() - t0
    write_nb(raw, dest)
    skipped_ids = {raw.cells[i].get("id") for i in skipped if i is not None}

    # 3. nbdev's docs processing (what nbdev_proc_nbs writes to _proc/)
    class _NoShowDocs(FilterDefaults):
        def base_procs(self): return [p for p in super().base_procs() if p.__name__ != "exec_show_docs"]
    try:
        dn = read_nb(dest)
        dn.path_ = str(fn)
        with working_directory(fn.parent): FilterDefaults()(dn)
    except Exception as e:
        cause = e.__cause__ or e.__context__
        why = f"\n  because: {type(cause).__name__}: {cause}" if cause else ""
        res["error"] = (res["error"] or "") + f"nbdev's docs processing (nbdev_proc_nbs) fails: {e}{why}"
        try:  # still write the page, without running anything more, so that it can be looked at
            dn = read_nb(dest)
            dn.path_ = str(fn)
            with working_directory(fn.parent): _NoShowDocs()(dn)
        except Exception: return res

    # 4. Quarto's cell options, the counts, and the HTML page
    title = fm.get("title", fn.stem)
    cells = []
    for c in dn.cells:
        if c.cell_type == "raw" and _text(c.source).startswith("---"):
            desc = fm.get("description")
            c = dict(c); c.update(cell_type="markdown", source=f"# {title}" + (f"\n\n> {desc}" if desc else ""))
            cells.append(_Cell(c)); continue
        if c.cell_type != "code": cells.append(c); continue
        opts, code = _qopts(_text(c.source))
        if opts.get("include") == "false": continue
        outs = [] if opts.get("output") == "false" else list(c.get("outputs", []))
        shown_code = opts.get("echo") != "false"
        is_doc = code.lstrip().startswith("show_doc(")
        if shown_code and not is_doc and "exports" not in (getattr(c, "directives_", {}) or {}):
            res["examples"] += 1
            if _shows_something(outs) and not any(o.get("output_type") == "error" for o in outs): res["with_output"] += 1
            elif c.get("id") in skipped_ids: res["not_run"] += 1
        imgs = [_text(v) for o in outs for k, v in (o.get("data") or {}).items() if k.startswith("image/")]
        res["images"] += len(imgs)
        if len(set(imgs)) < len(imgs): res["twice"] += 1
        c = _Cell(dict(c)); c["source"] = code; c["outputs"] = outs
        c["metadata"] = {"tags": [] if shown_code else ["remove_input"]}
        cells.append(c)
    dn.cells = cells
    try:
        from nbconvert import HTMLExporter
        from traitlets.config import Config
        conf = Config(); conf.TagRemovePreprocessor.enabled = True
        conf.TagRemovePreprocessor.remove_input_tags = {"remove_input"}
        html, _ = HTMLExporter(config=conf).from_notebook_node(_plain(dn), resources={"metadata": {"name": title}})
        (out / "html").mkdir(parents=True, exist_ok=True)
        (out / "html" / (fn.stem + ".html")).write_text(html, encoding="utf-8")
    except Exception as e:
        res["error"] = (res["error"] or "") + f"does not convert to HTML: {type(e).__name__}: {e}"
    return res


def _run_safe(args):
    main = sys.modules["__main__"]  # IPython's shells replace it: the worker's next task is found in it
    try: return run_page(*args)
    except Exception as e:
        return dict(name=Path(args[0]).name, error=f"the check itself crashed: {type(e).__name__}: {e}", secs=0.0,
                    examples=0, with_output=0, not_run=0, images=0, twice=0)
    finally: sys.modules["__main__"] = main


class _Cell(dict):
    "A plain dict cell with attribute access, for cells rebuilt in `run_page`."
    __getattr__ = dict.get


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="notebook names in nbs/ (default: all)")
    ap.add_argument("--static", action="store_true", help="only the static checks, execute nothing")
    ap.add_argument("--workers", type=int, default=2, help="notebooks executed at once (default 2)")
    a = ap.parse_args(argv)
    t0 = time.time()
    every = sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))
    if a.notebooks:
        names = [Path(n).name for n in a.notebooks]
        missing = [n for n in names if not (NBS / n).exists()]
        if missing: sys.exit(f"check_docs: no such notebook in nbs/: {', '.join(missing)}")
        notebooks = [NBS / n for n in names]
    else: notebooks = every
    problems, n_listed = static_problems(notebooks)
    if a.static:
        if problems: print("docs check failed:"); print("\n".join(f"  - {q}" for q in problems)); sys.exit(1)
        return print(f"docs check (static): {len(notebooks)} notebooks valid, {n_listed} sidebar entries, links resolve")

    # the environment of scripts/test.sh: real data beside the checkout when there, no progress bars, no GUI
    if not os.environ.get("SCNOTEBOOK_DATA") and (ROOT.parent / "shared" / "data").is_dir():
        os.environ["SCNOTEBOOK_DATA"] = str((ROOT.parent / "shared" / "data").resolve())
    os.environ.setdefault("SCNOTEBOOK_PROGRESS", "0")
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not a.notebooks and OUT.exists(): shutil.rmtree(OUT)
    (OUT / "nbs").mkdir(parents=True, exist_ok=True)
    # what the docs build needs beside the notebooks: `nbdev_proc_nbs --path _docs_check/nbs` works on this copy
    for f in NBS.iterdir():
        if f.is_file() and f.suffix != ".ipynb" and not f.name.startswith("."): shutil.copy2(f, OUT / "nbs" / f.name)

    print(f"docs check: executing {len(notebooks)} notebooks ({a.workers} at a time), "
          f"SCNOTEBOOK_DATA={'set' if os.environ.get('SCNOTEBOOK_DATA') else 'unset'}", flush=True)
    results = []
    # worker processes are reused from notebook to notebook, as nbdev_test and nbdev_proc_nbs reuse theirs
    with get_context("spawn").Pool(max(1, a.workers)) as pool:
        for r in pool.imap(_run_safe, [(str(p), str(OUT)) for p in notebooks]):
            results.append(r)
            note = f", {r['not_run']} not run (eval: false / {' '.join(_flags())})" if r["not_run"] else ""
            imgs = f", {r['images']} images" if r["images"] else ""
            if r["twice"]: imgs += f" ({r['twice']} cells show the same figure twice: close it before returning it)"
            print(f"  {r['name']:<24} {r['with_output']:>3}/{r['examples']:<3} example cells show output{imgs}{note}"
                  f"  [{r['secs']:.0f} s]{'  FAILED' if r['error'] else ''}", flush=True)
    for r in results:
        if r["error"]: problems.append(f"{r['name']}: {r['error'].rstrip()}")
        elif r["examples"] and not r["with_output"]:
            problems.append(f"{r['name']}: its page shows {r['examples']} example code cells and none of their outputs "
                            "(no text, no table, no image): end an example with a displayed value")
    print(f"docs check: pages in {OUT.relative_to(ROOT)}/html, executed notebooks in {OUT.relative_to(ROOT)}/nbs "
          f"({time.time() - t0:.0f} s)")
    if problems:
        print("docs check failed:"); print("\n".join(f"  - {q}" for q in problems)); sys.exit(1)
    print(f"docs check: {len(notebooks)} notebooks executed without error, every page with examples shows outputs, "
          f"{n_listed} sidebar entries, links resolve")


def _flags():
    import configparser
    c = configparser.ConfigParser(); c.read(ROOT / "settings.ini")
    return c["DEFAULT"].get("tst_flags", "").split()


if __name__ == "__main__": main()
