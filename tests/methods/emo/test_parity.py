"""Parity of EMO (Hallo's layout) with every `emo_hallo_*` fixture ($FACEANIM_PARITY_DIR/emo_hallo, made by
running Hallo's own code with random weights): the condition networks, ReferenceNet's bank, one guided
denoising call (also with other region weights and without guidance), the 3-step guided pipeline with its
decoded video, the chaining rule and the chained clip; and the released `net.pth` key table."""
from __future__ import annotations

import functools

import pytest
import torch

from faceanim.methods.emo.config import EMOConfig, hallo
from faceanim.methods.emo.model import EMOModel
from faceanim.methods.emo.sampling import (MASK_NAMES, ClipInputs, clip_conditions, decode_frames, denoise_clip,
                                           encode_images, make_scheduler)
from faceanim.methods.emo.unet import Conditions
from faceanim.methods.emo.weights import build_vae
from tests.parity import component, fixture, flat_full_keys, key_table, relative_error, stem_params

SYSTEM = "emo_hallo"
STEMS = stem_params(SYSTEM)
SCALE = 0.18215


@functools.lru_cache(maxsize=1)
def _loaded(stem: str):
    meta, weights, io = fixture(SYSTEM, stem)
    sizes = meta["sizes"]
    config = EMOConfig.from_hallo(meta["configs"], clip_length=sizes["clip_length"],
                                  motion_frames=sizes["n_motion_frames"], image_size=sizes["image"])
    model = EMOModel(config).eval()
    model.load_state_dict({k: v for k, v in weights.items() if not k.startswith("vae.")}, strict=True)
    vae = build_vae(meta["configs"]["vae"]).eval()
    vae.load_state_dict(component(weights, "vae."), strict=True)
    return meta, model, vae, io


def _close(ours: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-4) -> float:
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    assert torch.isfinite(ours).all()
    error = relative_error(ours.detach(), expected)
    assert error < tolerance, error
    return error


def _masks(io, repeat: int = 1):
    return {name: [io[f"ref_{name}_mask_{level}"].repeat(repeat, 1) for level in range(4)] for name in MASK_NAMES}


@pytest.mark.parametrize("stem", STEMS)
@torch.no_grad()
def test_condition_networks(stem):
    meta, model, vae, io = _loaded(stem)
    f = meta["sizes"]["clip_length"]
    _close(model.identity_context(io["ref_face_emb"], guidance=True), io["denoise_image_tokens"], 1e-6)
    _close(model.audioproj(io["ref_audio_windows"][:f][None]), io["denoise_audio_tokens"], 1e-6)
    _close(model.audioproj(io["ref_audio_windows"][f:2 * f][None]), io["chain_audio_tokens"], 1e-6)
    locator = model.face_locator(io["ref_face_region"][None])
    _close(locator[:, :, None].expand(-1, -1, f, -1, -1), io["denoise_face_locator"], 1e-6)
    pixels = torch.cat([io["ref_image"][None], io["ref_motion_frames"]])
    _close(encode_images(vae, pixels, SCALE), io["denoise_ref_latents"], 1e-5)


@pytest.mark.parametrize("stem", STEMS)
def test_reference_bank(stem):
    """Every BasicTransformerBlock's norm1 output, rows [r, m1, m2] per copy written with contexts [u, c, u, ...],
    paired with the backbone block at the same path."""
    meta, model, _, io = _loaded(stem)
    context = model.identity_context(io["ref_face_emb"], guidance=True)
    bank = model.bank(io["denoise_ref_latents"], context, bank_dtype=None)
    assert len(bank.features) == len(meta["bank_pairs"])
    for index, (reference_path, backbone_path) in enumerate(meta["bank_pairs"]):
        assert reference_path == backbone_path
        _close(bank.features[reference_path].flatten(0, 1), io[f"denoise_bank_{index:02d}"], 1e-5)
    rounded = model.bank(io["denoise_ref_latents"], context)
    assert all(t.dtype == torch.float16 for t in rounded.features.values())


