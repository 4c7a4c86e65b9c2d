"""Training fixtures: a dataset of real face crops (the astronaut photo under a moving camera, through
`faceanim preprocess`) and random weight files standing in for the pretrained depth network and VGG-19."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faceanim.methods.dagan.config import WeightFiles
from tests.conftest import write_face_clip

CROP_SIZE = 64


@pytest.fixture(scope="session")
def face_dataset(tmp_path_factory, astronaut) -> Path:
    """One preprocessed clip of 24 face crops (64x64), the crop fixed so the face moves inside it."""
    from faceanim.tasks.preprocess import PreprocessOptions, preprocess

    folder = tmp_path_factory.mktemp("face_dataset")
    clip = write_face_clip(folder / "astronaut.mp4", astronaut, frames=24, with_audio=False)
    assert preprocess([str(clip)], folder / "dataset", PreprocessOptions(size=CROP_SIZE, crop_motion="fixed")) == 0
    return folder / "dataset"


@pytest.fixture(scope="session")
def weight_files(tmp_path_factory) -> WeightFiles:
    """Random (seeded) Monodepth2-format depth files and a torchvision-format VGG-19, written as the
    real ones are."""
    from safetensors.torch import save_file

    from faceanim.methods.dagan.depth import DepthDecoder, DepthEncoder
    from faceanim.nn.backbones import VGG19Features

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(11)
    encoder = DepthEncoder(18)
    torch.save({**encoder.state_dict(), "height": 224, "width": 224, "use_stereo": False}, folder / "encoder.pth")
    torch.save(DepthDecoder(encoder.num_ch_enc).state_dict(), folder / "depth.pth")
    save_file(VGG19Features().state_dict(), str(folder / "vgg19.safetensors"))
    return WeightFiles(depth_encoder=str(folder / "encoder.pth"), depth_decoder=str(folder / "depth.pth"),
                       vgg19=str(folder / "vgg19.safetensors"))
