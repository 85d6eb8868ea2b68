"""Annotation on every labelled real human/mouse pair available, the query's labels hidden, over seeds.

Pairs (`scnotebook.transfer_peers.panel_pairs`): Baron 2016 pancreas mouse -> human and human -> mouse (raw
counts), and three small CPM loom pairs, mouse reference -> human query: pancreas (Tabula Muris -> Enge 2017),
liver (Tabula Muris -> Aizarani 2019), brain (Tabula Muris -> Darmanis 2015). Methods: `scnotebook`
(`scnotebook.transfer.annotate`, which may say "unassigned"), and the peers of
`scnotebook.transfer_peers`: `centroid`, `celltypist`, `scanvi`, `harmony`. Every method sees the query without
any obs column and uses identical symbols (`genes="symbols"`); the truth is scored afterwards by
`score_annotation` with each pair's label maps. A method that cannot be imported or run is skipped with the
error printed.

Prints one Markdown table (pair x method: mean ± sd over seeds), writes it to bench/results/panel.md and the
raw rows (one JSON per pair x method x seed) to bench/results/panel.jsonl, both rewritten whole each run.

    python bench/panel.py                              # everything (about 10 minutes on 2 idle cores)
    python bench/panel.py --methods centroid harmony --pairs liver brain --seeds 0
    python bench/panel.py --data /path/to/data         # default: $SCNOTEBOOK_DATA or ../shared/data
"""
import argparse, json, os, sys, time, traceback
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

ROOT = Path(__file__).resolve().parent.parent
from scnotebook.core import atomic_open
from scnotebook.transfer_peers import (PANEL_PAIRS, UNASSIGNED, celltypist_transfer, centroid_correlation, harmony_transfer,
                                       panel_missing, panel_pairs, scanvi_transfer, score_annotation)

METHODS = ("scnotebook", "centroid", "celltypist", "scanvi", "harmony")
PEERS = {"centroid": centroid_correlation, "celltypist": celltypist_transfer, "scanvi": scanvi_transfer,
         "harmony": harmony_transfer}
METRICS = ("accuracy", "balanced_accuracy", "unassigned_recall", "unassigned_shared", "seconds")


def annotate_scnotebook(reference, query, *, label_key, seed):
    "scnotebook.transfer.annotate: labels from query.obs['scn_label'] (may be 'unassigned'), its confidence as score."
    from scnotebook.transfer import annotate
    annotate(reference, query, label_key=label_key, genes="symbols", seed=seed)
    return pd.DataFrame({"label": query.obs["scn_label"].astype(str).to_numpy(),
                         "score": query.obs["scn_label_confidence"].to_numpy(float)}, index=query.obs_names)


def hidden(query):
    "The query as every method sees it: its expression and gene names, no obs column (the labels stay aside)."
    return AnnData(X=query.X, obs=pd.DataFrame(index=query.obs_names.copy()), var=pd.DataFrame(index=query.var_names.copy()))


def run_one(method, pair, seed):
    "One (pair, method, seed) row: predictions on the hidden query, scored against its labels."
    name, ref, qry, rk, qk, rm, qm = pair
    q = hidden(qry)
    t0 = time.perf_counter()
    if method == "scnotebook": out = annotate_scnotebook(ref, q, label_key=rk, seed=seed)
    else: out = PEERS[method](ref, q, label_key=rk, genes="symbols", seed=seed)
    sec = time.perf_counter() - t0
    if not out.index.equals(qry.obs_names): raise RuntimeError(f"{method} answered for other cells than the query's")
    s = score_annotation(out["label"], qry.obs[qk], reference_labels=ref.obs[rk], ref_map=rm, query_map=qm,
                         abstains=method == "scnotebook")
    return {"pair": name, "method": method, "seed": int(seed), **s, "seconds": sec,
            "n_reference": int(ref.n_obs), "n_query": int(qry.n_obs),
            "said_unassigned": int((out["label"] == UNASSIGNED).sum()), "mean_score": float(np.nanmean(out["score"]))}


