"""Cross-species alignment on Baron human <-> mouse pancreas: every method side by side, over seeds, both directions.

Rows: `symbols`, `table` (the built-in BioMart human <-> mouse table, one-to-many rows summed) and `anchors`
(alpha, beta and ductal known in both, no genes) are the gene-seeded recipe of `scnotebook.homology`; `orthologs`
is the peer (1:1 orthologs + HVG + z-score + PCA + Harmony); `procrustes` the supervised bound.

`--rep scn` (default): the paper's setting. Both species are preprocessed to the intense representation (1200
PCs), one multitask Transformer (`small`, 20 epochs) is trained per seed, and its `X_scn` is aligned; the gene
signal of the seeded rows comes from the preprocessed `.X`. `--rep pca`: per-species PCA-50 of the counts stands
in for `X_scn` (no training; the setting of the earlier ortholog-free study). The ortholog peer always uses the raw
counts and the 1:1 ortholog table. Prints the comparison table per direction (mean ± sd over seeds), then, with
`--degrade`, accuracy against the number of shared genes kept (drawn at random) and its plot.

    python bench/align_benchmark.py                                   # 5 seeds, both directions, the fast rows
    python bench/align_benchmark.py --methods none,paper,muse,procrustes,symbols,table,anchors,orthologs
    python bench/align_benchmark.py --seeds 1 --degrade --plot bench/seeded_degradation.png
    python bench/align_benchmark.py --rep pca --methods none,muse,procrustes,orthologs   # the earlier study
"""
import argparse
import os
import time

os.environ.setdefault("SCNOTEBOOK_PROGRESS", "0")

import numpy as np
import pandas as pd
import torch

from scnotebook.core import local_data, peak_rss_gb, seed_everything
from scnotebook.peers import baron_pair, compare_methods, criterion_vs_accuracy, summarize

SHOW = ["criterion", "accuracy", "balanced_accuracy", "logreg_accuracy", "reverse_accuracy", "majority_accuracy",
        "max_reachable", "ari", "nmi", "label_asw", "batch_asw", "graph_connectivity", "knn_mixing", "open_set_auc", "seconds"]
FAST = "none,procrustes,symbols,table,anchors,orthologs"
ANCHORS = ["alpha", "beta", "ductal"]


def scn_pair(seed: int, epochs: int, preprocessed=None):
    "Baron mouse and human, preprocessed to X_intense (once) and embedded by a Transformer trained with `seed`."
    from scnotebook.data import baron_pancreas
    from scnotebook.preprocess import preprocess
    from scnotebook.train import fit, embed
    if preprocessed is None:
        d = baron_pancreas(); raw = {n: a.copy() for n, a in d.items()}
        for a in d.values(): preprocess(a, n_components=1200, min_cells_per_gene=5, seed=0)
        preprocessed = (d, raw)
    d, raw = preprocessed
    model = fit(d, preset="small", epochs=epochs, seed=seed, device="cpu", sampling="balanced")
    embed(model, d)
    return d, raw, preprocessed


def degrade(mouse, human, use_rep, counts=(None, 1000, 100, 20, 5, 0), draws=3, k=15):
    "Accuracy of the symbols recipe when only n random shared symbols are kept (0: the unsupervised fallback)."
    from scnotebook.align import align
    from scnotebook.homology import symbol_pairs
    from scnotebook.metrics import label_transfer
    pairs = symbol_pairs(mouse.var_names, human.var_names); rows = []
    for n in counts:
        for d in range(1 if n is None else draws):
            rng = np.random.default_rng(d)
            sub = pairs if n is None else pairs.iloc[np.sort(rng.choice(len(pairs), n, replace=False))] if n else None
            t0 = time.perf_counter()
            kw = dict(genes=sub[["source", "target"]]) if sub is not None else dict(method="muse", restarts=3, epochs=5)
            # draws use seeds 0, 10, 20: MUSE's restarts (seed, seed + 1, ...) then never overlap between draws
            s, t, r = align(mouse, human, use_rep=use_rep, seed=10 * d, copy=True, show_progress=False, **kw)
            lt = label_transfer(s, t, use_rep="X_scn_aligned", label_map="baron", k=k, classifiers=("knn",))
            rows.append({"genes": "all" if n is None else n, "n_genes": len(pairs) if n is None else n, "draw": d,
                         "accuracy": lt["accuracy"], "balanced_accuracy": lt["balanced_accuracy"],
                         "method": r.params.get("fallback") or r.method, "seconds": time.perf_counter() - t0})
            print(f"  {rows[-1]}", flush=True)
    return pd.DataFrame(rows)


