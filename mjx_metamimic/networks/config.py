"""Network configuration: residual conv torso presets and the frozen ``NetworkConfig``."""

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class Stage:
    """One residual stage: conv 3x3 -> norm -> max-pool, then ``blocks`` residual blocks.

    Each residual block holds two conv 3x3 layers, so a stage has ``1 + 2 * blocks`` convs.
    """

    channels: int
    """Output channels of every conv layer in the stage."""
    blocks: int = 2
    """Residual blocks after the stage's first conv (two convs each)."""
    pool_stride: int = 2
    """Stride of the 3x3 max-pool after the first conv: 2, or 1 for no pooling."""

    def __post_init__(self):
        if self.pool_stride not in (1, 2):
            raise ValueError(f"pool_stride must be 1 or 2, got {self.pool_stride}")


# Conv torso presets. Counts are conv layers.
PRESETS: dict[str, tuple[Stage, ...]] = {
    # Tests and the cpu config: 6 conv layers, 8 channels.
    "tiny": (Stage(8, blocks=1), Stage(8, blocks=1)),
    # 9 conv layers, 16/32/32 channels.
    "small": (Stage(16, blocks=1), Stage(32, blocks=1), Stage(32, blocks=1)),
    # IMPALA's ResNet (Espeholt et al. 2018): 15 conv layers, 16/32/32 channels.
    "impala": (Stage(16), Stage(32), Stage(32)),
    # The paper's ResNet34-like net: 20 conv layers, widening to 512 channels.
    "paper": (Stage(64), Stage(128), Stage(256), Stage(512)),
}

PresetName = Literal["tiny", "small", "impala", "paper"]
NormKind = Literal["none", "instance", "layer", "group"]


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Architecture shared by the actor and the critic of one learner."""

    inputs: Literal["pixels", "features", "proprio"] = "pixels"
    """'pixels': residual conv torso and dense layers over the (channel-stacked) frames, the
    vectors joined after them; 'features': MLP torso over [obs vectors, goal vectors,
    goal - obs] (no pixels used); 'proprio': the same MLP over the arm's proprio alone, a
    policy blind to the blocks (an ablation: how far tracking the goal's arm gets)."""
    torso: PresetName = "small"
    """Conv torso preset (pixels only): tiny (tests, the cpu config), small (9 conv),
    impala (15 conv, 16/32/32 channels) or paper (ResNet34-like, 20 conv, up to 512
    channels)."""
    norm: NormKind = "instance"
    """Normalisation between conv layers: none, instance, layer or group."""
    norm_groups: int = 8
    """Groups for group norm (reduced to a divisor of the channel count)."""
    keypoints: int = 0
    """Pixels only: 0 flattens the conv torso's last feature map; K > 0 reads it out as K
    spatial-softmax keypoints (expected x, y of K learned maps; Levine et al. 2016), a
    readout that keeps positions finer than the map's grid."""
    torso_hidden: tuple[int, ...] = (256,)
    """Dense layers (Dense -> LayerNorm -> ELU) ending the torso: after the conv stack for
    pixels (the vector inputs join their output), the whole torso for features."""
    head_hidden: tuple[int, ...] = (256, 256)
    """Dense layers (Dense -> LayerNorm -> ELU) of the policy and critic heads."""
    critic_inputs: Literal["same", "features"] = "same"
    """What the critics read: "same" as the actor (``inputs``), or "features": the
    privileged features MLP while a pixel actor keeps its pixels (asymmetric actor-critic,
    Pinto et al. 2018). The critic only trains the actor, so the policy still acts from
    pixels alone; the conv torso is then the actor's only, a fraction of an update's cost."""
    shared_torso: bool = False
    """One encoder (conv stack or features MLP, and its dense layers) for the critics,
    trained by the critic loss only; the actor reads its output without a gradient, and the
    twin critics differ in their heads alone (as DrQ, Yarats et al. 2021). An update then
    runs the torso once with its gradient and once for the targets, instead of once per
    network (~8 passes with twin critics). The actor's own encoder parameters are kept a copy
    of the critics', so acting is unchanged."""
    standardize_inputs: bool = False
    """Standardise the vector inputs with the training demos' statistics (observations and
    goals by their mean and std, goal - obs by the RMS of one demo step), clipped to +-5."""

    @property
    def reads_pixels(self) -> bool:
        """Whether the encoder runs the conv torso over frames (``inputs="pixels"``)."""
        return self.inputs == "pixels"

    @property
    def reads_features(self) -> bool:
        """Whether the encoder reads the privileged features (only ``inputs="features"``)."""
        return self.inputs == "features"

    def __post_init__(self):
        if self.keypoints < 0:
            raise ValueError(f"keypoints must be >= 0, got {self.keypoints}")
        if self.shared_torso and self.critic_inputs != "same":
            raise ValueError(
                "network.shared_torso needs critic_inputs='same': the actor reads the "
                f"critics' torso, which cannot read {self.critic_inputs!r} alone"
            )


def num_conv_layers(stages: tuple[Stage, ...]) -> int:
    """Number of conv layers in a torso made of ``stages``."""
    return sum(1 + 2 * stage.blocks for stage in stages)
