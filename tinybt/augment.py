"""The augmentations of Barlow Twins, each applied to a whole batch on the array backend.

Barlow Twins learns what stays the same between two distorted views of an image, so the
distortions decide what it learns: crops teach it that a part stands for the whole, colour
jitter and grayscale that colour is not the object, blur that fine texture is not either.

Conventions, for every function here:
- images are float32 (N, H, W, 3) in [0, 1] on the backend (channel-last keeps the colour
  maths a matter of the last axis); only `to_model_input` and the pipeline's output are
  channel-first (N, 3, H, W), normalised, as the model consumes them.
- random parameters are drawn per sample on the host from a NumPy Generator `rng`, all at
  once (`rng.uniform(size=N)`), and moved to the device; nothing loops over the samples.
- each random transform (random_resized_crop, horizontal_flip, color_jitter,
  random_grayscale, gaussian_blur, random_solarize) takes `(images, rng, ...)`, draws its
  parameters and hands them to a deterministic function (resized_crop, adjust_*, grayscale,
  blur, solarize), so tests can check the drawing and the drawing's effect apart.
- the pipeline (ViewAugment) draws every parameter of the batch first and then applies
  them, so it can apply a batch's augmentation to some of its rows only: what each of
  several processes sharing a batch does (tinybt/distributed.py), every one drawing the
  whole batch's parameters from the same generator and so seeing the same views.

The transforms follow torchvision's definitions (which follow PIL's), so a reader can compare
them with the official Barlow Twins code, which builds its views with torchvision and PIL.
"""

from dataclasses import dataclass, replace

import numpy as np

from tinybt import backend
from tinybt.errors import TinyBTError

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601: the grey level the eye sees in R, G, B
TINY = 1e-12  # a divisor floor that changes no colour a uint8 image can hold


# Conversions between what the dataset stores and what the model consumes.


def to_float(images):
    """uint8 (N, H, W, 3), host or device -> float32 (N, H, W, 3) in [0, 1] on the backend.

    The uint8 images travel to the device first: a quarter of the bytes of float32.
    """
    xp = backend.xp()
    return backend.to_device(images).astype(xp.float32) / 255


def normalize(images, mean, std):
    """(images - mean) / std per channel: float32 (N, H, W, 3) -> float32 (N, H, W, 3)."""
    mean = backend.to_device(mean, dtype="float32")
    std = backend.to_device(std, dtype="float32")
    return (images - mean) / std


def to_channels_first(images):
    """(N, H, W, 3) -> (N, 3, H, W), contiguous, the layout of the convolutions."""
    return backend.get_array_module(images).ascontiguousarray(images.transpose(0, 3, 1, 2))


def to_model_input(images, mean, std):
    """uint8 (N, H, W, 3) -> normalised float32 (N, 3, H, W) on the backend, no augmentation.

    What evaluation feeds the encoder, so it sees images exactly as training did, minus the
    distortions.
    """
    return to_channels_first(normalize(to_float(images), mean, std))


# Applying a transform to some samples only.


def _where_chosen(images, chosen, transform, *params):
    """`images` with `transform(images[i], params[i])` in the rows i where `chosen` is True.

    chosen  bool (N,) on the host; params  per-sample host arrays (N, ...)
    Only the chosen rows are computed, so a transform applied with p = 0.1 costs a tenth.
    """
    if not chosen.any():
        return images
    if chosen.all():
        return transform(images, *params)
    out = images.copy()
    _update_chosen(out, chosen, transform, *params)
    return out


def _update_chosen(images, chosen, transform, *params):
    """Like `_where_chosen`, but writes into `images` itself (which the caller owns)."""
    rows = np.flatnonzero(chosen)
    if rows.size:
        on_device = backend.to_device(rows)
        images[on_device] = transform(images[on_device], *(values[rows] for values in params))


def _per_sample(values):
    """Host values (N,) -> float32 (N, 1, 1, 1) on the device, to broadcast over a batch."""
    return backend.to_device(np.asarray(values).reshape(-1, 1, 1, 1), dtype="float32")


