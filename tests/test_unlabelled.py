"""A dataset without labels is a normal input: the config accepts it (`label_key` absent or null), every stage
runs, the label-based measures skip it with the reason in the stage's metrics, and the report lists them."""
import json

import pytest

from scnotebook.config import ConfigError, validate_config
from scnotebook.pipeline import STAGES
from test_pipeline import run_cli


def test_label_key_is_optional_in_the_schema():
    ds = {"q": {"source": "q.h5ad", "species": "human", "label_key": None},
          "r": {"source": "baron_mouse", "species": "mouse"},
          "s": {"source": "s.h5ad", "species": "mouse", "label_key": "annotation"}}
    cfg = validate_config({"datasets": ds})
    assert cfg["datasets"]["q"]["label_key"] is None            # null: no labels
    assert "label_key" not in cfg["datasets"]["r"]              # absent stays absent: cell_type when the data has it
    assert cfg["datasets"]["s"]["label_key"] == "annotation"
    assert validate_config(cfg)["datasets"] == cfg["datasets"]  # a run's config.yaml reads back the same
    with pytest.raises(ConfigError, match="'datasets.q.label_key' must be str or null"):
        validate_config({"datasets": {"q": {"source": "q.h5ad", "species": "human", "label_key": 1}}})


def _config(tmp_path, human: str, mouse: str, umap: bool) -> str:
    return ("name: unlabelled\ndevice: cpu\n"
            f"datasets:\n  human: {human}\n  mouse: {mouse}\n"
            "preprocess: {n_components: 16, min_cells_per_gene: 1}\n"
            "embedder: {preset: tiny, epochs: 2}\n"
            "align: {source: mouse, target: human, restarts: 1, epochs: 1}\n"
            f"evaluation: {{taxonomy: {tmp_path / 'tax.csv'}, taxonomy_dataset: mouse, affinity_max_cells: 30, bootstrap: 3, knn_k: 5}}\n"
            "baselines: {methods: [pca], epochs: 1}\n"
            f"figures: {{formats: [png], umap: {'true' if umap else 'false'}}}\n")


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    "The built-in synthetic human written as an h5ad without any label column, and the synthetic taxonomy as a CSV."
    from scnotebook.data import read_dataset, taxonomy
    d = tmp_path_factory.mktemp("unlabelled")
    h = read_dataset("synthetic_human", max_cells=120, seed=0)
    h.obs = h.obs[["species"]]   # no cell_type, no taxonomy levels: nothing to read labels from
    h.write_h5ad(d / "human.h5ad")
    taxonomy(read_dataset("synthetic_mouse", max_cells=10)).to_csv(d / "tax.csv")
    return d


def _run(d, name, human, mouse, umap):
    (d / f"{name}.yaml").write_text(_config(d, human, mouse, umap))
    out = d / name
    r = run_cli("reproduce", "--config", str(d / f"{name}.yaml"), "--out", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for st in STAGES: assert (out / ".done" / st).exists(), st
    return out, json.loads((out / "metrics.json").read_text())


def test_pipeline_with_an_unlabelled_query(synthetic_files):
    d = synthetic_files
    out, m = _run(d, "one", f"{{source: {d / 'human.h5ad'}, species: human}}",
                  "{source: synthetic_mouse, species: mouse, max_cells: 120}", umap=True)
    assert m["datasets"]["human"]["labelled"] is False and m["datasets"]["mouse"]["labelled"] is True
    # Table 1 needs labels on the taxonomy dataset only (mouse)
    assert (out / "table1.csv").exists() and m["table1"]["dataset"] == "mouse"
    assert (out / "07_taxonomy" / "taxonomy.csv").exists() and (out / "06_affinity" / "affinity_mouse.csv").exists()
    assert not (out / "06_affinity" / "affinity_human.csv").exists()
    skipped = {(e["stage"], e["measure"]): e for e in m["skipped"]}
    assert set(skipped) == {("05_align", "label_transfer"), ("05_align", "annotation"), ("06_affinity", "affinity"),
                            ("06_affinity", "cross_species_map"), ("06_affinity", "open_set"), ("09_metrics", "method_comparison"),
                            ("10_figures", "figure3_cell_type"), ("10_figures", "figure5")}, sorted(skipped)
    # the labelled mouse has no labelled reference to be annotated from; every other skip is for lack of human labels
    assert skipped[("05_align", "annotation")]["dataset"] == "mouse" and "'human' has no labels" in skipped[("05_align", "annotation")]["why"]
    assert all(e["dataset"] == "human" and "'human' has no labels" in e["why"] for e in m["skipped"] if e["measure"] != "annotation")
    # the unlabelled query is annotated from the labelled one, and mapped: mouse types x human clusters
    assert (out / "annotation" / "human.csv").exists() and not (out / "annotation" / "mouse.csv").exists()
    assert m["annotation"]["human"]["scores"] is None and m["annotation"]["human"]["clusters"]
    cm = m["cross_species"]["cluster_map"]
    assert cm["reference"] == "mouse" and cm["n_clusters"] == len(cm["clusters"]) >= 2 and (out / "06_affinity" / "cluster_map.png").exists()
    assert m["label_transfer"] is None and m["stages"]["05_align"]["label_transfer"] is None
    assert m["stages"]["05_align"]["skipped"][0]["measure"] == "label_transfer"   # each stage keeps its own list too
    assert (out / "10_figures" / "figure3.png").exists() and (out / "10_figures" / "figure5_mouse.png").exists()
    report = (out / "report.md").read_text()
    assert "## Skipped measures" in report and "| 09_metrics | method_comparison | human |" in report
    assert "### Annotation" in report and "clusters; the nearest type agrees with the majority label" in report
    assert "Skipped measures" in (out / "report.html").read_text()


def test_pipeline_with_no_labels_at_all(synthetic_files):
    "Both datasets unlabelled (mouse: label_key null on a built-in source): every stage runs, every label-based measure skips."
    d = synthetic_files
    out, m = _run(d, "none", f"{{source: {d / 'human.h5ad'}, species: human}}",
                  "{source: synthetic_mouse, species: mouse, max_cells: 100, label_key: null}", umap=False)
    assert not m["datasets"]["mouse"]["labelled"] and not (out / "table1.csv").exists()
    measures = {(e["stage"], e["measure"]) for e in m["skipped"]}
    for want in [("05_align", "label_transfer"), ("06_affinity", "affinity"), ("06_affinity", "affinity_taxonomy"),
                 ("06_affinity", "cross_species_map"), ("07_taxonomy", "taxonomy"), ("08_baselines", "table1"),
                 ("09_metrics", "method_comparison"), ("10_figures", "figure4"), ("10_figures", "figure5")]:
        assert want in measures, (want, sorted(measures))
    assert "## Skipped measures" in (out / "report.md").read_text()
