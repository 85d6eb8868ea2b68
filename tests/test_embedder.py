"Tests of scnotebook.embedder: shapes, presets, the paper preset's size (meta device), bad input."
import pytest
import torch

from scnotebook.embedder import PRESETS, build, flops_per_cell, get_config, n_params


def test_paper_preset_is_300m_parameters_on_meta():
    model = build("paper", {"human": 1200, "mouse": 1200}, device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    n = n_params(model)
    assert abs(n / 300e6 - 1) < 0.05, n
    cfg = model.config
    assert (cfg.d_model, cfg.batch_size, cfg.lr) == (1024, 1024, 3e-4)
    assert flops_per_cell(model, 1200) > 6 * n_params(model) * 0.5  # sanity: >= ~6 FLOPs per parameter


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_forward_any_number_of_datasets(preset):
    torch.manual_seed(0)
    dims = {"a": 50, "b": 30, "c": 20}
    model = build(preset, dims)
    xs = {n: torch.randn(5 + i, d) for i, (n, d) in enumerate(dims.items())}
    sse = model(xs)
    assert set(sse) == set(dims) and all(torch.isfinite(v) for v in sse.values())
    sum(sse.values()).backward()
    # every parameter that the three datasets use gets a gradient
    assert all(p.grad is not None for p in model.parameters())
    emb = model.encode(xs)
    assert {n: tuple(e.shape) for n, e in emb.items()} == {n: (len(x), model.config.d_model) for n, x in xs.items()}


def test_masking_changes_loss_and_masked_inputs_are_ignored():
    torch.manual_seed(0)
    model = build("tiny", {"a": 20})
    x = torch.randn(4, 20)
    m = torch.zeros(4, 20); m[:, :5] = 1
    x2 = x.clone(); x2[:, :5] = 100.0  # masked entries can hold anything
    t1, t2 = model.tokens({"a": x}, {"a": m})["a"], model.tokens({"a": x2}, {"a": m})["a"]
    assert torch.allclose(t1, t2)
    assert not torch.allclose(model.tokens({"a": x})["a"], t1)


def test_learns_a_small_problem():
    "A few hundred steps on low-rank data bring the loss well under the mean predictor's."
    torch.manual_seed(0)
    z = torch.randn(256, 3)
    xs = {"a": z @ torch.randn(3, 16), "b": z @ torch.randn(3, 12)}
    model = build("tiny", {"a": 16, "b": 12})
    for n, x in xs.items(): model.set_normalization(n, x.mean(0), x.var(0).mean().sqrt())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        sse = model(xs); loss = sum(v / xs[n].numel() for n, v in sse.items())
        opt.zero_grad(); loss.backward(); opt.step()
    for n, v in model(xs).items(): assert float(v.detach()) / xs[n].numel() < 0.2, n


def test_bad_input_messages():
    with pytest.raises(ValueError, match="unknown embedder preset"): build("huge", {"a": 3})
    with pytest.raises(TypeError, match="unknown embedder option"): build("tiny", {"a": 3}, dmodel=3)
    with pytest.raises(ValueError, match="positive integer"): build("tiny", {"a": -1})
    with pytest.raises(ValueError, match="non-empty dict"): build("tiny", {})
    model = build("tiny", {"a": 3})
    with pytest.raises(KeyError, match="not known"): model({"b": torch.zeros(1, 3)})
    with pytest.raises(ValueError, match=r"expected a \(cells, 3\) batch"): model({"a": torch.zeros(1, 4)})
    assert set(PRESETS) == {"tiny", "small", "paper"}
    assert get_config("small", epochs=2).epochs == 2