# Random resized crop.


def crop_boxes(rng, count, height, width, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), tries=10):
    """Boxes as torchvision's RandomResizedCrop draws them: int arrays (count,) each of
    (top, left, box_height, box_width).

    A box covers a fraction s ~ U(scale) of the image area with aspect ratio w/h = r, log r ~
    U(log ratio). A box that does not fit inside the image is drawn again, up to `tries` times;
    torchvision loops until one fits, here all tries are drawn at once and each sample keeps
    its first that fits. A sample with none falls back to the largest centred box whose ratio
    is inside `ratio`.
    """
    area = height * width
    target_area = area * rng.uniform(*scale, size=(count, tries))
    aspect = np.exp(rng.uniform(*np.log(ratio), size=(count, tries)))
    box_width = np.round(np.sqrt(target_area * aspect)).astype(np.int64)
    box_height = np.round(np.sqrt(target_area / aspect)).astype(np.int64)
    fits = (box_width > 0) & (box_width <= width) & (box_height > 0) & (box_height <= height)
    first = fits.argmax(axis=1)  # the first try that fits (0 when none does)
    rows = np.arange(count)
    none_fit = ~fits.any(axis=1)
    fallback_height, fallback_width = _centred_box(height, width, ratio)
    box_height = np.where(none_fit, fallback_height, box_height[rows, first])
    box_width = np.where(none_fit, fallback_width, box_width[rows, first])
    top = rng.integers(0, height - box_height + 1)
    left = rng.integers(0, width - box_width + 1)
    top = np.where(none_fit, (height - box_height) // 2, top)
    left = np.where(none_fit, (width - box_width) // 2, left)
    return top, left, box_height, box_width


def _centred_box(height, width, ratio):
    """(box_height, box_width) of the largest box with ratio in `ratio` (torchvision's fallback)."""
    if width / height < min(ratio):
        return int(round(width / min(ratio))), width
    if width / height > max(ratio):
        return height, int(round(height * max(ratio)))
    return height, width


def resized_crop(images, top, left, box_height, box_width, size):
    """Each image's box resampled to (size, size) by bilinear interpolation.

    images (N, H, W, 3); top, left, box_height, box_width host arrays (N,) -> (N, size, size, 3)

    Output pixel o of a box [start, start + length) samples the source at
        x = start + (o + 1/2) * length / size - 1/2
    (pixel centres line up, as in PIL and in torch's align_corners=False), clamped to the
    image so the border pixels repeat, and blends the 4 neighbouring pixels:
        out = (1-wy)(1-wx) I[y0,x0] + (1-wy) wx I[y0,x1] + wy (1-wx) I[y1,x0] + wy wx I[y1,x1]
    with wx = x - floor(x). The coordinates are (N, size) arrays, computed on the host; the
    whole batch is then one gather of each neighbour, by its index in the list of all pixels.
    There is no antialiasing: right for the boxes of a 32x32 image, which are never larger than
    the output; a box much larger than the output would alias, as torch's resize does without
    antialias.
    """
    xp = backend.get_array_module(images)
    count, height, width, _ = images.shape
    y = _sample_positions(top, box_height, size, height)
    x = _sample_positions(left, box_width, size, width)
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
    wy = backend.to_device((y - y0)[:, :, None, None], dtype="float32")  # (N, size, 1, 1)
    wx = backend.to_device((x - x0)[:, None, :, None], dtype="float32")  # (N, 1, size, 1)

    pixels = images.reshape(-1, 3)  # every pixel of the batch in one list
    first_row = (np.arange(count) * height)[:, None, None]

    def gather(rows, columns):  # (N, size, size, 3): image n's pixel (rows[n, i], columns[n, j])
        index = ((first_row + rows[:, :, None]) * width + columns[:, None, :]).reshape(-1)
        return xp.take(pixels, backend.to_device(index), axis=0).reshape(count, size, size, 3)

    upper = _lerp(gather(y0, x0), gather(y0, x1), wx)
    lower = _lerp(gather(y1, x0), gather(y1, x1), wx)
    return _lerp(upper, lower, wy)


def _lerp(start, end, weight):
    """start (1 - weight) + end weight, written with one multiplication."""
    return start + (end - start) * weight


def _sample_positions(start, length, size, limit):
    """Source coordinates (N, size) of the output pixel centres, clamped to [0, limit - 1]."""
    position = start[:, None] + (np.arange(size) + 0.5) * (length[:, None] / size) - 0.5
    return np.clip(position, 0, limit - 1)


def random_resized_crop(images, rng, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random box of each image (see `crop_boxes`), resized to (N, size, size, 3)."""
    _, height, width, _ = images.shape
    boxes = crop_boxes(rng, len(images), height, width, scale, ratio)
    return resized_crop(images, *boxes, size)


# Flip.


def horizontal_flip(images, rng, p=0.5):
    """Each image mirrored left-right with probability p."""
    return _where_chosen(images, rng.random(len(images)) < p, mirror)


def mirror(images):
    """Each image mirrored left-right: (N, H, W, 3) -> (N, H, W, 3), a view."""
    return images[:, :, ::-1]


# Colour: brightness, contrast, saturation, hue (torchvision's ColorJitter), and grayscale.


def luma(images):
    """The grey level 0.299 red + 0.587 green + 0.114 blue: (N, H, W, 3) -> (N, H, W, 1)."""
    return images @ backend.to_device(LUMA, dtype="float32")[:, None]


def grayscale(images):
    """Every channel replaced by the luma, as PIL's convert("L"): (N, H, W, 3)."""
    return backend.get_array_module(images).repeat(luma(images), 3, axis=-1)


def _blend(images, other, factor):
    """other + factor (images - other), clipped to [0, 1]: PIL's Image.blend(other, images).

    factor 0 gives `other`, 1 the image unchanged, above 1 pushes the image further away.
    """
    return backend.get_array_module(images).clip(
        other + _per_sample(factor) * (images - other), 0, 1
    )


def adjust_brightness(images, factor):
    """Blend each image with black by its factor (N,), on the host: 0 black, 1 unchanged."""
    # BEGIN SOLUTION color-jitter: blend each image with black by its factor (see _blend)
    return _blend(images, 0, factor)
    # END SOLUTION


def adjust_contrast(images, factor):
    """Blend with the image's mean grey level (one number per image). factor (N,)."""
    # BEGIN SOLUTION color-jitter: blend each image with its mean grey level (see luma, _blend)
    return _blend(images, luma(images).mean(axis=(1, 2, 3), keepdims=True), factor)
    # END SOLUTION


def adjust_saturation(images, factor):
    """Blend with the image's own grayscale version: 0 is grey, 1 unchanged. factor (N,)."""
    # BEGIN SOLUTION color-jitter: blend each image with its own grey version (see luma, _blend)
    return _blend(images, luma(images), factor)
    # END SOLUTION


def adjust_hue(images, shift):
    """Rotate each pixel's hue by `shift` (N,) turns, in [-0.5, 0.5]; saturation and value stay."""
    hsv = rgb_to_hsv(images)
    hue = _turns(hsv[..., 0:1] + _per_sample(shift))
    return hsv_to_rgb(backend.get_array_module(hsv).concatenate([hue, hsv[..., 1:]], axis=-1))


def rgb_to_hsv(images):
    """(..., 3) RGB in [0, 1] -> (..., 3) HSV, with hue in turns [0, 1).

    V = max(R, G, B), chroma C = V - min(R, G, B), S = C / V, and the hue is the position
    on the colour hexagon: (G - B) / C when R is the largest, 2 + (B - R) / C when G is,
    4 + (R - G) / C when B is, in sixths of a turn. Greys (C = 0) get hue 0.
    """
    xp = backend.get_array_module(images)
    red, green, blue = images[..., 0], images[..., 1], images[..., 2]
    value = xp.maximum(xp.maximum(red, green), blue)
    chroma = value - xp.minimum(xp.minimum(red, green), blue)
    # Dividing by at least TINY keeps black and greys at 0 instead of 0 / 0.
    saturation = chroma / xp.maximum(value, TINY)
    safe_chroma = xp.maximum(chroma, TINY)
    hue = xp.where(
        value == red,
        (green - blue) / safe_chroma,
        xp.where(value == green, 2 + (blue - red) / safe_chroma, 4 + (red - green) / safe_chroma),
    )
    return xp.stack([_turns(hue / 6), saturation, value], axis=-1)


def hsv_to_rgb(hsv):
    """(..., 3) HSV (hue in turns) -> (..., 3) RGB.

    Channel c = V - V S clip(min(k, 4 - k), 0, 1) with k = (n + 6 H) mod 6, n = 5, 3, 1 for
    R, G, B: each channel is a trapezoid wave of the hue, offset by a third of a turn.
    """
    xp = backend.get_array_module(hsv)
    hue, saturation, value = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
    k = 6 * _turns((backend.to_device([5, 3, 1], dtype="float32") + 6 * hue) / 6)  # mod 6
    return value - value * saturation * xp.clip(xp.minimum(k, 4 - k), 0, 1)


def _turns(angle):
    """`angle % 1`, the fraction of a turn in [0, 1), as angle - floor(angle): the same number,
    several times faster than NumPy's float remainder."""
    return angle - backend.get_array_module(angle).floor(angle)


JITTERS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
UNCHANGED = (1.0, 1.0, 1.0, 0.0)  # the factor of each adjustment that leaves an image as it is


def jitter_parameters(rng, count, brightness, contrast, saturation, hue, p):
    """What `color_jitter` draws for `count` images, as torchvision's ColorJitter draws it.

    Returns (chosen bool (N,), factors float (4, N), order int (N, 4)): factors of brightness,
    contrast and saturation ~ U(max(0, 1 - strength), 1 + strength), the hue shift ~ U(-hue,
    hue); order[n] is a random permutation of the four adjustments (indices into JITTERS).
    """
    chosen = rng.random(count) < p
    factors = np.stack(
        [rng.uniform(max(0, 1 - s), 1 + s, size=count) for s in (brightness, contrast, saturation)]
        + [rng.uniform(-hue, hue, size=count)]
    )
    order = rng.random((count, 4)).argsort(axis=1)
    return chosen, factors, order


def apply_jitter(images, chosen, factors, order):
    """The four adjustments, in each image's own order, to the chosen images.

    Step s applies, to each image n, adjustment order[n, s]: four steps of four subsets, each
    adjustment computed only on the images that take it at that step, and skipped where its
    factor leaves the image unchanged (a strength of 0, as in an ablation).
    """
    images = images.copy()
    for step in range(4):
        for index, adjust in enumerate(JITTERS):
            takes = chosen & (order[:, step] == index) & (factors[index] != UNCHANGED[index])
            _update_chosen(images, takes, adjust, factors[index])
    return images


def color_jitter(images, rng, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8):
    """With probability p per image, brightness, contrast, saturation and hue changed at random
    strengths in a random order (torchvision's RandomApply(ColorJitter(...), p)).

    The order matters: a hue rotation changes the luma that saturation blends towards, and
    clipping after each step makes even brightness and contrast not commute.
    """
    return apply_jitter(
        images, *jitter_parameters(rng, len(images), brightness, contrast, saturation, hue, p)
    )


def random_grayscale(images, rng, p=0.2):
    """Each image turned grey (still 3 channels) with probability p."""
    return _where_chosen(images, rng.random(len(images)) < p, grayscale)


# Gaussian blur.


def gaussian_kernels(sigma, kernel_size):
    """Normalised 1-D Gaussian kernels (N, kernel_size), one per sigma (N,), on the host.

    w(t) = exp(-t^2 / (2 sigma^2)) at taps t = -K//2 .. K//2, divided by their sum.
    """
    taps = np.arange(kernel_size) - kernel_size // 2
    weights = np.exp(-(taps**2) / (2 * np.asarray(sigma)[:, None] ** 2))
    return weights / weights.sum(axis=1, keepdims=True)


def blur_matrices(sigma, length, kernel_size):
    """(N, length, length) matrices M with M @ signal = the signal blurred by a Gaussian of
    sigma (N,), edges mirrored.

    A convolution is linear, so it is a matrix: output pixel i takes weight w(t) from input
    pixel mirror(i + t) for each tap t. Row i of M holds those weights, a band around the
    diagonal folded back at the edges (where two taps can read the same pixel and add up).
    """
    xp = backend.xp()
    kernels = backend.to_device(gaussian_kernels(sigma, kernel_size), dtype="float32")
    matrices = xp.zeros((len(kernels), length, length), dtype=xp.float32)
    outputs = xp.arange(length)
    for tap in range(kernel_size):
        offset = tap - kernel_size // 2
        reads = backend.to_device(_mirror(np.arange(length) + offset, length))
        # Within one tap every output pixel reads one input pixel: no index repeats, so += is
        # safe here without a scatter-add.
        matrices[:, outputs, reads] += kernels[:, tap, None]
    return matrices


def _mirror(index, length):
    """Indices folded back into range(length) as a mirror does (numpy's "reflect" padding,
    which does not repeat the edge: -1 -> 1, length -> length - 2)."""
    period = 2 * (length - 1)
    index = np.abs(index) % period
    return np.where(index >= length, period - index, index)


def blur(images, sigma, kernel_size):
    """Each image blurred by a Gaussian of its own sigma (N,): (N, H, W, 3), edges mirrored.

    A 2-D Gaussian is the product of two 1-D ones, exp(-(x^2 + y^2) / 2s^2) = exp(-x^2 / 2s^2)
    exp(-y^2 / 2s^2), so the blur is one pass down the columns and one along the rows. Each
    pass is a matrix product (see `blur_matrices`), the whole batch in one batched matmul:
    per channel, blurred = M_H @ image @ M_W^T.
    """
    if kernel_size % 2 == 0 or kernel_size < 1:
        raise TinyBTError(f"blur kernel size must be odd and positive, got {kernel_size}")
    _, height, width, _ = images.shape
    down_columns = _along_columns(images, blur_matrices(sigma, height, kernel_size))
    along_rows = _along_columns(_swap_axes(down_columns), blur_matrices(sigma, width, kernel_size))
    return _swap_axes(along_rows)


def _along_columns(images, matrices):
    """matrices (N, H2, H) @ each image's columns: (N, H, W, 3) -> (N, H2, W, 3)."""
    count, height, width, _ = images.shape
    mixed = matrices @ images.reshape(count, height, width * 3)
    return mixed.reshape(count, -1, width, 3)


def _swap_axes(images):
    """(N, H, W, 3) -> (N, W, H, 3): rows become columns."""
    return images.transpose(0, 2, 1, 3)


def gaussian_blur(images, rng, p=1.0, sigma=(0.1, 2.0), kernel_size=13):
    """Each image blurred with probability p, by a Gaussian of sigma ~ U(sigma) pixels.

    kernel_size must be odd; 13 taps reach 3 sigma for the largest sigma 2.0 (the paper's range).
    """
    count = len(images)
    chosen = rng.random(count) < p
    sigmas = rng.uniform(*sigma, size=count)
    return _where_chosen(images, chosen, lambda x, s: blur(x, s, kernel_size), sigmas)


# Solarisation.


def solarize(images):
    """Pixels at or above 1/2 inverted, x -> 1 - x: PIL's ImageOps.solarize(threshold=128)."""
    return backend.get_array_module(images).where(images >= 0.5, 1 - images, images)


def random_solarize(images, rng, p=0.2):
    """Each image solarised with probability p."""
    return _where_chosen(images, rng.random(len(images)) < p, solarize)


# A control experiment, not an augmentation: shuffled pixels.


def shuffle_pixels(images, rng):
    """Every image's pixels moved by one fixed random permutation of the H W positions.

    images  uint8 (N, H, W, 3) on the host, as a Dataset stores them -> the same shape and dtype

    The same permutation is applied to all N images, so the dataset keeps everything that
    does not depend on where a pixel is (each image's colour histogram, the label) and loses
    its spatial structure (edges, shapes). A reviewer of Barlow Twins proposed training on such
    images: what a network still learns from them, it learns from colour statistics. The
    permutation is rng.permutation(H W), so shuffling a training and a test split with
    generators of the same seed moves their pixels alike.
    """
    count, height, width, channels = images.shape
    permutation = rng.permutation(height * width)
    return images.reshape(count, height * width, channels)[:, permutation].reshape(images.shape)


# The two-view pipeline.


@dataclass
class ViewParameters:
    """Everything a ViewAugment draws for a batch of N images, host arrays, one row per image
    (the jitter's factors (4, N) one column per image): see crop_boxes, jitter_parameters."""

    crop: tuple  # (top, left, box_height, box_width), each (N,)
    flip: np.ndarray  # bool (N,)
    jitter: tuple  # (chosen (N,), factors (4, N), order (N, 4))
    grayscale: np.ndarray  # bool (N,)
    blur: np.ndarray  # bool (N,)
    blur_sigma: np.ndarray  # (N,)
    solarize: np.ndarray  # bool (N,)

    def rows(self, rows):
        """The parameters of the images `rows` (a slice) of the batch."""
        chosen, factors, order = self.jitter
        return ViewParameters(
            crop=tuple(values[rows] for values in self.crop),
            flip=self.flip[rows],
            jitter=(chosen[rows], factors[:, rows], order[rows]),
            grayscale=self.grayscale[rows],
            blur=self.blur[rows],
            blur_sigma=self.blur_sigma[rows],
            solarize=self.solarize[rows],
        )


@dataclass
class ViewAugment:
    """The recipe for one view, in the order it is applied; the defaults are the paper's view 1.

    Set any probability or strength to 0 to switch that distortion off (an ablation).
    """

    size: int = 32  # side of the output crop
    crop_scale: tuple = (0.08, 1.0)  # fraction of the image area a crop covers
    crop_ratio: tuple = (3 / 4, 4 / 3)  # width / height of the crop
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple = (0.1, 2.0)  # in pixels
    blur_kernel_size: int = 13
    solarize_p: float = 0.0

    def __call__(self, images, rng, rows=slice(None)):
        """float32 (N, H, W, 3) in [0, 1] -> one view float32 (n, size, size, 3) in [0, 1].

        rows: the images to make views of, a slice of the batch (all of it by default; n its
        length). The parameters are drawn for the whole batch all the same, so the views
        are the whole batch's views of those rows, and `rng` ends in the same state.
        """
        count, height, width, _ = images.shape
        return self.apply(images[rows], self.draw(rng, count, height, width).rows(rows))

    def draw(self, rng, count, height, width):
        """ViewParameters for `count` images of (height, width), drawn from `rng` as the
        random transforms draw them, one transform after the other."""
        return ViewParameters(
            crop=crop_boxes(rng, count, height, width, self.crop_scale, self.crop_ratio),
            flip=rng.random(count) < self.flip_p,
            jitter=jitter_parameters(
                rng, count, self.brightness, self.contrast, self.saturation, self.hue, self.jitter_p
            ),
            grayscale=rng.random(count) < self.grayscale_p,
            blur=rng.random(count) < self.blur_p,
            blur_sigma=rng.uniform(*self.blur_sigma, size=count),
            solarize=rng.random(count) < self.solarize_p,
        )

    def apply(self, images, parameters):
        """The view of `images` (N, H, W, 3) that `parameters` (ViewParameters of N images)
        describe, transform after transform: (N, size, size, 3)."""
        images = resized_crop(images, *parameters.crop, self.size)
        images = _where_chosen(images, parameters.flip, mirror)
        images = apply_jitter(images, *parameters.jitter)
        images = _where_chosen(images, parameters.grayscale, grayscale)
        images = _where_chosen(
            images, parameters.blur, lambda x, s: blur(x, s, self.blur_kernel_size),
            parameters.blur_sigma,
        )  # fmt: skip
        return _where_chosen(images, parameters.solarize, solarize)


@dataclass
class TwoViewAugment:
    """Two views of every image, each by its own recipe, normalised for the model.

    The views are asymmetric on purpose (in the paper, view 1 is always blurred and never
    solarised, view 2 rarely blurred and sometimes solarised), so each has its own ViewAugment.
    mean, std (3,) are the dataset's per-channel statistics in [0, 1] units.
    """

    view_a: ViewAugment
    view_b: ViewAugment
    mean: tuple
    std: tuple

    def __call__(self, images, rng, rows=slice(None)):
        """uint8 (N, H, W, 3), host or device -> (view_a, view_b), each float32 (n, 3, S, S),
        normalised, on the backend. `rng` is a NumPy Generator; the same seed gives the same
        views. rows: the images to make views of, a slice of the batch (all by default; n its
        length): the views are the whole batch's views of those rows (see ViewAugment)."""
        count, height, width, _ = images.shape
        drawn = [view.draw(rng, count, height, width) for view in (self.view_a, self.view_b)]
        images = to_float(images[rows])
        views = (
            view.apply(images, parameters.rows(rows))
            for view, parameters in zip((self.view_a, self.view_b), drawn, strict=True)
        )
        return tuple(to_channels_first(normalize(view, self.mean, self.std)) for view in views)

    def replace(self, **changes):
        """A copy with the ViewAugment fields in `changes` set in both views, for ablations:
        `augment.replace(jitter_p=0.0)` is the pipeline without colour jitter."""
        return TwoViewAugment(
            replace(self.view_a, **changes), replace(self.view_b, **changes), self.mean, self.std
        )


def paper(mean, std, size=32):
    """The augmentations of Barlow Twins (Zbontar et al., 2021, appendix; the official code).

    Both views: random resized crop of scale (0.08, 1) and ratio (3/4, 4/3), horizontal flip
    p = 0.5, colour jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1) p = 0.8,
    grayscale p = 0.2, Gaussian blur of sigma in (0.1, 2.0). Blur p = 1.0 for view 1 and 0.1
    for view 2; solarisation p = 0.0 for view 1 and 0.2 for view 2.
    """
    view_a = ViewAugment(size=size, blur_p=1.0, solarize_p=0.0)
    return TwoViewAugment(view_a, replace(view_a, blur_p=0.1, solarize_p=0.2), mean, std)


def cifar(mean, std, size=32):
    """The paper's augmentations changed as the literature changes them for 32x32 images.

    - crop scale (0.2, 1.0) instead of (0.08, 1.0): 8% of a 32x32 image is a 9x9 patch, often
      with nothing of the object left (the SimSiam-style CIFAR-10 recipes use 0.2);
    - no blur in either view: a sigma of up to 2 pixels wipes out most of a 32x32 image
      (solo-learn's CIFAR Barlow Twins recipe sets the blur probability to 0 for both views).
    Everything else is the paper's: flip 0.5, jitter (0.4, 0.4, 0.2, 0.1) with p = 0.8,
    grayscale 0.2, solarisation 0.0 for view 1 and 0.2 for view 2.
    """
    view_a = ViewAugment(size=size, crop_scale=(0.2, 1.0), blur_p=0.0, solarize_p=0.0)
    return TwoViewAugment(view_a, replace(view_a, solarize_p=0.2), mean, std)
