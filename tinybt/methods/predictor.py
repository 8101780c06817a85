"""The predictor: a head on the online network that maps its embedding Z (N, D) to a
prediction Q (N, D) of another embedding. BYOL predicts its EMA target's embedding of the other
view; a method without a target (SimSiam) predicts the same network's embedding of the other
view, behind a stop-gradient. Either way the predictor belongs to the online network: a run
has one when its method does (`Method.predictor`) or with --predictor, target or not.

    online:    image (N, 3, H, W) -> encoder -> projector -> Z (N, D)           trained
    predictor: Z (N, D) -> Q (N, D)                                             trained
"""

from tinybt import nn


def predictor(dim, hidden, rng=None):
    """BYOL's predictor MLP, (N, dim) -> (N, dim): Linear(dim, hidden) without bias (batch
    norm follows), BatchNorm1d, ReLU, Linear(hidden, dim). The paper: dim 256, hidden 4096, the
    projector's shape; tinybt keeps that shape with the projector's sizes (512 -> 512 -> 512 with
    the default projector). BYOL always has it; --predictor adds it to Barlow Twins or VICReg."""
    return nn.Sequential(
        nn.Linear(dim, hidden, bias=False, rng=rng),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, dim, rng=rng),
    )


class WithPredictor(nn.Module):
    """An online network and a predictor on its embeddings, with no target network.

    Called on images it is the online network, so evaluation, snapshots of C and the random
    baseline see the online encoder (`.encoder`); the predictor is trained with it.
    """

    def __init__(self, online, predictor):
        super().__init__()
        self.online = online
        self.predictor = predictor

    @property
    def encoder(self):
        return self.online.encoder

    def forward(self, x):
        return self.online(x)


def online_and_predictions(model, view_a, view_b):
    """((Z^A, Z^B), (Q^A, Q^B)) for a model with `.online` and `.predictor` (a WithPredictor,
    or a WithTarget), all (N, D) Tensors: the online embeddings, and Q = P(Z) (Q = Z when the
    model has no predictor)."""
    z_a, z_b = model.online(view_a), model.online(view_b)
    predict = (lambda z: z) if model.predictor is None else model.predictor
    return (z_a, z_b), (predict(z_a), predict(z_b))
