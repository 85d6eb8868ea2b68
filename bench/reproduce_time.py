"""Wall time of the main command (`scnotebook reproduce --config default`), and of each stage, for this checkout
and, back to back on the same machine, for an earlier commit: the ratio is the figure to quote.

    python bench/reproduce_time.py                     # this checkout only
    python bench/reproduce_time.py --before f7562b0    # an earlier commit first, then this checkout
    python bench/reproduce_time.py --before f7562b0 --after HEAD   # both from commits (worktrees)

The earlier commit is checked out into a temporary git worktree and run with the same Python environment
(`PYTHONPATH` points at it, so its own package and stage notebooks are used). Each run starts from an empty run
folder. Prints a table of stage seconds, the total, peak RSS of the stage kernels, and the ratio.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(checkout: Path, config: str, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), SCNOTEBOOK_PROGRESS="0", MPLBACKEND="Agg")
    if "SCNOTEBOOK_DATA" not in env and (checkout.parent / "shared" / "data").is_dir():
        env["SCNOTEBOOK_DATA"] = str(checkout.parent / "shared" / "data")
    code = ("import resource, sys; from scnotebook.pipeline import main; "
            f"rc = main(['reproduce', '--config', {config!r}, '--out', {str(out)!r}]); "
            "print('PEAK_RSS_KB', max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))); "
            "sys.exit(rc)")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"reproduce failed in {checkout} (rc {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    m = json.loads((out / "metrics.json").read_text())
    rss = float(r.stdout.rsplit("PEAK_RSS_KB", 1)[1].split()[0]) / 2**20   # the largest process: parent or a stage kernel
    return {"wall": wall, "timings": m.get("timings", {}), "peak_rss_gb": rss}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="default")
    p.add_argument("--before", default=None, help="an earlier commit to time first (git rev)")
    p.add_argument("--after", default=None, help="time this commit instead of the working tree (git rev)")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="scn-reproduce-"))
    runs = {}

    def timed(rev: str | None, label: str):
        if rev is None:
            head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
            print(f"timing this checkout ({head}) ...", flush=True)
            runs[f"{label} ({head}+)"] = run_once(ROOT, a.config, tmp / label); return
        wt = ROOT.parent / f".scn-{label}-{rev[:12]}"
        subprocess.run(["git", "worktree", "add", "-f", "--detach", str(wt), rev], cwd=ROOT, check=True, capture_output=True)
        try:
            print(f"timing {rev} ...", flush=True)
            runs[f"{label} ({rev[:7]})"] = run_once(wt, a.config, tmp / label)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, capture_output=True)
    try:
        if a.before: timed(a.before, "before")
        timed(a.after, "now")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stages = list(dict.fromkeys(s for r in runs.values() for s in r["timings"]))
    names = list(runs)
    print(f"\n`scnotebook reproduce --config {a.config}`, {os.cpu_count()} CPU cores\n")
    print("| stage | " + " | ".join(names) + (" | ratio |" if len(names) == 2 else " |"))
    print("|---|" + "---|" * (len(names) + (len(names) == 2)))
    for s in stages:
        v = [runs[n]["timings"].get(s) for n in names]
        cells = ["" if x is None else f"{x:.1f} s" for x in v]
        ratio = f" {v[1] / v[0]:.2f} |" if len(v) == 2 and v[0] and v[1] else (" |" if len(v) == 2 else "")
        print(f"| {s} | " + " | ".join(cells) + (" |" + ratio if len(v) == 2 else " |"))
    w = [runs[n]["wall"] for n in names]
    print(f"| **whole command** | " + " | ".join(f"**{x:.0f} s**" for x in w)
          + (f" | **{w[1] / w[0]:.2f}** |" if len(w) == 2 else " |"))
    print("| peak RSS | " + " | ".join(f"{runs[n]['peak_rss_gb']:.2f} GB" for n in names) + (" | |" if len(w) == 2 else " |"))


if __name__ == "__main__":
    main()