def importable(method):
    "None when the method can be imported, else the reason (printed, and the method skipped)."
    mod = {"scnotebook": "scnotebook.transfer", "celltypist": "celltypist", "scanvi": "scvi"}.get(method)
    if mod is None: return None
    try: __import__(mod); return None
    except Exception as e: return f"{type(e).__name__}: {e}"


def fmt(mean, sd):
    return "–" if np.isnan(mean) else f"{mean:.3f} ± {0.0 if np.isnan(sd) else sd:.3f}"


def table(rows, methods, pairs):
    "Markdown: one line per pair x method (mean ± sd over seeds), then the mean over pairs per method."
    df = pd.DataFrame(rows)
    g = df.groupby(["pair", "method"], sort=False)[list(METRICS)]
    mean, sd, n = g.mean(), g.std(ddof=1), g.size()
    head = "| pair | method | seeds | accuracy (shared types) | balanced accuracy | unassigned recall (query-only) | unassigned share (shared) | seconds |"
    lines = [head, "|" + "---|" * 8]
    for p in pairs:
        for m in methods:
            if (p, m) not in mean.index: continue
            lines.append(f"| {p} | {m} | {n[(p, m)]} | " + " | ".join(fmt(mean.loc[(p, m), c], sd.loc[(p, m), c]) for c in METRICS) + " |")
    per_pair = mean.reset_index()
    for m in methods:
        sub = per_pair[per_pair.method == m]
        if sub.empty: continue
        vals = [sub[c].mean() for c in METRICS]
        lines.append(f"| **mean over {len(sub)} pairs** | {m} | | " + " | ".join("–" if np.isnan(v) else f"{v:.3f}" for v in vals) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("SCNOTEBOOK_DATA") or str(ROOT.parent / "shared" / "data")
    ap.add_argument("--data", default=default, help="data folder (default: $SCNOTEBOOK_DATA or ../shared/data)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--pairs", nargs="+", default=list(PANEL_PAIRS), choices=PANEL_PAIRS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder of panel.jsonl and panel.md")
    a = ap.parse_args()
    for p, why in panel_missing(a.data, pairs=a.pairs).items(): print(f"pair {p} skipped: {why}")
    methods = []
    for m in a.methods:
        why = importable(m)
        if why: print(f"method {m} skipped: cannot import it ({why})")
        else: methods.append(m)
    rows, pairs = [], []
    for pair in panel_pairs(a.data, pairs=a.pairs):
        pairs.append(pair.name)
        print(f"{pair.name}: reference {pair.reference.n_obs} x {pair.reference.n_vars}, query {pair.query.n_obs} x {pair.query.n_vars}", flush=True)
        for m in methods:
            for s in a.seeds:
                try: r = run_one(m, pair, s)
                except Exception as e:
                    print(f"  {m} on {pair.name} (seed {s}) skipped: {type(e).__name__}: {e}", flush=True)
                    traceback.print_exc(limit=3, file=sys.stdout); break
                rows.append(r)
                print(f"  {m} seed {s}: accuracy {r['accuracy']:.3f}, balanced {r['balanced_accuracy']:.3f}, {r['seconds']:.1f} s", flush=True)
    if not rows: raise SystemExit("nothing was measured (no pair readable or no method runnable)")
    md = table(rows, methods, pairs)
    print("\n" + md)
    out = Path(a.out)
    with atomic_open(out / "panel.jsonl", "w", encoding="utf-8") as f:
        for r in rows: f.write(json.dumps(r) + "\n")
    with atomic_open(out / "panel.md", "w", encoding="utf-8") as f: f.write(md + "\n")
    print(f"\nwrote {out / 'panel.jsonl'} ({len(rows)} rows) and {out / 'panel.md'}")


if __name__ == "__main__":
    main()
