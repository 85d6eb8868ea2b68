"""The `scnotebook` console script and the pipeline's configuration errors."""
import subprocess, sys
from pathlib import Path

import pytest

import scnotebook
from scnotebook.config import ConfigError, load_config
from scnotebook.pipeline import main

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, **kw):
    exe = Path(sys.executable).parent / "scnotebook"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "scnotebook.pipeline"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, **kw)


def test_version_and_help():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"scnotebook {scnotebook.__version__}"
    r = cli("--help")
    assert r.returncode == 0 and "reproduce" in r.stdout
    r = cli("reproduce", "--help")
    assert r.returncode == 0 and "--force" in r.stdout and "--set" in r.stdout and "--device" in r.stdout


@pytest.mark.parametrize("name", ["ci", "default", "brain", "paper"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert cfg["name"] == name and cfg["datasets"]


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("datasets:\n  a: {source: x.h5ad, species: human}\nembedder: {epochs: many}\n")
    with pytest.raises(ConfigError, match="'embedder.epochs' must be int"): load_config(p)
    p.write_text("datasets:\n  a: {source: x.h5ad, species: human}\nembedder: {epoch: 3}\n")
    with pytest.raises(ConfigError, match="unknown config key 'embedder.epoch'"): load_config(p)
    r = cli("reproduce", "--config", str(p), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "unknown config key 'embedder.epoch'" in r.stderr
    assert not (tmp_path / "run").exists(), "a rejected config must not leave a run folder"


def test_unknown_stage_and_missing_config(tmp_path):
    assert main(["reproduce", "--config", str(tmp_path / "missing.yaml")]) == 2
    r = cli("reproduce", "--config", "ci", "--out", str(tmp_path / "r"), "--stages", "99_nope")
    assert r.returncode == 2 and "unknown stage" in r.stderr


def test_wheel_carries_the_stage_notebooks_and_configs(tmp_path):
    "`pip install scnotebook` must be able to run `reproduce`: the wheel ships every stage notebook and config."
    import shutil, zipfile
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "dist", "*.egg-info",
                                                             "_stages", "__pycache__", ".pytest_cache"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = (tmp_path / "dist").glob("scnotebook-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    stages = {p.name for p in (ROOT / "nbs").glob("[0-9]*.ipynb")}
    configs = {p.name for p in (ROOT / "configs").glob("*.yaml")}
    assert stages and {f"scnotebook/_stages/nbs/{n}" for n in stages} <= names
    assert configs and {f"scnotebook/_stages/configs/{n}" for n in configs} <= names
    assert "scnotebook/pipeline.py" in names


SYN = "  human: {source: synthetic_human, species: human, max_cells: 60}\n  mouse: {source: synthetic_mouse, species: mouse, max_cells: 60}\n"


@pytest.mark.parametrize("body, msg", [
    # {ABS}: an absolute path beside the test's folder (filled in below), used as a dataset name
    ("datasets:\n  {ABS}: {source: synthetic_human, species: human}\n  mouse: {source: synthetic_mouse, species: mouse}\n"
     "align: {target: {ABS}, source: mouse}\n", "'datasets.{ABS}'"),
    ("datasets:\n  ../../escaped: {source: synthetic_human, species: human}\n  mouse: {source: synthetic_mouse, species: mouse}\n",
     "'datasets.../../escaped'"),
    (f"datasets:\n{SYN}figures: {{formats: ['/../../../x']}}\n", "'figures.formats[0]'"),
    (f"datasets:\n{SYN}stages: [01_data, ../x]\n", "'stages[1]'"),
    (f"datasets:\n{SYN}preprocess: {{n_components: -5}}\n", "'preprocess.n_components' must be >= 1"),
    (f"datasets:\n{SYN}evaluation: {{taxonomy: nonsense}}\n", "'evaluation.taxonomy' is 'nonsense'"),
])
def test_bad_names_and_values_refused_before_anything_is_written(tmp_path, body, msg):
    escape = tmp_path.parent / f"{tmp_path.name}_escape"        # absolute, outside the test's folder
    body, msg = body.replace("{ABS}", str(escape)), msg.replace("{ABS}", str(escape))
    (tmp_path / "cfgs").mkdir(); cfg = tmp_path / "cfgs" / "c.yaml"; cfg.write_text(body)
    out = tmp_path / "a" / "b" / "run"
    r = cli("reproduce", "--config", str(cfg), "--out", str(out))
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["cfgs", "cfgs/c.yaml"]
    assert not Path(f"{escape}.h5ad").exists() and not escape.exists()


def _one_line_exit_2(r, msg):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1 and msg in r.stderr, r.stderr


def test_user_errors_are_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"; cfg.write_text(f"device: cpu\ndatasets:\n{SYN}")
    afile = tmp_path / "afile"; afile.write_text("x")
    _one_line_exit_2(cli("reproduce", "--config", str(cfg), "--out", str(afile)), "is a file, not a folder")
    assert afile.read_text() == "x"
    _one_line_exit_2(cli("reproduce", "--config", str(tmp_path), "--out", str(tmp_path / "r")), "is a folder, not a YAML file")
    _one_line_exit_2(cli("reproduce", "--config", str(cfg), "--out", str(tmp_path / "r"), "--set", "seed=[1"), "not valid YAML")
    _one_line_exit_2(cli("reproduce", "--config", str(cfg), "--out", str(tmp_path / "r"), "--set", "embedder.epochs={a: [}"),
                     "not valid YAML")
    bad = tmp_path / "bad.yaml"; bad.write_text("datasets: {a: [unclosed\n")
    _one_line_exit_2(cli("reproduce", "--config", str(bad), "--out", str(tmp_path / "r")), "is not valid YAML")
    assert not (tmp_path / "r").exists()
    run = tmp_path / "run"; run.mkdir(); (run / ".scnotebook-run").write_text("{}")
    (run / "config.yaml").write_text("name: [broken\n")   # a damaged run folder
    _one_line_exit_2(cli("reproduce", "--config", str(cfg), "--out", str(run)), "config.yaml is not valid YAML")
    assert (run / "config.yaml").read_text() == "name: [broken\n"


def test_a_run_never_deletes_the_users_files(tmp_path):
    "--out at a folder of the user's: refused while it is not a run folder; adopted, the run removes only its own partial files."
    cfg = tmp_path / "c.yaml"; cfg.write_text(f"device: cpu\ndatasets:\n{SYN}")
    project = tmp_path / "project"; (project / "sub").mkdir(parents=True)
    mine = [project / ".thesis.tmp.docx", project / "sub" / ".cache.tmp", project / "notes.txt"]
    for f in mine: f.write_text("mine")
    _one_line_exit_2(cli("reproduce", "--config", str(cfg), "--out", str(project), "--stages", "01_data"),
                     "is not a scnotebook run folder")
    assert sorted(p.name for p in project.iterdir()) == [".thesis.tmp.docx", "notes.txt", "sub"]
    # adopted: the run writes into it; a partial file of its own (as a killed writer leaves it) goes, the user's stay
    r = cli("reproduce", "--config", str(cfg), "--out", str(project), "--stages", "01_data", "--adopt")
    assert r.returncode == 0, r.stderr[-2000:]
    (project / "01_data" / ".human.h5ad.k3j9x0ab.scnpartial.h5ad").write_text("half")
    (project / "01_data" / ".mine.tmp").write_text("mine")
    r = cli("reproduce", "--config", str(cfg), "--out", str(project), "--stages", "01_data")   # now a run folder
    assert r.returncode == 0 and "removed a partial file" in r.stdout, r.stdout + r.stderr
    assert not (project / "01_data" / ".human.h5ad.k3j9x0ab.scnpartial.h5ad").exists()
    assert all(f.read_text() == "mine" for f in mine) and (project / "01_data" / ".mine.tmp").exists()
    # an empty folder is a new run folder
    empty = tmp_path / "empty"; empty.mkdir()
    assert cli("reproduce", "--config", str(cfg), "--out", str(empty), "--stages", "01_data").returncode == 0
