"""The other methods the Barlow Twins paper compares itself with, one file each.

Each file holds its method's loss as one op with a hand-derived backward, the same loss
composed of primitive ops as a reference, and defaults from the method's paper or official
code (notebook 09 puts them side by side). What each loss pushes the two views' embeddings
towards:

- `simclr`: NT-Xent, contrastive: each view's cosine similarity to its twin up, to the other
  images' views down (the negatives keep the embeddings apart);
- `vicreg`: the two views' embeddings equal, every dimension's standard deviation at least 1,
  the dimensions decorrelated (variance, invariance, covariance), with no standardisation;
- `byol`: each view's prediction towards a slowly moving (EMA) target network's embedding of
  the other view, with no negatives and no gradient through the target.

Barlow Twins itself lives in `tinybt/loss.py` for now: its cross-correlation matrix pushed
towards the identity. `objectives` holds each method's loss on one training batch, the one
place where a method's forward pass and loss meet (`tinybt.recipe.train_step` calls it).
"""
