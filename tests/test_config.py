"""The config schema: names that become paths, numeric ranges, allowed values, label-map and taxonomy files, and a
property-based test that random configs get either a full config or a `ConfigError` naming the key."""
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from scnotebook import config as C
from scnotebook.config import ConfigError, load_config, validate_config

DATASETS = {"human": {"source": "baron_human", "species": "human"}, "mouse": {"source": "baron_mouse", "species": "mouse"}}


def base(**sections):
    return {"datasets": {k: dict(v) for k, v in DATASETS.items()}, **sections}


def test_copies_equal_the_domain_modules():
    "config keeps copies of the allowed values (reading a config imports no torch); they must equal the originals."
    from scnotebook import affinity, align, baselines, data, embedder, metrics, train
    from scnotebook.stages import RUNNERS
    assert C.STAGE_NAMES == tuple(RUNNERS)
    assert C.ALIGN_METHODS == tuple(align.METHODS)
    assert set(C.PRESETS) == set(embedder.PRESETS)
    assert C.SAMPLING == tuple(train.SAMPLING)
    assert C.NORMALIZE == tuple(affinity.NORMALIZE)
    assert set(C.BASELINES) == set(baselines.BASELINES)
    assert set(C.LABEL_MAPS) == set(metrics.LABEL_MAPS)
    assert set(C.DATASET_FORMATS) == {"builtin", *data.FORMAT_NAMES}
    for r, ok in C.READER_OPTIONS.items():   # the options config refuses early are the readers' own
        assert ok == (data.reader_options("builtin", r) if r in data.BUILTIN else data.reader_options(r)), r
    for name in C.TAXONOMIES:   # every built-in name is one that data.taxonomy knows (zeisel needs local data)
        if not name.startswith("zeisel"): assert len(data.taxonomy(name)) > 0, name
    import numpy as np, anndata as ad
    a = ad.AnnData(np.random.default_rng(0).normal(size=(20, 3)).astype("float32"))
    a.obs["cell_type"] = ["x", "y"] * 10; a.obsm["X_pca"] = np.asarray(a.X)
    for m in C.AFFINITY_METHODS: affinity.wasserstein_affinity(a, use_rep="X_pca", method=m)
    with pytest.raises(ValueError): affinity.wasserstein_affinity(a, use_rep="X_pca", method="other")


@pytest.mark.parametrize("cfg, msg", [
    ({"datasets": {"/some/abs/path": DATASETS["human"], "mouse": DATASETS["mouse"]}}, "'datasets./some/abs/path'"),
    ({"datasets": {"../../escaped": DATASETS["human"], "mouse": DATASETS["mouse"]}}, "'datasets.../../escaped'"),
    ({"datasets": {1: DATASETS["human"]}}, "a name may hold only"),
    (base(align={"target": "/some/abs/path"}), "'align.target' is '/some/abs/path'"),
    (base(evaluation={"taxonomy_dataset": "../x"}), "'evaluation.taxonomy_dataset'"),
    (base(stages=["01_data", "../../x"]), "'stages[1]' is '../../x': expected one of 01_data"),
    (base(stages=["03_nope"]), "'stages[0]'"),
    (base(figures={"formats": ["png", "/../../../x"]}), "'figures.formats[1]' is '/../../../x': expected one of png, pdf"),
    (base(figures={"formats": ["gif"]}), "'figures.formats[0]'"),
])
def test_names_that_become_paths_are_refused(cfg, msg):
    with pytest.raises(ConfigError, match=None) as e: validate_config(cfg)
    assert msg in str(e.value), str(e.value)