def _denoise(model, io, f: int, motion_scale, *, guidance: bool = True, bank_dtype=torch.float16):
    embedding = io["ref_face_emb"]
    context = model.identity_context(embedding, guidance=guidance)
    bank = model.bank(io["denoise_ref_latents"], context, bank_dtype=bank_dtype)
    audio = model.audioproj(io["ref_audio_windows"][:f][None])
    face = model.face_locator(io["ref_face_region"][None])
    latents = io["denoise_latents"]
    if guidance:
        cond = Conditions(context=context, audio=torch.cat([torch.zeros_like(audio), audio]), bank=bank,
                          face=torch.cat([torch.zeros_like(face), face]), masks=_masks(io, 2 * f),
                          motion_scale=motion_scale, plain_batches=1)
        latents = torch.cat([latents, latents])
    else:
        cond = Conditions(context=context, audio=audio, bank=bank, face=face, masks=_masks(io, f),
                          motion_scale=motion_scale)
    return model(latents, io["denoise_t"], cond)


@pytest.mark.parametrize("stem", STEMS)
@torch.no_grad()
def test_one_denoising_call(stem):
    meta, model, _, io = _loaded(stem)
    f = meta["sizes"]["clip_length"]
    out = _denoise(model, io, f, io["ref_motion_scale"])
    error = _close(out, io["denoise_out"])
    # The bank is read rounded to float16, as Hallo does: much closer than to the unrounded result.
    assert error < 0.2 * relative_error(out, io["denoise_out_bank32"])
    g = meta["sizes"]["guidance_scale"]
    _close(out[:1] + g * (out[1:] - out[:1]), io["denoise_guided"])
    _close(_denoise(model, io, f, io["denoise_motion_scale_alt"]), io["denoise_out_mscale"])
    _close(_denoise(model, io, f, io["ref_motion_scale"], guidance=False), io["denoise_nocfg_out"])


@pytest.mark.parametrize("stem", STEMS)
@torch.no_grad()
def test_pipeline_and_chained_clip(stem):
    """Clip 1 (reference + 2 copies of it as motion frames) and the chained clip 2 (its motion frames are the
    last 2 frames of clip 1), 3 guided DDIM steps each: every step's model output and latents, the video."""
    meta, model, vae, io = _loaded(stem)
    sizes = meta["sizes"]
    steps, guidance, n = sizes["steps"], sizes["guidance_scale"], sizes["n_motion_frames"]
    face = model.face_locator(io["ref_face_region"][None])
    scheduler = make_scheduler(**{k: v for k, v in meta["configs"]["scheduler"].items()
                                  if k not in ("class", "eta")})
    _close(scheduler.alphas_cumprod, io["scheduler_alphas_cumprod"], 1e-7)
    reference = io["ref_image"][None]

    def run(prefix: str, pixels: torch.Tensor):
        clip = ClipInputs(ref_latents=encode_images(vae, pixels, SCALE), audio=io[f"{prefix}_audio_tokens"],
                          face=face, masks=_masks(io))
        cond = clip_conditions(model, clip, io["ref_face_emb"], guidance=guidance,
                               motion_scale=io["ref_motion_scale"])
        seen = []
        latents = denoise_clip(model, scheduler, cond, io[f"{prefix}_latents_init"].clone(), steps=steps,
                               guidance=guidance, on_step=lambda i, t, out, lat: seen.append((t, out, lat)))
        assert [int(t) for t, _, _ in seen] == io["pipeline_timesteps"].long().tolist()
        for i, (_, out, lat) in enumerate(seen):
            _close(out, io[f"{prefix}_unet_out"][i], 2e-4)
            _close(lat, io[f"{prefix}_latents"][i], 2e-4)
        raw = decode_frames(vae, latents, SCALE)
        _close(raw, io[f"{prefix}_video_raw"][0].transpose(0, 1), 2e-4)
        video = (raw / 2 + 0.5).clamp(0, 1)
        _close(video, io[f"{prefix}_video"][0].transpose(0, 1), 2e-4)
        return video

    video = run("pipeline", torch.cat([reference] * (1 + n)))
    # The chaining rule: the next clip's ReferenceNet input is the reference and the last n frames in [-1, 1].
    _close(torch.cat([reference, video[-n:] * 2 - 1]), io["chain_ref_pixels"], 1e-3)
    run("chain", io["chain_ref_pixels"])


def test_released_key_table():
    """`EMOModel(hallo())` holds exactly the tensors of Hallo's released `net.pth`, names and shapes."""
    with torch.device("meta"):
        model = EMOModel(hallo())
    expected = flat_full_keys(SYSTEM)
    ours = key_table(model.state_dict())
    assert sorted(set(ours) - set(expected)) == []
    assert sorted(set(expected) - set(ours)) == []
    assert ours == expected