def plot_degradation(df, path, floor=None):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    g = df.groupby("n_genes")[["accuracy", "balanced_accuracy"]].agg(["mean", "std"]).sort_index()
    x = np.array(g.index, float); xs = np.where(x == 0, 1, x)
    fig, ax = plt.subplots(figsize=(6, 4))
    for c, lab in (("accuracy", "kNN accuracy"), ("balanced_accuracy", "balanced accuracy")):
        ax.errorbar(xs, g[(c, "mean")], yerr=g[(c, "std")].fillna(0), marker="o", capsize=3, label=lab)
    if floor is not None: ax.axhline(floor, ls="--", c="gray", lw=1, label="unsupervised (MUSE), mean")
    ax.set_xscale("log"); ax.set_xlabel("shared gene symbols kept (0 plotted at 1: no genes, MUSE)")
    ax.set_ylabel("mouse -> human label transfer"); ax.set_ylim(0, 1); ax.legend(loc="lower right"); ax.grid(alpha=.3)
    ax.set_title("Gene-seeded alignment as the gene signal shrinks (Baron)")
    fig.tight_layout(); fig.savefig(path, dpi=120); print(f"plot written to {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rep", choices=("scn", "pca"), default="scn")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--train-epochs", type=int, default=20, help="Transformer epochs per seed (--rep scn)")
    p.add_argument("--directions", default="mouse->human,human->mouse")
    p.add_argument("--restarts", type=int, default=3, help="restarts per seed for paper/muse/muse_gw")
    p.add_argument("--epochs", type=int, default=5, help="adversarial epochs (muse); the paper method uses --paper-epochs")
    p.add_argument("--paper-epochs", type=int, default=50)
    p.add_argument("--methods", default=FAST)
    p.add_argument("--k", type=int, default=15)
    p.add_argument("--degrade", action="store_true", help="accuracy against the number of shared genes kept (first seed)")
    p.add_argument("--plot", default="bench/seeded_degradation.png")
    p.add_argument("--criterion-restarts", type=int, default=0, help="restarts per seed in the MUSE criterion check (0: skip)")
    p.add_argument("--out", default=None, help="write the per-run rows to this CSV")
    a = p.parse_args(argv)
    if local_data("baron_pancreas") is None:
        try:
            from scnotebook.data import baron_zip
            baron_zip()
        except Exception as e:
            print(f"skipped: Baron pancreas data not available ({e})"); return
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1))); seed_everything(0)
    from scnotebook.data import baron_orthologs
    orth = baron_orthologs(); t0 = time.perf_counter()
    methods = [m for m in a.methods.split(",") if m]
    opts = {"muse": {"epoch_size": 10000}, "muse_gw": {"epoch_size": 10000}, "paper": {"epochs": a.paper_epochs},
            "anchors": {"anchors": ANCHORS}}
    dirs = [tuple(d.split("->")) for d in a.directions.split(",")]
    rows, pre, deg = [], None, None
    for s in range(a.seeds):
        t1 = time.perf_counter()
        if a.rep == "scn":
            d, raw, pre = scn_pair(s, a.train_epochs, pre); use_rep = "X_scn"
        else:
            if pre is None: mouse, human, _ = baron_pair(n_comps=50); pre = {"mouse": mouse, "human": human}
            d, raw, use_rep = pre, pre, "X_pca_species"
        print(f"seed {s}: {use_rep} ready in {time.perf_counter() - t1:.0f}s", flush=True)
        for src, tgt in dirs:
            df = compare_methods(d[src], d[tgt], use_rep=use_rep, label_map="baron", methods=methods, seeds=[s], k=a.k, gene_table="biomart",
                                 epochs=a.epochs, restarts=a.restarts, orthologs=orth, method_options=opts,
                                 raw_source=raw[src], raw_target=raw[tgt])
            df.insert(0, "direction", f"{src} -> {tgt}"); rows.append(df)
            print(df[["direction", "method", "accuracy", "balanced_accuracy", "seconds"]].round(3).to_string(index=False), flush=True)
        if a.degrade and s == 0:
            print("\n## accuracy against the number of shared symbols kept (mouse -> human)", flush=True)
            deg = degrade(d["mouse"], d["human"], use_rep, k=a.k)
    df = pd.concat(rows, ignore_index=True)
    for dname, g in df.groupby("direction", sort=False):
        print(f"\n## {dname}, {a.seeds} seeds (mean ± sd), {use_rep}, kNN k={a.k}\n")
        print(summarize(g.drop(columns="direction"), SHOW, formatted=True).to_markdown())
    if a.out: df.to_csv(a.out, index=False); print(f"rows written to {a.out}")
    if deg is not None:
        print("\n## shared symbols kept -> mouse -> human accuracy (mean ± sd over draws)\n")
        print(deg.groupby("genes", sort=False)[["accuracy", "balanced_accuracy", "seconds"]].agg(["mean", "std"]).round(3).to_markdown())
        muse = deg.method == "muse"   # every unsupervised run: no genes, and too few to seed
        floor = deg.loc[muse, "accuracy"].mean() if muse.any() else None
        if floor is not None: print(f"\nMUSE (the fallback), {int(muse.sum())} runs: accuracy {floor:.3f} mean, "
                                    f"{deg.loc[muse, 'accuracy'].min():.3f}-{deg.loc[muse, 'accuracy'].max():.3f}")
        plot_degradation(deg, a.plot, floor)
    if a.criterion_restarts > 0:
        cands, summ = criterion_vs_accuracy(d["mouse"], d["human"], use_rep=use_rep, label_map="baron", k=a.k,
                                            seeds=range(min(a.seeds, 3)), restarts=a.criterion_restarts, epochs=a.epochs,
                                            epoch_size=10000)
        print("\n" + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summ.items()))
    print(f"\ntotal {time.perf_counter() - t0:.0f}s, peak RSS {peak_rss_gb():.2f} GiB")


if __name__ == "__main__":
    main()