@pytest.mark.parametrize("section, key, value, msg", [
    ("preprocess", "n_components", -5, "must be >= 1, got -5"),
    ("preprocess", "n_components", 0, "must be >= 1"),
    ("preprocess", "scale", 0, "must be > 0"),
    ("preprocess", "scale", -1.5, "must be > 0"),
    ("preprocess", "scale", "loud", "expected one of global, gene, none or a number > 0"),
    ("preprocess", "rescale", 0, "must be > 0"),
    ("preprocess", "scale_max", 0, "must be > 0"),
    ("preprocess", "min_cells_per_gene", -1, "must be >= 0"),
    ("preprocess", "min_library_size", -1, "must be >= 0"),
    ("preprocess", "n_iter", -1, "must be >= 0"),
    ("preprocess", "solver", "qr", "expected one of auto, exact, randomized"),
    ("embedder", "epochs", 0, "must be >= 1"),
    ("embedder", "batch_size", 0, "must be >= 1"),
    ("embedder", "lr", 0, "must be > 0"),
    ("embedder", "lr", float("nan"), "finite"),
    ("embedder", "lr", float("inf"), "finite"),
    ("embedder", "checkpoint_every", 0, "must be >= 1"),
    ("embedder", "preset", "huge", "expected one of tiny, small, paper"),
    ("embedder", "sampling", "random", "expected one of balanced, proportional"),
    ("align", "restarts", 0, "must be >= 1"),
    ("align", "epochs", 0, "must be >= 1"),
    ("align", "epoch_size", 0, "must be >= 1"),
    ("align", "method", "gan", "expected one of muse, paper"),
    ("align", "anchors", [1, 2], "cell-type names"),
    ("evaluation", "affinity_projections", 0, "must be >= 1"),
    ("evaluation", "affinity_max_cells", 1, "must be >= 2"),
    ("evaluation", "bootstrap", -1, "must be >= 0"),
    ("evaluation", "knn_k", 0, "must be >= 1"),
    ("evaluation", "affinity_method", "fast", "expected one of exact, sliced"),
    ("evaluation", "affinity_normalize", "zscore", "expected one of mass, center, standardize"),
    ("evaluation", "taxonomy", "nonsense", "expected a built-in taxonomy (mouse_brain_atlas"),
    ("evaluation", "taxonomy", "/nowhere/tax.csv", "does not exist"),
    ("evaluation", "label_map", "nonsense", "expected a mapping, a built-in map (baron)"),
    ("evaluation", "label_map", {"a": 1}, "strings"),
    ("baselines", "methods", ["pca", "umap"], "'baselines.methods[1]' is 'umap': expected one of pca, saucie"),
    ("baselines", "epochs", 0, "must be >= 1"),
    ("evaluation", "max_cells", 0, "must be >= 1"),
    ("baselines", "max_cells", 2, "must be >= 3"),
    ("figures", "umap_max_cells", 1, "must be >= 2"),
])
def test_every_value_is_checked_up_front(section, key, value, msg):
    with pytest.raises(ConfigError) as e: validate_config(base(**{section: {key: value}}))
    assert f"'{section}.{key}" in str(e.value) and msg in str(e.value), str(e.value)


@pytest.mark.parametrize("cfg, msg", [
    ({"seed": -1}, "'seed' must be >= 0"), ({"device": "gpu"}, "'device' is 'gpu': expected one of auto, cpu, cuda"),
    ({"datasets": {"a": {"source": "x", "species": "h", "max_cells": 0}}}, "'datasets.a.max_cells' must be >= 1"),
    ({"datasets": {"a": {"source": "x", "species": "h", "format": "csv"}}}, "'datasets.a.format' is 'csv'"),
])
def test_top_level_and_dataset_values(cfg, msg):
    cfg = {**base(), **cfg}
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")): validate_config(cfg)


def test_valid_values_pass():
    cfg = validate_config(base(device="cuda:1", preprocess={"scale": "gene", "n_iter": 0}, embedder={"lr": 1, "batch_size": None},
                               evaluation={"taxonomy": "Mouse-Brain-Atlas", "bootstrap": 0, "label_map": "baron"},
                               figures={"formats": ["svg", "jpg"]}, stages=["01_data", "02_preprocess"]))
    assert cfg["embedder"]["lr"] == 1.0 and cfg["preprocess"]["scale"] == "gene" and cfg["stages"] == ["01_data", "02_preprocess"]


@pytest.mark.parametrize("name, text", [
    ("map.csv", "mouse_type,shared\nbeta,Beta\nalpha,Alpha\n"),
    ("map.tsv", "beta\tBeta\nalpha\tAlpha\n"),
    ("map.yaml", "beta: Beta\nalpha: Alpha\n"),
])
def test_label_map_file_is_read_at_load(tmp_path, name, text):
    (tmp_path / "sub").mkdir(); (tmp_path / "sub" / name).write_text(text)
    (tmp_path / "c.yaml").write_text(f"datasets:\n  a: {{source: baron_human, species: human}}\nevaluation: {{label_map: sub/{name}}}\n")
    lm = load_config(tmp_path / "c.yaml")["evaluation"]["label_map"]
    assert lm["beta"] == "Beta" and lm["alpha"] == "Alpha", lm
    assert validate_config(load_config(tmp_path / "c.yaml"))["evaluation"]["label_map"] == lm  # a run's config.yaml holds the map


