"""The network: a small convolutional encoder, and the paper's projector on top of it.

    image (N, 3, 32, 32) --encoder--> representation y (N, F) --projector--> embedding z (N, D)

The loss acts on z; what we keep and evaluate afterwards is the encoder's y. The paper's
encoder is a ResNet-50 (F = 2048) and its projector 8192-8192-8192; for 32x32 images on a CPU
tinybt uses a few conv-BN-ReLU stages and a 512-512-512 projector.
"""

from tinybt import nn


def parse_dims(text):
    """ "512-512-512" -> (512, 512, 512), the paper's notation for layer widths."""
    try:
        dims = tuple(int(part) for part in str(text).split("-"))
    except ValueError:
        raise ValueError(f"expected widths like 512-512-512, got {text!r}") from None
    if not dims or min(dims) < 1:
        raise ValueError(f"expected positive widths like 512-512-512, got {text!r}")
    return dims


class Encoder(nn.Module):
    """Stages of conv3x3-BN-ReLU, then global average pooling.  (N, 3, H, W) -> (N, F).

    Stage s has widths[s] channels; its first conv has stride strides[s] (2 halves H and W),
    and `blocks` convs in all. F = widths[-1].

    `layers` work on feature maps laid out (C, H, W, N), the batch innermost (notebook 03
    explains why): `forward` turns the images around once on the way in, and the global
    pooling at the end hands back (N, F).
    """

    def __init__(
        self, widths=(32, 64, 128, 256), strides=(1, 2, 2, 2), blocks=1, rng=None, in_channels=3
    ):
        super().__init__()
        if len(widths) != len(strides):
            raise ValueError(f"one stride per stage: {len(widths)} widths, {len(strides)} strides")
        layers = []
        channels = in_channels
        for width, stride in zip(widths, strides, strict=True):
            for block in range(blocks):
                layers += [
                    # no conv bias: the batch norm right after subtracts any constant anyway
                    nn.Conv2d(
                        channels,
                        width,
                        3,
                        stride=stride if block == 0 else 1,
                        padding=1,
                        bias=False,
                        rng=rng,
                    ),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                ]
                channels = width
        self.layers = nn.Sequential(*layers, nn.GlobalAvgPool2d())
        self.out_features = channels

    def forward(self, x):
        return self.layers(x.transpose(1, 2, 3, 0))  # (N, C, H, W) -> (C, H, W, N)


class Projector(nn.Module):
    """(Linear without bias, BatchNorm1d, ReLU) for every width but the last, then Linear
    without bias, as in the official code.  (N, F) -> (N, D), D = dims[-1]."""

    def __init__(self, in_features, dims=(512, 512, 512), rng=None):
        super().__init__()
        layers = []
        sizes = (in_features, *dims)
        for width_in, width_out in zip(sizes[:-2], sizes[1:-1], strict=True):
            layers += [
                nn.Linear(width_in, width_out, bias=False, rng=rng),
                nn.BatchNorm1d(width_out),
                nn.ReLU(),
            ]
        layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False, rng=rng))
        self.layers = nn.Sequential(*layers)

    def forward(self, y):
        return self.layers(y)


class TwoViewNetwork(nn.Module):
    """Encoder followed by projector: an image batch (N, 3, H, W) -> embeddings (N, D). Every
    method sends both views through one of these (and, with a target network, through a
    second one that follows it: tinybt/methods/target.py)."""

    def __init__(
        self,
        widths=(32, 64, 128, 256),
        strides=(1, 2, 2, 2),
        blocks=1,
        projector=(512, 512, 512),
        rng=None,
    ):
        super().__init__()
        self.encoder = Encoder(widths, strides, blocks, rng=rng)
        self.projector = Projector(self.encoder.out_features, projector, rng=rng)

    def forward(self, x):
        return self.projector(self.encoder(x))


def count_parameters(module):
    """How many numbers the optimiser adjusts."""
    return sum(p.data.size for p in module.parameters())
