"""The biometric sections of the configuration: `[face]` (detection, alignment, embedding, the same-person
threshold, quality gates: edge.biometrics.face) and `[liveness]` (the active challenge's tolerances and the
passive PAD threshold: edge.biometrics.liveness). Kept out of the subpackages so that reading the
configuration never loads a model runtime."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edge.sections import Section


# The builds of the embedding network (manifest names), one chosen by `[face] embedder`. The int8 build
# (models/build/embedder_int8.py) takes about half the time on a CPU with 8-bit dot products and decides the LFW
# development pairs within a few of the float build's (models/MODEL_CARD.md, "Speed"); the float build is dlib's
# network exactly.
EMBEDDER_ARTIFACTS = {"int8": "face_embedder_int8", "float32": "face_embedder"}
# The embedding network fine-tuned on faces the restoration worked on (models/restored): run by
# `[face] restored_embedder_for` for those faces only.
RESTORED_EMBEDDER_ARTIFACT = "face_embedder_restored"
# The other model files the face path reads.
FACE_FINDER_ARTIFACTS = ("face_detector", "face_detector_full_range", "face_landmarks_5")


class FaceConfig(Section):
    """edge.biometrics.face: detection, alignment, embedding and the same-person threshold."""

    # Euclidean distance between 128-d embeddings below which two faces are "same".
    # Chosen on development data (LFW View 2 folds 1-5 in ../shared/data) by `biogate eval face-threshold`:
    # best accuracy on all development folds (cross-validated accuracy in models/MODEL_CARD.md, ## Face);
    # never recomputed on the pairs being evaluated.
    threshold: float = 0.5926
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads per session")
    flip_augment: bool = True  # embed each chip and its mirror image, average the two descriptors
    # Which build of the embedding network runs (EMBEDDER_ARTIFACTS): "int8" (8-bit convolutions, about twice as
    # fast) or "float32" (dlib's network exactly); "auto": int8 on a CPU with 8-bit dot-product instructions
    # (edge.models.cpu_has_int8_dot_products), float32 elsewhere. The two compute the same embedding within about
    # 0.03, so their templates compare with each other (LFW development pairs 99.00-99.03 % across builds, 99.07 /
    # 99.10 % within one; models/MODEL_CARD.md "Speed").
    embedder: Literal["auto", "int8", "float32"] = "auto"
    detector_score: float = Field(0.5, ge=0.0, le=1.0)
    # The face finder (edge.biometrics.face.detector.DetectorChain), chosen on LFW development pairs degraded as
    # an ATM camera sees them (models/MODEL_CARD.md, "Capture conditions"): full range finds the 50-150 px face of
    # a 640 x 480 frame; faces filling a fifth of the frame or more are re-read by short range (the keypoints the
    # alignment was fitted on).
    detector: Literal["full_range", "short_range"] = "full_range"
    close_up_detector: Literal["short_range"] | None = "short_range"
    redetect_tiles: bool = Field(True, description="when no model finds a face in the whole frame, the last one "
                                                   "looks again in four overlapping tiles (small, distant faces)")
    hog_fallback: bool = Field(True, description="when BlazeFace finds no face, try dlib's HOG detector (slower)")
    # Smallest accepted face (detector box width, frame pixels): LFW development pairs keep their accuracy with
    # faces of 69-85 px (face75: 98.63 %, clean 99.07 %) and lose it at 44-59 px (face50: 97.33 %), all 3,000 pairs;
    # models/MODEL_CARD.md, "Capture conditions". Below it the terminal asks the customer to move closer.
    min_face_px: int = Field(64, ge=8, description="smallest accepted face (detector box width, pixels)")
    max_image_px: int = Field(40_000_000, description="images with more pixels are refused before decoding")
    min_brightness: float = 40.0
    max_brightness: float = 215.0
    # Share of the face's grey-level variance in its finest detail (edge.biometrics.face.quality), chosen on
    # LFW development faces against blurred copies of them (models/MODEL_CARD.md, ## Face).
    min_sharpness: float = 0.0012
    # edge.biometrics.face.quality.directional_blur above which the face is smeared by motion ("hold still");
    # set on LFW development faces against horizontally smeared copies (models/MODEL_CARD.md, "Capture conditions").
    max_motion_blur: float = 0.8
    # Before the face is looked for, smooth a dark frame's sensor noise (and brighten it) and a strong JPEG block
    # grid; take out of the face region a motion smear whose direction and length are clear
    # (edge.biometrics.face.restore). The gates then judge the restored face.
    undo_noise: bool = True
    undo_blocks: bool = True
    undo_motion_blur: bool = True
    # Faces whose restoration included one of these (edge.biometrics.face.restore.Restoration.undone: "denoised",
    # "deblocked", "deblurred") are embedded by the network fine-tuned on restored faces (models/restored: trained to
    # give the embedding the original network gives the clean face); every other face by `embedder`. Both embed
    # into the same template space. Only "deblocked" by default: cross-validated over LFW development folds (each
    # half scored by a network trained without its people), JPEG q12 errors fell 62 -> 51 of 3,000 pairs (20 fixed,
    # 9 broken), while low-light (46 -> 47) and motion-blurred probes (56 -> 51, but worse on one half) did not gain
    # on both halves (models/MODEL_CARD.md, "Capture conditions"). Empty: the fine-tuned network is not loaded.
    restored_embedder_for: tuple[Literal["denoised", "deblocked", "deblurred"], ...] = ("deblocked",)
    max_yaw_deg: float = 35.0
    max_roll_deg: float = 30.0

    @property
    def embedder_build(self) -> Literal["int8", "float32"]:
        """The embedder build that runs on this machine (`embedder` with "auto" resolved)."""
        if self.embedder != "auto":
            return self.embedder
        from edge.models import cpu_has_int8_dot_products

        return "int8" if cpu_has_int8_dot_products() else "float32"

    @property
    def model_artifacts(self) -> tuple[str, ...]:
        """Every model file this configuration's face path reads (manifest names): what the daemon's health check
        and the evaluation caches look at."""
        restored = (RESTORED_EMBEDDER_ARTIFACT,) if self.restored_embedder_for else ()
        return FACE_FINDER_ARTIFACTS + restored + (EMBEDDER_ARTIFACTS[self.embedder_build],)


class LivenessConfig(Section):
    """edge.biometrics.liveness: the active challenge's tolerances and the passive PAD threshold.

    Durations are seconds; a camera that declares its frame rate (`fps`) is timed in its own frames, so a
    simulated camera that is not paced in real time still gets the same number of frames per second.
    Face measures are in inter-ocular distances (IOD) so they do not depend on how far the customer stands.
    """

    passive_model: str = Field("pad_passive", description="artefact name of the passive PAD classifier")
    # Bona fide probability below which the face is taken for an attack. Default: the threshold the training
    # chose at APCER 5 % on out-of-fold scores of its training subjects (models/pad/weights.json "threshold");
    # the rule's cross-validated rates on unseen people are in models/MODEL_CARD.md (`biogate eval pad --cross-validate`).
    passive_threshold: float = Field(0.167579, ge=0.0, le=1.0)
    passive_frames: int = Field(5, ge=1, le=30, description="frontal frames before the prompt scored by the "
                                                            "passive detector (their mean score is compared)")
    challenges: list[Literal["blink", "turn_left", "turn_right", "move_closer"]] = Field(
        default_factory=lambda: ["blink", "turn_left", "turn_right", "move_closer"], min_length=1)
    face_wait_s: float = Field(6.0, gt=0, description="how long the check waits for a face before prompting")
    prompt_delay_min_s: float = Field(0.6, gt=0, description="the prompt comes a random time (between min and "
                                                             "max) after the face appears: it cannot be timed")
    prompt_delay_max_s: float = Field(1.2, gt=0)
    challenge_timeout_s: float = Field(6.0, gt=0, description="the action must be seen within this after the prompt")
    frame_rate: float = Field(15.0, gt=0, description="frames per second assumed when the camera declares none "
                                                      "and for check_frames")
    camera_mirrored: bool = Field(False, description="frames are mirror images (selfie view): swaps left/right")
    min_face_fraction: float = Field(0.6, ge=0.0, le=1.0, description="share of frames, from the first face on, "
                                                                      "that must show a face")
    blink_change: float = Field(0.25, gt=0, description="change of both eye regions against the open-eye "
                                                        "baseline (in eye-region contrast units, minus the change "
                                                        "of the nose bridge) that counts as eyes shut")
    blink_min_s: float = Field(0.1, ge=0, description="eyes must stay shut at least this long, then reopen")
    turn_offset: float = Field(0.05, gt=0, description="yaw signal shift (nose and ears relative to the eyes, "
                                                       "IOD) from the start pose, held for turn_hold_s")
    turn_hold_s: float = Field(0.3, ge=0)
    turn_nonplanar: float = Field(0.075, gt=0, description="the turned face's motion must leave the best plane "
                                                           "motion by this much (RMS, IOD): a photo cannot")
    closer_growth: float = Field(1.15, gt=1, description="inter-ocular distance growth for move_closer, held "
                                                         "for closer_hold_s")
    closer_hold_s: float = Field(0.2, ge=0)
    static_max_change: float = Field(0.6, ge=0, description="median grey-level change (0-255) between frames "
                                                            "below which the sequence is a still image")
    medium_edge_iod: float = Field(3.0, gt=0, description="a straight edge this long (IOD) that moves with the "
                                                          "face is the border of a photo or screen")
    medium_surround_fraction: float = Field(0.5, gt=0, le=1, description="share of the surroundings beside "
                                                                         "and above the head that moves with "
                                                                         "the face above which a flat medium "
                                                                         "carries it")

    @field_validator("prompt_delay_max_s")
    @classmethod
    def _delay_range(cls, value: float, info) -> float:
        if value < info.data.get("prompt_delay_min_s", 0.0):
            raise ValueError("prompt_delay_max_s must not be below prompt_delay_min_s")
        return value
