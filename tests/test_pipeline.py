"""The whole pipeline through the command line: the `ci` config end to end, resuming after a kill,
and a user config on h5ad files with other label keys and species names."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from scnotebook.core import is_partial
from scnotebook.pipeline import METRICS_KEYS, STAGES

ROOT = Path(__file__).resolve().parent.parent


def cli_cmd(*args):
    exe = Path(sys.executable).parent / "scnotebook"
    return ([str(exe)] if exe.exists() else [sys.executable, "-m", "scnotebook.pipeline"]) + list(args)


def run_cli(*args, timeout=1500):
    return subprocess.run(cli_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    # the ci config uses the Baron pair: a local copy ($SCNOTEBOOK_DATA) when there is one, else it is downloaded
    out = tmp_path_factory.mktemp("ci") / "run"
    r = run_cli("reproduce", "--config", "ci", "--out", str(out))
    assert r.returncode == 0, f"ci run failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return out, r


def test_ci_end_to_end_artifacts(ci_run):
    out, r = ci_run
    for st in STAGES:
        assert f"{st}" in r.stdout and (out / "notebooks" / f"{st}.ipynb").exists(), st
        assert (out / ".done" / st).exists(), st
    assert "report:" in r.stdout
    for f in ("config.yaml", "metrics.json", "report.md", "report.html", "table1.csv", "table1.md"):
        assert (out / f).stat().st_size > 0, f
    for name in ("human", "mouse"):
        a = ad.read_h5ad(out / "08_baselines" / f"{name}.h5ad", backed="r")
        for key in ("X_intense", "X_scn", "X_scn_aligned", "X_pca"):
            assert key in a.obsm, (name, key)
        assert np.isfinite(np.asarray(a.obsm["X_scn"])).all()
        assert (out / "06_affinity" / f"affinity_{name}.csv").exists()
    pngs = sorted(p.name for p in (out / "10_figures").glob("*.png"))
    assert "figure5_mouse.png" in pngs and any(p.startswith("figure4_mouse") for p in pngs), pngs
    assert not [q for q in out.rglob("*") if is_partial(q)], "temporary files left behind"
    # a stage runs its stage, not the chapter's demos: title, parameters (+ injected) and the stage cell
    import nbformat
    for st in STAGES:
        nb = nbformat.read(out / "notebooks" / f"{st}.ipynb", as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert len(code) == 3 and code[-1].strip().endswith(")") and "scnotebook.stages import run_" in code[-1], (st, code)


def test_ci_metrics_schema(ci_run):
    out, _ = ci_run
    m = json.loads((out / "metrics.json").read_text())
    assert sorted(m) == sorted(METRICS_KEYS)
    assert m["schema_version"] == 2 and m["config"] == "ci"
    # the device each stage used, as that stage recorded it (one channel: the run's config)
    assert set(m["device"]) == {"04_train", "05_align", "08_baselines", "09_metrics"} and set(m["device"].values()) == {"cpu"}
    assert set(m["timings"]) == set(STAGES) and all(v > 0 for v in m["timings"].values())
    for key in METRICS_KEYS:
        assert m[key] is not None, f"metrics.json[{key!r}] is null after a full ci run"
    assert m["versions"]["torch"] and m["versions"]["numpy"]
    for name in ("human", "mouse"):
        assert m["datasets"][name]["n_cells"] > 0
    lt = m["label_transfer"]
    assert lt and all(0 <= v["accuracy"] <= 1 for v in lt.values())
    assert m["table1"] and m["affinity_taxonomy"]


def test_ci_annotation_of_every_aligned_dataset(ci_run):
    "Each aligned dataset is annotated from the other: a CSV per dataset, scored against its hidden labels, in the report."
    import pandas as pd
    out, _ = ci_run
    m = json.loads((out / "metrics.json").read_text())["annotation"]
    assert set(m) == {"human", "mouse"} and m["human"]["reference"] == "mouse"
    for name in ("human", "mouse"):
        csv = pd.read_csv(out / "annotation" / f"{name}.csv")
        assert list(csv.columns) == ["cell", "label", "confidence"] and len(csv) == m[name]["n_cells"]
        assert csv.confidence.between(0, 1).all() and sum(m[name]["composition"].values()) == len(csv)
        assert 0.7 <= m[name]["scores"]["accuracy"] <= 1 and m[name]["clusters"]
        assert (out / "10_figures" / f"annotation_{name}.png").exists()
    assert "acinar" in m["human"]["scores"]["query_only_types"]
    rep = (out / "report.md").read_text()
    assert "### Annotation" in rep and "annotated from mouse" in rep and "annotation_human.png" in rep


def test_rerun_skips_finished_stages(ci_run):
    out, _ = ci_run
    r = run_cli("reproduce", "--config", "ci", "--out", str(out), "--stages", "01_data", "02_preprocess")
    assert r.returncode == 0 and r.stdout.count("skipped") == 2, r.stdout


def test_kill_mid_stage_then_resume(tmp_path):
    out = tmp_path / "run"
    stages = ["01_data", "02_preprocess", "04_train"]
    p = subprocess.Popen(cli_cmd("reproduce", "--config", "ci", "--out", str(out), "--stages", *stages),
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t0 = time.time()
    while not (out / ".done" / "01_data").exists():  # kill once stage 2 has started
        assert p.poll() is None, p.stdout.read()
        assert time.time() - t0 < 600, "01_data did not finish in 10 minutes"
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not (out / ".done" / "02_preprocess").exists(), "the kill came too late to test a resume"
    r = run_cli("reproduce", "--config", "ci", "--out", str(out), "--stages", *stages)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "01_data        skipped" in r.stdout and "02_preprocess  done" in r.stdout, r.stdout
    assert all((out / ".done" / s).exists() for s in stages)
    assert not [q for q in out.rglob("*") if is_partial(q)]
    a = ad.read_h5ad(out / "04_train" / "mouse.h5ad")
    assert "X_scn" in a.obsm


def test_failed_stage_names_itself(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"name: bad\ndevice: cpu\ndatasets:\n  a: {{source: {tmp_path / 'missing.h5ad'}, species: human}}\n")
    r = run_cli("reproduce", "--config", str(cfg), "--out", str(tmp_path / "run"), "--stages", "01_data")
    assert r.returncode == 1
    assert "stage '01_data' failed" in r.stderr and "missing.h5ad" in r.stderr, r.stderr
    assert (tmp_path / "run" / "notebooks" / "01_data.ipynb").exists()
    assert not (tmp_path / "run" / ".done" / "01_data").exists()


def test_user_config_other_keys_and_species(tmp_path):
    """Two h5ad files with label keys and species names the package has never seen, a label map and a
    taxonomy CSV: the pipeline runs them from a config alone."""
    from conftest import shared_data
    from scnotebook.data import read_dataset
    pair = shared_data("brain_pair_small")
    zeisel = shared_data("zeisel2015_cortex") / "zeisel2015_cortex_200genes.h5ad"
    hs = read_dataset(pair / "darmanis2015_human_brain_154cells.loom")
    hs.obs = hs.obs.rename(columns={"CellType": "annotation"})[["annotation"]]
    hs.write_h5ad(tmp_path / "darmanis_human.h5ad")
    mm = ad.read_h5ad(zeisel)
    mm = mm[np.random.default_rng(0).permutation(mm.n_obs)[:400]].copy()
    mm.obs = mm.obs[["level1class"]].rename(columns={"level1class": "class_name"})
    mm.write_h5ad(tmp_path / "zeisel_mouse.h5ad")
    (tmp_path / "tax.csv").write_text(
        "cell_type,group,kind\ninterneurons,neuron,neural\npyramidal SS,neuron,neural\npyramidal CA1,neuron,neural\n"
        "oligodendrocytes,glia,non-neural\nastrocytes_ependymal,glia,non-neural\nmicroglia,immune,non-neural\n"
        "endothelial-mural,vascular,non-neural\n")
    (tmp_path / "user.yaml").write_text(
        "name: user\ndevice: cpu\n"
        "datasets:\n"
        "  cortex_hs: {source: darmanis_human.h5ad, label_key: annotation, species: homo_sapiens}\n"
        "  cortex_mm: {source: zeisel_mouse.h5ad, label_key: class_name, species: mus_musculus}\n"
        "preprocess: {n_components: 24, min_cells_per_gene: 2}\n"
        "embedder: {preset: tiny, epochs: 2}\n"
        "align: {source: cortex_mm, target: cortex_hs, restarts: 1, epochs: 1}\n"
        "evaluation:\n"
        "  label_map: {oligodendrocytes: Oligodendrocyte, astrocytes_ependymal: Astrocyte, interneurons: Neuron,\n"
        "              pyramidal SS: Neuron, pyramidal CA1: Neuron, microglia: microglia, endothelial-mural: Vascular}\n"
        "  taxonomy: tax.csv\n  taxonomy_dataset: cortex_mm\n  affinity_max_cells: 40\n  bootstrap: 3\n  knn_k: 5\n"
        "baselines: {methods: [pca], epochs: 1}\nfigures: {formats: [png], umap: false}\n")
    out = tmp_path / "run"
    r = run_cli("reproduce", "--config", str(tmp_path / "user.yaml"), "--out", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["datasets"]) == {"cortex_hs", "cortex_mm"}
    a = ad.read_h5ad(out / "05_align" / "cortex_mm.h5ad")
    assert set(a.obs["species"]) == {"mus_musculus"} and "X_scn_aligned" in a.obsm
    assert (out / "table1.csv").exists()


def _syn_config(tmp_path, max_cells=80):
    p = tmp_path / "syn.yaml"
    p.write_text("name: syn\ndevice: cpu\n"
                 f"datasets:\n  human: {{source: synthetic_human, species: human, max_cells: {max_cells}}}\n"
                 f"  mouse: {{source: synthetic_mouse, species: mouse, max_cells: {max_cells}}}\n"
                 "preprocess: {n_components: 500, cap_components: true, min_cells_per_gene: 1}\n")
    return p


def test_stage_warnings_reach_the_terminal(tmp_path):
    "A warning a stage logs (here: n_components capped to what 80 cells allow) is printed by reproduce, not only kept in the notebook."
    out = tmp_path / "run"
    r = run_cli("reproduce", "--config", str(_syn_config(tmp_path)), "--out", str(out), "--stages", "01_data", "02_preprocess")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    line = next(l for l in r.stderr.splitlines() if "02_preprocess" in l and "warning:" in l)
    assert "n_components=500 capped" in line, r.stderr
    m = json.loads((out / "02_preprocess" / "metrics.json").read_text())
    assert any("capped" in w for w in m["warnings"]) and "warnings" not in json.loads((out / "01_data" / "metrics.json").read_text())


def test_forced_stage_invalidates_later_stages_and_markers_know_their_config(tmp_path):
    "issue 13, item 2: a forced stage with a changed config never leaves later stages of the old config marked done."
    out, cfg = tmp_path / "run", _syn_config(tmp_path)
    both = ["--stages", "01_data", "02_preprocess"]
    r = run_cli("reproduce", "--config", str(cfg), "--out", str(out), *both)
    assert r.returncode == 0, r.stderr[-2000:]
    n = lambda st: ad.read_h5ad(out / st / "human.h5ad", backed="r").n_obs
    assert n("01_data") == n("02_preprocess") == 80
    # --force of 01 with fewer cells: 02 (which read 01's files) is forgotten, not left done with 80 cells
    new = ["--set", "datasets.human.max_cells=50"]
    r = run_cli("reproduce", "--config", str(cfg), "--out", str(out), "--force", "--stages", "01_data", *new)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "forgotten and run again: 02_preprocess" in r.stdout, r.stdout
    assert not (out / ".done" / "02_preprocess").exists() and not (out / "02_preprocess").exists()
    assert n("01_data") == 50
    # a forced later stage may not read an earlier stage of another config: refused before anything is written
    r = run_cli("reproduce", "--config", str(cfg), "--out", str(out), "--force", "--stages", "02_preprocess",
                "--set", "datasets.human.max_cells=40")
    assert r.returncode == 2 and "reads the files of 01_data" in r.stderr and "add 01_data to --stages" in r.stderr, r.stderr
    assert "max_cells: 50" in (out / "config.yaml").read_text()
    # the next plain run: 01 is current, 02 runs on its 50 cells
    r = run_cli("reproduce", "--config", str(cfg), "--out", str(out), *both, *new)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "01_data        skipped" in r.stdout and "02_preprocess  done" in r.stdout, r.stdout
    assert n("02_preprocess") == 50
    marker = json.loads((out / ".done" / "02_preprocess").read_text())
    assert set(marker["config_hashes"]) == {"seed", "preprocess"} and marker["inputs"] == {
        "01_data": json.loads((out / ".done" / "01_data").read_text())["id"]}
    # a marker that does not match (here: tampered, as an older run would leave) is stale: the stage runs again
    marker["config_hashes"]["preprocess"] = "0" * 16
    (out / ".done" / "02_preprocess").write_text(json.dumps(marker))
    r = run_cli("reproduce", "--config", str(cfg), "--out", str(out), *both, *new)
    assert r.returncode == 0 and "02_preprocess  stale (config section preprocess changed)" in r.stdout, r.stdout
    assert "02_preprocess  done" in r.stdout
