"""Table 1 and the affinity-taxonomy agreement on real data, for every embedding side by side.

Zeisel 2015 (47 level-2 types -> 7 level-1 classes -> neuron / non-neuron; only 200 genes kept by the
source, so the intense representation has at most 199 components) from a local copy
(../shared/data/zeisel2015_cortex or $SCNOTEBOOK_DATA), and Baron mouse pancreas with the documented
pancreas taxonomy. Trains the `small` Transformer on each, adds the baselines (PCA, SAUCIE, autoencoder,
VAE), prints Table 1 (with the paper's figures beside), the Spearman correlation of the Wasserstein
affinity with the tree distance, seconds and peak RSS.

    python bench/table1_real.py                 # both datasets (about 10 minutes on 2 cores)
    python bench/table1_real.py --only zeisel --epochs 5 --bootstrap 10
"""
import argparse, time

import numpy as np
import torch

from scnotebook.core import local_data, peak_rss_gb, seed_everything
from scnotebook.data import baron_pancreas, read_dataset, taxonomy
from scnotebook.preprocess import preprocess
from scnotebook.train import fit, embed
from scnotebook.baselines import embed_baseline
from scnotebook.taxonomy import table1, table1_markdown
from scnotebook.affinity import wasserstein_affinity, affinity_agreement, drop_small_types


def dataset(name):
    if name == "zeisel":
        loc = local_data("zeisel2015_cortex")
        if loc is None: raise SystemExit("the Zeisel 2015 h5ad is not available locally (../shared/data/zeisel2015_cortex)")
        p = sorted(loc.glob("*.h5ad"))[0]
        a = read_dataset(p, label_key="level2class", species="mouse")
        tax = taxonomy("zeisel2015", path=p)
        return a[a.obs["cell_type"].astype(str).isin(tax.index)].copy(), tax, 150
    a = baron_pancreas()["mouse"]
    return a, taxonomy("pancreas"), 1200


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["zeisel", "baron"], default=None)
    ap.add_argument("--epochs", type=int, default=20, help="Transformer epochs (small preset)")
    ap.add_argument("--baseline-epochs", type=int, default=30)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    for name in ([a.only] if a.only else ["zeisel", "baron"]):
        t0 = time.perf_counter(); seed_everything(a.seed)
        ad_, tax, ncomp = dataset(name)
        ad_, dropped = drop_small_types(ad_, "cell_type")
        preprocess(ad_, n_components=ncomp, cap_components=True, seed=a.seed)
        model = fit({name: ad_}, preset="small", epochs=a.epochs, device="cpu", seed=a.seed)
        embed(model, {name: ad_})
        for m in ("pca", "saucie", "ae", "vae"):
            embed_baseline(ad_, m, epochs=a.baseline_epochs, seed=a.seed)
        df = table1(ad_, label_key="cell_type", taxonomy=tax, n_bootstrap=a.bootstrap, seed=a.seed)
        print(f"\n## {name}: {ad_.n_obs} cells, {ad_.obs['cell_type'].nunique()} types (dropped: {dropped})\n")
        print(table1_markdown(df, title=f"Table 1 on {name}"))
        print("\nWasserstein affinity vs tree distance (Spearman, permutation p):")
        for rep in [k for k in ("X_scn", "X_pca", "X_saucie", "X_ae", "X_vae") if k in ad_.obsm]:
            A = wasserstein_affinity(ad_, use_rep=rep, label_key="cell_type", seed=a.seed)
            r = affinity_agreement(A, tax.loc[A.index], seed=a.seed)
            print(f"  {rep:<9} spearman {r['spearman']:.3f}  p {r['p_value']:.3g}")
        print(f"\n{name}: {time.perf_counter() - t0:.0f} s, peak RSS {peak_rss_gb():.2f} GiB")


if __name__ == "__main__":
    main()
