"""DVA's CLIP-directed identity edit: loading a local CLIP, the directional loss against the official
formula written out, and the optimisation on tiny random networks."""
from __future__ import annotations

import json
import math

import pytest
import torch

from faceanim.errors import InputError
from faceanim.methods.dva.config import tiny
from faceanim.methods.dva.model import DVAModel
from faceanim.methods.dva.text_edit import (
    PROMPT_TEMPLATES, ClipGuide, TextEdit, clip_loss_term, directional_loss, l2_norm, load_clip,
    text_edit_identity)

transformers = pytest.importorskip("transformers")


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins of bytes a byte-level BPE vocabulary starts from."""
    direct = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in direct]
    return [chr(b) for b in direct] + [chr(256 + i) for i in range(len(extra))]


def _write_tiny_clip(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    merges = [("f", "a"), ("fa", "c"), ("fac", "e</w>"), ("t", "h"), ("th", "e</w>"), ("o", "f</w>")]
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tokenizer = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    text = dict(vocab_size=len(tokens), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=77, **ids)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2)
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    _write_tiny_clip(folder)
    return folder


@pytest.fixture(scope="module")
def guide(clip_folder) -> ClipGuide:
    return load_clip(clip_folder)


@pytest.fixture(scope="module")
def dva() -> DVAModel:
    torch.manual_seed(0)
    model = DVAModel(tiny()).eval()
    # the UNet's last convolution is zero-initialised: give it weights so the code matters
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1 and not p.any():
                p.normal_(0, 0.02)
    return model


def test_load_clip_from_a_local_folder(guide):
    assert guide.image_size == 32
    assert guide.dtype == torch.float32 and guide.device.type == "cpu"
    assert not any(p.requires_grad for p in guide.model.parameters())
    feats = guide.text_features(["a photo of the face.", "the face"])
    assert feats.shape == (2, 16)
    assert torch.allclose(feats.norm(dim=1), torch.ones(2), atol=1e-5)
    direction = guide.text_direction("face", "face with beard")
    assert direction.shape == (1, 16) and math.isclose(direction.norm().item(), 1.0, rel_tol=1e-5)


def test_load_clip_errors_are_one_line(tmp_path):
    with pytest.raises(InputError) as missing:
        load_clip(tmp_path / "nowhere")
    assert "nowhere" in str(missing.value) and "\n" not in str(missing.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="config.json"):
        load_clip(empty)
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="model_type 'bert'") as wrong:
        load_clip(other)
    assert "\n" not in str(wrong.value)


def test_load_clip_without_tokenizer(tmp_path, clip_folder):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        if (clip_folder / name).exists():
            (folder / name).write_bytes((clip_folder / name).read_bytes())
    with pytest.raises(InputError, match="tokenizer"):
        load_clip(folder)


def test_preprocess_is_differentiable_and_normalised(guide):
    images = torch.zeros(2, 3, 64, 64, requires_grad=True)
    pixels = guide.preprocess(images)
    assert pixels.shape == (2, 3, 32, 32)
    expected = (0.5 - torch.tensor(guide.mean)) / torch.tensor(guide.std)
    assert torch.allclose(pixels[0, :, 5, 7], expected, atol=1e-5)
    guide.image_features(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_text_direction_matches_the_template_average(guide):
    source = guide.text_features([t.format("face") for t in PROMPT_TEMPLATES])
    target = guide.text_features([t.format("smiling face") for t in PROMPT_TEMPLATES])
    by_hand = (target - source).mean(0, keepdim=True)
    by_hand = by_hand / by_hand.norm()
    assert len(PROMPT_TEMPLATES) == 79
    assert torch.allclose(guide.text_direction("face", "smiling face"), by_hand, atol=1e-6)


def test_directional_loss_by_hand():
    src = l2_norm(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    trg = l2_norm(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    text = l2_norm(torch.tensor([[0.0, 1.0, 0.0]]))
    expected = []
    for s, t in zip(src, trg):
        d = (t - s) / ((t - s).norm() + 1e-7)
        expected.append(1 - (d @ text[0]) / (d.norm() * text[0].norm()))
    expected = torch.stack(expected).mean()
    loss = directional_loss(src, trg, text)
    assert torch.allclose(loss, expected, atol=1e-6)
    # the first pair's direction is (-0.293, 0.707, 0) / its norm: cos = 0.707 / 0.765
    first = 1 - (1 / math.sqrt(2)) / math.hypot(1 - 1 / math.sqrt(2), 1 / math.sqrt(2))
    assert math.isclose(directional_loss(src[:1], trg[:1], text).item(), first, rel_tol=1e-5)
    assert math.isclose(clip_loss_term(loss).item(), -math.log((2 - loss.item()) / 2), rel_tol=1e-6)
    # identical images: the official fallback compares the target features themselves with the text
    same = directional_loss(trg, trg, text)
    assert torch.allclose(same, (1 - trg @ text[0]).mean(), atol=1e-6)


def test_defaults_are_the_official_ones():
    edit = TextEdit("face", "face with beard")
    assert (edit.iterations, edit.lr, edit.scale, edit.clip_loss_w, edit.id_loss_w, edit.l1_loss_w,
            edit.n_train_step, edit.lambda_direction) == (2000, 0.002, 1.0, 3.0, 5.0, 5.0, 5, 1.0)
    with pytest.raises(InputError):
        TextEdit("a", "b", iterations=-1)


def test_zero_iterations_returns_the_normalised_identity(dva, guide):
    identity = torch.randn(1, 512, generator=torch.Generator().manual_seed(3)) * 0.1
    out = text_edit_identity(dva, guide, torch.zeros(1, 3, 256, 256), identity,
                             TextEdit("face", "face with beard", iterations=0))
    assert torch.allclose(out, identity / identity.norm(), atol=1e-7)


def test_optimisation_changes_only_the_identity(dva, guide, monkeypatch):
    import faceanim.methods.dva.text_edit as module

    g = torch.Generator().manual_seed(1)
    frames = torch.rand(2, 3, 256, 256, generator=g) * 2 - 1
    with torch.no_grad():
        per_frame = dva.encoder.id_forward(frames)
    average = per_frame.mean(0, keepdim=True)
    before = {k: v.clone() for k, v in dva.state_dict().items()}
    flags = [p.requires_grad for p in dva.parameters()]

    seen = {}
    real_adam = torch.optim.Adam

    def recording_adam(params, **kw):
        params = list(params)
        seen["params"], seen["kw"] = params, kw
        return real_adam(params, **kw)

    monkeypatch.setattr(module.torch.optim, "Adam", recording_adam)
    edit = TextEdit("face", "face with beard", iterations=2, lr=0.05, scale=0.5, n_train_step=2)
    out = text_edit_identity(dva, guide, frames, average, edit, progress=False)

    assert out.shape == (1, 512) and torch.isfinite(out).all()
    assert math.isclose(out.norm().item(), 1.0, rel_tol=1e-5)
    assert not torch.allclose(out, l2_norm(average), atol=1e-5)
    (param,) = seen["params"]
    assert seen["kw"] == {"lr": 0.05, "weight_decay": 0}
    delta = param.detach() - per_frame[:1]      # the optimised code starts at frame 0's identity
    assert delta.abs().max() > 0
    assert torch.allclose(out, l2_norm(average + 0.5 * delta), atol=1e-6)
    # the model's weights, gradients and flags are untouched
    after = dva.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in dva.parameters())
    assert [p.requires_grad for p in dva.parameters()] == flags
    assert all(p.grad is None for p in guide.model.parameters())


def test_ddim_step_follows_the_sampler(dva):
    from faceanim.methods.dva.sampling import ddim_reconstruct, ddim_schedule
    from faceanim.methods.dva.text_edit import ddim_step

    g = torch.Generator().manual_seed(2)
    x_T = torch.randn(1, 3, 64, 64, generator=g)
    cond = torch.randn(1, 512, generator=g)
    schedule = ddim_schedule(3, dva.config)
    with torch.no_grad():
        states = [x_T]
        for index in (2, 1, 0):
            states.append(ddim_step(dva, schedule, states[-1], [index], cond))
        assert torch.allclose(states[-1], ddim_reconstruct(dva, x_T, cond, 3, config=dva.config), atol=1e-5)
        # one batch of states at different indices steps each one as alone
        batched = ddim_step(dva, schedule, torch.cat(states[:3]), [2, 1, 0], cond.expand(3, -1))
    assert torch.allclose(batched, torch.cat(states[1:]), atol=1e-4)