def test_label_map_file_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("beta,Beta,extra\n")
    (tmp_path / "c.yaml").write_text("datasets:\n  a: {source: baron_human, species: human}\nevaluation: {label_map: bad.csv}\n")
    with pytest.raises(ConfigError, match="bad.csv must have two columns"): load_config(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text("datasets:\n  a: {source: baron_human, species: human}\nevaluation: {label_map: missing.tsv}\n")
    with pytest.raises(ConfigError, match="'evaluation.label_map' is .*missing.tsv.*existing CSV/TSV/YAML/YML file"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("suffix, sep", [(".tsv", "\t"), (".csv", ",")])
def test_relative_taxonomy_file_resolved_against_the_config(tmp_path, monkeypatch, suffix, sep):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / f"tax{suffix}").write_text(sep.join(["cell_type", "level1"]) + "\n" + sep.join(["beta", "endocrine"]) + "\n")
    (tmp_path / "cfg" / "c.yaml").write_text(f"datasets:\n  a: {{source: baron_human, species: human}}\nevaluation: {{taxonomy: tax{suffix}}}\n")
    monkeypatch.chdir(tmp_path)   # elsewhere: the path is the config's folder's, not the working folder's
    tax = load_config(tmp_path / "cfg" / "c.yaml")["evaluation"]["taxonomy"]
    assert Path(tax) == (tmp_path / "cfg" / f"tax{suffix}").resolve()
    from scnotebook.affinity import load_taxonomy
    assert list(load_taxonomy(tax).index) == ["beta"]
    (tmp_path / "cfg" / "c.yaml").write_text("datasets:\n  a: {source: baron_human, species: human}\nevaluation: {taxonomy: gone.tsv}\n")
    with pytest.raises(ConfigError, match="gone.tsv' does not exist"): load_config(tmp_path / "cfg" / "c.yaml")


def test_yaml_errors_are_config_errors_on_one_line(tmp_path):
    p = tmp_path / "c.yaml"; p.write_text("datasets: {a: [unclosed\n")
    with pytest.raises(ConfigError) as e: load_config(p)
    assert "is not valid YAML" in str(e.value) and "\n" not in str(e.value)
    p.write_text("datasets:\n  a: {source: baron_human, species: human}\n")
    with pytest.raises(ConfigError, match="override 'seed=\\[1' : the value is not valid YAML|override 'seed=\\[1': the value"):
        load_config(p, ["seed=[1"])
    p.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="must be a mapping"): load_config(p)
    with pytest.raises(ConfigError, match="is a folder"): load_config(tmp_path)


# ---- property-based: random configs never raise anything but ConfigError, and that names the key ----------------------

def _leaves(schema, prefix=""):
    for k, spec in schema.items():
        if spec == "datasets": yield "datasets"; continue
        if isinstance(spec, dict): yield prefix + k; yield from _leaves(spec, prefix + k + "."); continue
        yield prefix + k

KEYS = sorted(set(_leaves(C.SCHEMA)) | {f"datasets.human.{k}" for k in C.DATASET_SCHEMA} | {"datasets.human", "datasets.mouse"})
WORDS = ["png", "pdf", "../x", "/abs/p", "tiny", "paper", "sliced", "mass", "pca", "vae", "global", "gene", "cuda:1", "auto",
         "baron", "pancreas", "01_data", "human", "mouse", "seeded", "muse", "x.csv", "", " ", "ü", "a-b_c"]
scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=8) | st.sampled_from(WORDS))
values = st.recursive(scalars, lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=5), ch, max_size=3),
                      max_leaves=6)
mutation = st.tuples(st.sampled_from(KEYS) | st.builds(lambda s, k: f"{s}.{k}", st.sampled_from(["embedder", "align", ""]),
                                                       st.text(min_size=1, max_size=6)),
                     st.one_of(values, st.just("<delete>")))


def _set(cfg, key, value):
    parts = [p for p in key.split(".") if p] or ["zzz"]
    d = cfg
    for p in parts[:-1]:
        if not isinstance(d.get(p), dict): d[p] = {}
        d = d[p]
    if value == "<delete>": d.pop(parts[-1], None)
    else: d[parts[-1]] = value
    return ".".join(parts)


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_random_configs_give_a_config_or_a_config_error_naming_the_key(muts):
    cfg = base(align={"source": "mouse", "target": "human", "genes": "symbols"},
               evaluation={"taxonomy": "pancreas", "taxonomy_dataset": "mouse"})
    keys = [_set(cfg, k, v) for k, v in muts]
    try:
        out = validate_config(cfg)
    except ConfigError as e:
        msg = str(e)
        named = {k for k in keys} | {k.split(".")[0] for k in keys}
        if any(k.startswith("datasets") for k in keys): named |= {"align.source", "align.target", "evaluation.taxonomy_dataset"}
        if any(k.startswith("align") for k in keys): named |= {"align.source", "align.target", "align.method"}
        if "" in named or any(k.count(".") == 0 for k in keys): named |= {"<root>"}
        esc = lambda n: n.replace("\r", "\\r").replace("\n", "\\n")   # ConfigError keeps to one line
        assert any(n and esc(n) in msg for n in named), (keys, msg)
        assert "\n" not in msg
        return
    # a full config: every section and key present, validating it again changes nothing
    assert set(out) == set(C.SCHEMA) and validate_config(out) == out
    for sec, spec in C.SCHEMA.items():
        if isinstance(spec, dict): assert set(out[sec]) == set(spec)
    yaml.safe_load(yaml.safe_dump(out))   # and it can be written as the run's config.yaml


def test_cell_caps_default_and_null():
    # the atlas-scale caps: 50,000 by default (above every bundled dataset), null turns a cap off
    cfg = validate_config(base())
    assert (cfg["evaluation"]["max_cells"], cfg["baselines"]["max_cells"], cfg["figures"]["umap_max_cells"]) == (50_000,) * 3
    cfg = validate_config(base(evaluation={"max_cells": None}, baselines={"max_cells": None}, figures={"umap_max_cells": None}))
    assert cfg["evaluation"]["max_cells"] is None and cfg["baselines"]["max_cells"] is None and cfg["figures"]["umap_max_cells"] is None
