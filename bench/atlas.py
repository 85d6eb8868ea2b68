"""Benchmark: every stage of the pipeline at the paper's scale (the atlas config) on this machine.

Runs `scnotebook reproduce --config atlas` one stage at a time (each stage in its own process, as the pipeline runs
it) and prints each stage's wall time and peak memory: the peak resident memory of the whole process tree (the
stage's kernel and any worker processes), sampled every 0.2 s. The atlas-shaped pair (`scnotebook.atlas`) is drawn
once into the cache folder; its drawing is timed in stage 01_data the first time.

    python bench/atlas.py                       # 160,796 mouse cells x 25,000 genes + 25,000 x 50,000 human
    python bench/atlas.py --scale 0.25          # a quarter of the mouse cells (same human side)
    python bench/atlas.py --scale 0.0625 --scale 0.25 --scale 1 --plot bench/atlas_scaling.png   # the scaling study

A finished stage is not run again (the run folder keeps it): rerun with --force to time it anew. Results are appended
as JSON lines to --json (default bench/results/atlas.jsonl).
"""
import argparse, json, os, subprocess, sys, threading, time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAGES = ["01_data", "02_preprocess", "04_train", "05_align", "06_affinity", "07_taxonomy", "08_baselines",
          "09_metrics", "10_figures"]


def tree_rss(p: psutil.Process) -> int:
    "Resident memory of a process and all its descendants, in bytes."
    total = 0
    for q in [p, *p.children(recursive=True)]:
        try: total += q.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied): pass
    return total


def run_stage(cmd: list[str], log_path: Path) -> tuple[float, float, int]:
    "Run one stage's command; returns (seconds, peak tree RSS in GiB, exit code)."
    peak = [0]
    with open(log_path, "a") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        ps = psutil.Process(proc.pid); done = threading.Event()
        def sample():
            while not done.is_set():
                try: peak[0] = max(peak[0], tree_rss(ps))
                except psutil.NoSuchProcess: pass
                done.wait(0.2)
        th = threading.Thread(target=sample, daemon=True); th.start()
        rc = proc.wait(); done.set(); th.join()
    return time.perf_counter() - t0, peak[0] / 2**30, rc


def bench_scale(scale: float, a) -> list[dict]:
    out = Path(a.out or ROOT / "runs" / f"atlas_scale{scale:g}")
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "bench.log"
    sets = [f"datasets.mouse.options.scale={scale}", f"datasets.human.options.human_cells={a.human_cells}",
            *(f"{k}" for k in a.set)]
    rows = []
    print(f"atlas benchmark: scale {scale:g} ({round(160_796 * scale):,} mouse cells), {a.human_cells:,} human cells; "
          f"{os.cpu_count()} CPUs; run folder {out}; log {log_path}", flush=True)
    print(f"| stage | seconds | peak RSS (GiB) |\n|---|---|---|", flush=True)
    for st in a.stages or STAGES:
        cmd = [sys.executable, "-c", "import sys; from scnotebook.pipeline import main; sys.exit(main())", "reproduce", "--config", a.config, "--out", str(out),
               "--stages", st, *sum((["--set", s] for s in sets), [])]
        if a.force: cmd.append("--force")
        if a.device: cmd += ["--device", a.device]
        secs, peak, rc = run_stage(cmd, log_path)
        skipped = "skipped (finished in an earlier run" in "\n".join(log_path.read_text(errors="replace").splitlines()[-4:])
        row = {"scale": scale, "mouse_cells": round(160_796 * scale), "human_cells": a.human_cells, "stage": st,
               "seconds": round(secs, 1), "peak_rss_gib": round(peak, 2), "rc": rc, "skipped": skipped,
               "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        rows.append(row)
        print(f"| {st} | {secs:.1f}{' (skipped: done earlier)' if skipped else ''} | {peak:.2f} |", flush=True)
        if a.json:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            with open(a.json, "a") as f: f.write(json.dumps(row) + "\n")
        if rc != 0:
            print(f"stage {st} failed (exit {rc}); the end of {log_path}:", flush=True)
            print("\n".join(log_path.read_text(errors="replace").splitlines()[-30:]), flush=True)
            break
    ran = [r for r in rows if not r["skipped"]]
    print(f"total {sum(r['seconds'] for r in ran):.0f} s over {len(ran)} stages run, peak RSS "
          f"{max((r['peak_rss_gib'] for r in ran), default=0):.2f} GiB", flush=True)
    return rows


def plot(jsonl: str, path: str):
    "Each stage's wall time against mouse cells (log-log), with n and n log n guides."
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    rows = [json.loads(l) for l in open(jsonl) if l.strip()]
    last = {}
    for r in rows:
        if r["rc"] == 0 and not r.get("skipped"): last[(r["stage"], r["mouse_cells"])] = r   # the latest run of each
    fig, ax = plt.subplots(figsize=(7, 5))
    for st in STAGES:
        pts = sorted((n, r["seconds"]) for (s, n), r in last.items() if s == st)
        if len(pts) >= 2:
            n, t = map(np.array, zip(*pts))
            ax.plot(n, t, "o-", label=f"{st} ({np.polyfit(np.log(n), np.log(t), 1)[0]:.2f})")
        elif pts: ax.plot(*zip(*pts), "o", label=st)
    ns = np.array(sorted({n for _, n in last}))
    if len(ns):
        ax.plot(ns, 10 * ns / ns[0], "k--", lw=0.8, label="slope 1 (n), from 10 s")
    ax.set(xscale="log", yscale="log", xlabel="mouse cells (human side: 25,000 cells)", ylabel="stage wall time (s)",
           title="Atlas config: stage time against cells (legend: log-log slope)")
    ax.legend(fontsize=7); fig.tight_layout(); fig.savefig(path, dpi=120)
    print(f"scaling plot: {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, action="append", help="fraction of the atlas's mouse cells (repeatable; default 1)")
    ap.add_argument("--human-cells", type=int, default=25_000)
    ap.add_argument("--config", default="atlas")
    ap.add_argument("--out", default=None, help="run folder (default runs/atlas_scale<F>; one scale only)")
    ap.add_argument("--stages", nargs="+", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    ap.add_argument("--device", default=None)
    ap.add_argument("--force", action="store_true", help="run finished stages again")
    ap.add_argument("--json", default=str(HERE / "results" / "atlas.jsonl"))
    ap.add_argument("--plot", default=None, help="write the scaling plot from --json to this file")
    a = ap.parse_args(argv)
    for s in a.scale or ([] if a.plot else [1.0]): bench_scale(s, a)
    if a.plot: plot(a.json, a.plot)


if __name__ == "__main__":
    main()
