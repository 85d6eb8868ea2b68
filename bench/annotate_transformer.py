"""Where the Transformer helps annotation: `annotate` on the gene route alone against the same blended with the kNN
vote of the aligned Transformer space, on every labelled real pair (query labels hidden), over seeds.

For each pair and seed: both datasets are preprocessed to the intense representation (1200 PCs, or one fewer than
the smaller dataset's cells), one multitask Transformer (`small`) is trained on the pair, `X_scn` is aligned with
the gene-seeded recipe (`align(genes="symbols")`), then `annotate(use_rep=None)` (genes only) and
`annotate(use_rep="X_scn_aligned")` (blend) label the query. Prints accuracy / balanced accuracy on the shared
types and seconds.

    python bench/annotate_transformer.py                    # every pair found, seeds 0 1 2, 20 epochs
    python bench/annotate_transformer.py --pairs liver --seeds 0 --epochs 5
"""
import argparse, os, time, warnings

os.environ.setdefault("SCNOTEBOOK_PROGRESS", "0")
warnings.filterwarnings("ignore")

import numpy as np
import pandas as pd

from scnotebook.core import peak_rss_gb, seed_everything
from scnotebook.transfer import UNASSIGNED, annotate


def transformer_space(ref, qry, *, seed, epochs):
    "Both datasets preprocessed, embedded by one Transformer trained on the pair, and aligned (obsm X_scn_aligned)."
    from scnotebook.preprocess import preprocess
    from scnotebook.train import fit, embed
    from scnotebook.align import align
    pair = {"reference": ref.copy(), "query": qry.copy()}
    n = min(1200, min(a.n_obs for a in pair.values()) - 1)
    for a in pair.values(): preprocess(a, n_components=n, min_cells_per_gene=3)
    seed_everything(seed)
    model = fit(pair, preset="small", epochs=epochs, device="cpu", seed=seed)
    embed(model, pair)
    align(pair["reference"], pair["query"], genes="symbols", seed=seed)
    return pair["reference"], pair["query"]


def main():
    from scnotebook.transfer_peers import panel_pairs, score_annotation
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="folder of the real data (default: $SCNOTEBOOK_DATA or ../shared/data)")
    ap.add_argument("--pairs", nargs="*", default=None, help="pair names (default: all found)")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    a = ap.parse_args()
    rows = []
    for pr in panel_pairs(a.data):
        if a.pairs and pr.name not in a.pairs: continue
        for seed in a.seeds:
            t0 = time.perf_counter(); ref, qry = transformer_space(pr.reference, pr.query, seed=seed, epochs=a.epochs)
            t_tr = time.perf_counter() - t0
            truth = qry.obs[pr.query_label_key].astype(str).to_numpy()
            for mode, rep in (("genes", None), ("genes + Transformer", "X_scn_aligned")):
                q = qry.copy(); del q.obs[pr.query_label_key]; t1 = time.perf_counter()
                annotate(ref, q, label_key=pr.ref_label_key, use_rep=rep, seed=seed)
                sc = score_annotation(q.obs["scn_label"].astype(str).to_numpy(), truth, reference_labels=ref.obs[pr.ref_label_key],
                                      ref_map=pr.ref_map, query_map=pr.query_map)
                acc, bal = sc["accuracy"], sc["balanced_accuracy"]
                rows.append({"pair": pr.name, "seed": seed, "mode": mode, "accuracy": acc, "balanced": bal,
                             "seconds": time.perf_counter() - t1 + (t_tr if rep else 0)})
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows).groupby(["pair", "mode"])[["accuracy", "balanced", "seconds"]].agg(["mean", "std"]).round(3)
    print(df.to_string()); print(f"peak RSS {peak_rss_gb():.2f} GiB")


if __name__ == "__main__":
    main()
