"""Faces in images and videos: detection, 68 landmarks, identity embeddings, head pose, masks,
streaming tracking, FOMM/FFHQ-style crops and paste-back (dlib and OpenCV on the CPU)."""
from __future__ import annotations

from ._image import as_landmarks, as_rgb_image
from ._models import dlib_model_status
from .crop import (CropSmoother, CropTransform, FFHQAligner, ffhq_align, ffhq_quad, fomm_box, fomm_crop,
                   warp_to_crop)
from .detect import Box, FaceDetector, HOGDetector, MMODDetector, make_detector
from .landmarks import FaceEmbedder, LandmarkPredictor, box_from_landmarks, embedding_distance
from .masks import face_mask, inner_mouth_opening, mouth_box
from .paste import PastePlan, paste_back, prepare_paste_back
from .pose import HeadPose, head_pose
from .preflight import largest_face
from .smoothing import TemporalSmoother, smooth_sequence
from .track import FaceObservation, FaceTracker, TrackSummary

__all__ = [
    "Box", "FaceDetector", "HOGDetector", "MMODDetector", "make_detector",
    "LandmarkPredictor", "FaceEmbedder", "embedding_distance", "box_from_landmarks",
    "HeadPose", "head_pose",
    "face_mask", "mouth_box", "inner_mouth_opening",
    "FaceObservation", "FaceTracker", "TrackSummary",
    "TemporalSmoother", "smooth_sequence",
    "CropTransform", "fomm_box", "fomm_crop", "ffhq_quad", "ffhq_align", "FFHQAligner", "CropSmoother",
    "warp_to_crop",
    "paste_back", "prepare_paste_back", "PastePlan",
    "largest_face", "dlib_model_status", "as_landmarks", "as_rgb_image",
]
