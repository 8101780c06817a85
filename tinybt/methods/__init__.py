"""The self-supervised methods, one file each, and the one registry that training reads.

Each method's file holds its loss as one op with a hand-derived backward, the same loss
composed of primitive ops as a reference, defaults from the method's paper or official code
(notebooks 05 and 09 put them side by side), and one `METHOD` (tinybt/methods/method.py): its
name, objectives, options and what it does after an optimiser step. What each loss pushes the
two views' embeddings towards:

- `barlow_twins`: their cross-correlation matrix C towards the identity;
- `simclr`: NT-Xent, contrastive: each view's cosine similarity to its twin up, to the other
  images' views down (the negatives keep the embeddings apart);
- `vicreg`: the two views' embeddings equal, every dimension's standard deviation at least 1,
  the dimensions decorrelated (variance, invariance, covariance), with no standardisation;
- `byol`: each view's prediction towards a slowly moving (EMA) target network's embedding of
  the other view, with no negatives and no gradient through the target;
- `simsiam`: each view's prediction towards the same network's embedding of the other view,
  behind a stop-gradient, with no target network and no negatives.

`target` holds the target network and its moving average, shared by BYOL and by Barlow Twins
and VICReg with --ema; `predictor` the predictor head (BYOL, SimSiam, --predictor); `common`
what the losses share. A new method is one new file exporting its `METHOD` and its entry in
the registry below (docs/METHODS.md, "Adding a method"); a method's options become fields of
`tinybt.config.Config`, one line each.
"""

from tinybt.methods import barlow_twins, byol, simclr, simsiam, vicreg

# --method's choices, in the order the help lists them: a new method is one more line here.
METHODS = {
    method.name: method
    for method in (
        barlow_twins.METHOD,
        byol.METHOD,
        simclr.METHOD,
        vicreg.METHOD,
        simsiam.METHOD,
    )
}
