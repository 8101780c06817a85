"""Augmentations: each transform against an independent reference, the random parameters
against their distributions, and the two-view pipeline's per-view probabilities.

PIL works on uint8 and rounds or truncates after each step, so comparisons with it allow about
one grey level (1/255); references written here in float64 are matched to float32 precision.
Statistical checks use fixed seeds and bounds of at least 4 standard errors.
"""

import colorsys
import itertools
import math

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from tinybt import augment, backend
from tinybt.errors import TinyBTError

from .conftest import assert_close

LEVEL = 1 / 255  # one grey level of a uint8 image


def random_uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def host(images):
    return backend.to_host(images).astype(np.float64)


def pil(image_uint8):
    return Image.fromarray(image_uint8)


def pil_float(image):
    return np.asarray(image, dtype=np.float64) / 255


# Conversions.


def test_to_model_input_is_normalised_channel_first_float32(xp):
    images = random_uint8((2, 5, 7, 3))
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.25, 0.3])
    out = augment.to_model_input(images, mean, std)
    assert isinstance(out, xp.ndarray) and out.dtype == np.float32 and out.shape == (2, 3, 5, 7)
    expected = ((images / 255 - mean) / std).transpose(0, 3, 1, 2)
    assert_close(out, expected, rtol=1e-5, atol=1e-5)


# Colour, against PIL and colorsys.


def test_grayscale_matches_pil():
    images = random_uint8((3, 8, 9, 3))
    out = host(augment.grayscale(augment.to_float(images)))
    for n in range(3):
        reference = pil_float(ImageOps.grayscale(pil(images[n])))
        for channel in range(3):
            assert_close(out[n, ..., channel], reference, atol=LEVEL)


@pytest.mark.exercise("color-jitter")
@pytest.mark.parametrize(
    "adjust, enhancer, tolerance",
    [
        # PIL blends with black and truncates to an integer.
        (augment.adjust_brightness, ImageEnhance.Brightness, LEVEL),
        # PIL blends with the mean of its rounded grey image, itself rounded: +1/2 level * |1-f|.
        (augment.adjust_contrast, ImageEnhance.Contrast, 1.5 * LEVEL),
        # PIL blends with its rounded grey image: +1/2 level * |1-f|.
        (augment.adjust_saturation, ImageEnhance.Color, 1.5 * LEVEL),
    ],
)
def test_brightness_contrast_saturation_match_pil(adjust, enhancer, tolerance):
    images = random_uint8((4, 8, 8, 3), seed=1)
    factors = np.array([0.6, 0.9, 1.2, 1.4])  # one per image, all applied in one call
    out = host(adjust(augment.to_float(images), factors))
    for n, factor in enumerate(factors):
        reference = pil_float(enhancer(pil(images[n])).enhance(factor))
        assert_close(out[n], reference, rtol=0, atol=tolerance, what=f"factor {factor}")


def colorsys_hue_shift(pixel, shift):
    hue, saturation, value = colorsys.rgb_to_hsv(*pixel)
    return colorsys.hsv_to_rgb((hue + shift) % 1, saturation, value)


def test_hue_shift_matches_colorsys(xp):
    pixels = np.random.default_rng(2).uniform(size=(4, 1, 6, 3))
    pixels[0, 0, :3] = [[0.5, 0.5, 0.5], [1, 0, 0], [0, 0, 0]]  # grey, pure red, black
    shifts = np.array([-0.1, 0.05, 0.3, -0.5])
    out = host(augment.adjust_hue(xp.asarray(pixels, dtype=xp.float32), shifts))
    for n, shift in enumerate(shifts):
        for p in range(6):
            expected = colorsys_hue_shift(pixels[n, 0, p], shift)
            np.testing.assert_allclose(out[n, 0, p], expected, atol=2e-6, err_msg=f"{n}, {p}")


def test_hsv_conversions_match_colorsys_and_invert_each_other(xp):
    pixels = np.random.default_rng(3).uniform(size=(50, 3))
    pixels[:3] = [[0.2, 0.2, 0.2], [0, 1, 0], [0.1, 0.3, 0.3]]  # grey, pure green, a tie
    hsv = host(augment.rgb_to_hsv(xp.asarray(pixels, dtype=xp.float32)))
    expected = np.array([colorsys.rgb_to_hsv(*pixel) for pixel in pixels])
    hue_gap = np.abs(hsv[:, 0] - expected[:, 0])
    np.testing.assert_allclose(np.minimum(hue_gap, 1 - hue_gap), 0, atol=2e-6)  # hue is circular
    np.testing.assert_allclose(hsv[:, 1:], expected[:, 1:], atol=2e-6)
    back = host(augment.hsv_to_rgb(xp.asarray(hsv, dtype=xp.float32)))
    np.testing.assert_allclose(back, pixels, atol=2e-6)


def test_solarize_matches_pil():
    images = random_uint8((2, 16, 16, 3), seed=4)
    out = host(augment.solarize(augment.to_float(images)))
    for n in range(2):
        assert_close(out[n], pil_float(ImageOps.solarize(pil(images[n]), threshold=128)), atol=1e-6)


# Blur.


def direct_gaussian_blur(image, sigma, kernel_size):
    """The 2-D convolution written out: a (K, K) Gaussian over the mirrored image, float64."""
    radius = kernel_size // 2
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-(taps[:, None] ** 2 + taps[None, :] ** 2) / (2 * sigma**2))
    kernel /= kernel.sum()
    padded = np.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    height, width, _ = image.shape
    out = np.zeros_like(image)
    for dy, dx in itertools.product(range(kernel_size), repeat=2):
        out += kernel[dy, dx] * padded[dy : dy + height, dx : dx + width]
    return out


@pytest.mark.parametrize("height, width, kernel_size", [(12, 16, 13), (6, 5, 13), (9, 9, 3)])
def test_blur_matches_a_direct_2d_convolution(xp, height, width, kernel_size):
    # (6, 5) with 13 taps: the mirror folds more than once, as numpy's "reflect" padding does.
    images = np.random.default_rng(5).uniform(size=(3, height, width, 3))
    sigmas = np.array([0.3, 1.0, 2.0])
    out = augment.blur(xp.asarray(images, dtype=xp.float32), sigmas, kernel_size)
    for n, sigma in enumerate(sigmas):
        expected = direct_gaussian_blur(images[n], sigma, kernel_size)
        assert_close(host(out)[n], expected, rtol=0, atol=1e-5, what=f"sigma {sigma}")


def test_blur_is_close_to_pil_gaussian_blur_inside_the_image():
    # PIL approximates a Gaussian by repeated box blurs and rounds: compare loosely, away from
    # the edges (PIL repeats the edge pixel where tinybt mirrors).
    images = random_uint8((2, 40, 40, 3), seed=6)
    sigmas = np.array([1.0, 2.0])
    out = host(augment.blur(augment.to_float(images), sigmas, 17))
    for n, sigma in enumerate(sigmas):
        reference = pil_float(pil(images[n]).filter(ImageFilter.GaussianBlur(float(sigma))))
        gap = np.abs(out[n] - reference)[8:-8, 8:-8]
        assert gap.mean() < 1.5 * LEVEL and gap.max() < 6 * LEVEL, (gap.mean(), gap.max())


def test_blur_rejects_an_even_kernel():
    with pytest.raises(TinyBTError, match="odd"):
        augment.blur(augment.to_float(random_uint8((1, 4, 4, 3))), np.array([1.0]), 4)


# Crop and resize.


def test_resized_crop_matches_pil_bilinear_when_upsampling():
    images = random_uint8((3, 20, 24, 3), seed=7)
    top, left = np.array([2, 0, 5]), np.array([3, 0, 7])
    box_height, box_width = np.array([10, 20, 8]), np.array([12, 24, 8])
    out = host(augment.resized_crop(augment.to_float(images), top, left, box_height, box_width, 24))
    assert out.shape == (3, 24, 24, 3)
    for n in range(3):
        box = (left[n], top[n], left[n] + box_width[n], top[n] + box_height[n])
        reference = pil_float(pil(images[n]).resize((24, 24), Image.BILINEAR, box=box))
        assert_close(out[n], reference, rtol=0, atol=1.5 * LEVEL, what=f"box {box}")


def test_resized_crop_of_the_whole_image_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    images = random_uint8((2, 10, 10, 3), seed=8)
    whole = np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64), np.full(2, 10), np.full(2, 10)
    out = host(augment.resized_crop(augment.to_float(images), *whole, 25))
    nchw = torch.tensor(images / 255, dtype=torch.float64).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(nchw, size=25, mode="bilinear", align_corners=False)
    assert_close(out, expected.permute(0, 2, 3, 1).numpy(), rtol=0, atol=1e-6)


def test_resized_crop_of_the_whole_image_at_its_size_is_the_identity():
    images = augment.to_float(random_uint8((2, 9, 9, 3), seed=9))
    whole = np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64), np.full(2, 9), np.full(2, 9)
    assert_close(augment.resized_crop(images, *whole, 9), images, atol=1e-6)


def torchvision_crop_box(rng, height, width, scale, ratio):
    """torchvision's RandomResizedCrop.get_params, written as its scalar loop."""
    area = height * width
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.integers(0, height - h + 1), rng.integers(0, width - w + 1), h, w
    if width / height < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif width / height > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def ks_distance(first, second):
    """Largest gap between two empirical distribution functions (two-sample Kolmogorov-Smirnov)."""
    values = np.sort(np.concatenate([first, second]))
    cdf = [np.searchsorted(np.sort(sample), values, side="right") / len(sample)
           for sample in (first, second)]  # fmt: skip
    return np.abs(cdf[0] - cdf[1]).max()


def test_crop_boxes_follow_torchvision_distribution():
    # A 24x40 image, so that boxes often do not fit and the retries shape the distribution.
    count, height, width, scale, ratio = 20000, 24, 40, (0.08, 1.0), (3 / 4, 4 / 3)
    top, left, box_height, box_width = augment.crop_boxes(
        np.random.default_rng(10), count, height, width, scale, ratio
    )
    assert (top >= 0).all() and (top + box_height <= height).all()
    assert (left >= 0).all() and (left + box_width <= width).all()

    reference_rng = np.random.default_rng(11)
    reference = np.array(
        [torchvision_crop_box(reference_rng, height, width, scale, ratio) for _ in range(count)]
    )
    # Two samples of 20,000 from one distribution: KS distance < 0.02 with p > 0.999.
    ours_area = box_height * box_width / (height * width)
    reference_area = reference[:, 2] * reference[:, 3] / (height * width)
    assert ks_distance(ours_area, reference_area) < 0.02
    assert ks_distance(box_width / box_height, reference[:, 3] / reference[:, 2]) < 0.02
    # Where the box sits in the room left for it: uniform for both.
    position = top / np.maximum(height - box_height, 1)
    reference_position = reference[:, 0] / np.maximum(height - reference[:, 2], 1)
    assert ks_distance(position, reference_position) < 0.02


def test_crop_area_stays_in_the_scale_range():
    top, left, box_height, box_width = augment.crop_boxes(
        np.random.default_rng(12), 5000, 224, 224, scale=(0.2, 1.0)
    )
    area = box_height * box_width / 224**2
    assert area.min() > 0.2 - 0.005 and area.max() <= 1.0  # rounding to whole pixels
    # Accepted boxes lean towards small areas (large ones often do not fit), but every tenth
    # of the range is reached.
    counts = np.histogram(area, bins=np.linspace(0.2, 1.0, 9))[0]
    assert (counts > 100).all(), counts


def test_crop_boxes_fall_back_to_the_centre_when_nothing_fits():
    # A 4x64 strip: a box of 90% of its area has sides of about 15, never within 4 rows.
    top, left, box_height, box_width = augment.crop_boxes(
        np.random.default_rng(13), 5, 4, 64, scale=(0.9, 1.0)
    )
    assert box_height.tolist() == [4] * 5 and box_width.tolist() == [5] * 5  # ratio 4/3 at most
    assert top.tolist() == [0] * 5 and left.tolist() == [(64 - 5) // 2] * 5


# Random application rates.


def rate_within(observed, p, count, standard_errors=4.5):
    return abs(observed.mean() - p) <= standard_errors * math.sqrt(p * (1 - p) / count) + 1e-12


def test_horizontal_flip_rate_and_result(xp):
    count = 4000
    images = xp.asarray(np.tile([[[[0.0] * 3, [1.0] * 3]]], (count, 1, 1, 1)), dtype=xp.float32)
    out = host(augment.horizontal_flip(images, np.random.default_rng(14), p=0.5))
    flipped = out[:, 0, 0, 0] == 1
    assert rate_within(flipped, 0.5, count)
    np.testing.assert_array_equal(out[flipped], host(images)[flipped][:, :, ::-1])
    np.testing.assert_array_equal(out[~flipped], host(images)[~flipped])


@pytest.mark.parametrize("p", [0.0, 0.2, 1.0])
def test_grayscale_and_solarize_rates(xp, p):
    count = 4000
    red = xp.asarray(np.tile([0.75, 0.1, 0.1], (count, 1, 1, 1)), dtype=xp.float32)
    grey = host(augment.random_grayscale(red, np.random.default_rng(15), p))
    assert rate_within(grey[:, 0, 0, 0] == grey[:, 0, 0, 1], p, count)
    solarized = host(augment.random_solarize(red, np.random.default_rng(16), p))
    assert rate_within(np.isclose(solarized[:, 0, 0, 0], 0.25), p, count)


def test_gaussian_blur_rate(xp):
    count = 4000
    impulse = np.zeros((count, 5, 5, 3))
    impulse[:, 2, 2] = 1
    out = augment.gaussian_blur(
        xp.asarray(impulse, dtype=xp.float32), np.random.default_rng(17), p=0.1, sigma=(1, 2)
    )
    blurred = host(out)[:, 2, 2, 0] < 0.99
    assert rate_within(blurred, 0.1, count)


def test_jitter_parameters_follow_their_distributions():
    count = 24000
    chosen, factors, order = augment.jitter_parameters(
        np.random.default_rng(18), count, brightness=0.4, contrast=0.4, saturation=0.2,
        hue=0.1, p=0.8,
    )  # fmt: skip
    assert rate_within(chosen, 0.8, count)
    for index, (low, high) in enumerate([(0.6, 1.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1)]):
        values = factors[index]
        assert low <= values.min() and values.max() <= high
        # U(low, high): mean in the middle, a quarter of the values in each quarter.
        assert abs(values.mean() - (low + high) / 2) < 4.5 * (high - low) / math.sqrt(12 * count)
        quarters = np.histogram(values, bins=np.linspace(low, high, 5))[0] / count
        assert np.abs(quarters - 0.25).max() < 0.015, quarters
    assert (np.sort(order, axis=1) == np.arange(4)).all()  # every row a permutation
    permutations = np.unique(order, axis=0, return_counts=True)[1]
    assert len(permutations) == 24 and np.abs(permutations / count - 1 / 24).max() < 0.006


def test_apply_jitter_applies_each_images_own_order(xp):
    images = np.random.default_rng(19).uniform(size=(6, 4, 4, 3))
    chosen = np.array([True, True, True, True, True, False])
    factors = np.array([[0.7, 1.3, 1.0, 1.2, 0.9, 0.5],  # brightness
                        [1.3, 0.6, 1.1, 0.8, 1.4, 0.5],  # contrast
                        [0.8, 1.2, 0.9, 1.1, 1.0, 0.5],  # saturation
                        [0.1, -0.1, 0.05, 0.0, -0.07, 0.3]])  # hue  # fmt: skip
    order = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2], [3, 0, 1, 2],
                      [0, 1, 2, 3]])  # fmt: skip
    out = host(augment.apply_jitter(xp.asarray(images, dtype=xp.float32), chosen, factors, order))
    for n in range(6):
        expected = xp.asarray(images[n : n + 1], dtype=xp.float32)
        for index in order[n] if chosen[n] else []:
            expected = augment.JITTERS[index](expected, factors[index, n : n + 1])
        assert_close(out[n], host(expected)[0], atol=1e-6, what=f"image {n}")
    # The order matters: hue then saturation is not saturation then hue.
    first = augment.adjust_saturation(augment.adjust_hue(expected, [0.2]), [0.3])
    second = augment.adjust_hue(augment.adjust_saturation(expected, [0.3]), [0.2])
    assert np.abs(host(first) - host(second)).max() > 0.01


@pytest.mark.exercise("color-jitter")
def test_color_jitter_brightness_alone_scales_by_a_uniform_factor(xp):
    count = 4000
    grey = xp.full((count, 2, 2, 3), 0.5, dtype=xp.float32)
    out = augment.color_jitter(grey, np.random.default_rng(20), 0.4, 0, 0, 0, p=1.0)
    factor = host(out)[:, 0, 0, 0] / 0.5
    assert 0.6 - 1e-6 <= factor.min() and factor.max() <= 1.4 + 1e-6
    assert abs(np.median(factor) - 1.0) < 0.03


# The two-view pipeline.


def test_presets_hold_the_papers_numbers():
    paper = augment.paper((0.5,) * 3, (0.2,) * 3)
    for view in (paper.view_a, paper.view_b):
        assert view.crop_scale == (0.08, 1.0) and view.flip_p == 0.5 and view.jitter_p == 0.8
        assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.4, 0.4, 0.2, 0.1)
        assert view.grayscale_p == 0.2 and view.blur_sigma == (0.1, 2.0)
    assert (paper.view_a.blur_p, paper.view_b.blur_p) == (1.0, 0.1)
    assert (paper.view_a.solarize_p, paper.view_b.solarize_p) == (0.0, 0.2)
    cifar = augment.cifar((0.5,) * 3, (0.2,) * 3)
    assert cifar.view_a.crop_scale == (0.2, 1.0) and cifar.view_b.crop_scale == (0.2, 1.0)
    assert (cifar.view_a.blur_p, cifar.view_b.blur_p) == (0.0, 0.0)
    assert (cifar.view_a.solarize_p, cifar.view_b.solarize_p) == (0.0, 0.2)


def detector_images(count, size=16):
    """Left half a checkerboard of 0 and 0.4 (blur smooths it, solarisation leaves it), right
    half 0.75 (solarisation turns it to 0.25, blur leaves it: the kernel sees only 0.75)."""
    images = np.full((count, size, size, 3), 0.75)
    rows, columns = np.indices((size, size // 2))
    images[:, :, : size // 2] = (0.4 * ((rows + columns) % 2))[None, :, :, None]
    return np.round(images * 255).astype(np.uint8)


@pytest.mark.parametrize(
    "preset, blur_rates, solarize_rates",
    [("paper", (1.0, 0.1), (0.0, 0.2)), ("cifar", (0.0, 0.0), (0.0, 0.2))],
)
def test_each_view_blurs_and_solarises_at_its_own_rate(preset, blur_rates, solarize_rates):
    count = 2000
    # Everything else off, and sigma at least 1 pixel, so blur is visible where it happened.
    pipeline = getattr(augment, preset)(np.zeros(3), np.ones(3), size=16).replace(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
        grayscale_p=0.0, blur_sigma=(1.0, 2.0),
    )  # fmt: skip
    images = detector_images(count)
    views = pipeline(images, np.random.default_rng(21))
    for view, blur_p, solarize_p in zip(views, blur_rates, solarize_rates, strict=True):
        view = host(view)  # (N, 3, 16, 16), normalised with mean 0 and std 1: plain [0, 1]
        blurred = np.abs(view[:, 0, 8, 3] - images[:, 8, 3, 0] / 255) > 0.01
        solarized = np.isclose(view[:, 0, 8, 15], 1 - 191 / 255, atol=1e-4)
        assert rate_within(blurred, blur_p, count), blurred.mean()
        assert rate_within(solarized, solarize_p, count), solarized.mean()


@pytest.mark.parametrize("preset", ["paper", "cifar"])
def test_pipeline_output_shape_range_and_determinism(xp, preset):
    images = random_uint8((16, 32, 32, 3), seed=22)
    mean, std = np.array([0.49, 0.48, 0.45]), np.array([0.25, 0.24, 0.26])
    pipeline = getattr(augment, preset)(mean, std)
    view_a, view_b = pipeline(images, backend.rng(0))
    for view in (view_a, view_b):
        assert isinstance(view, xp.ndarray) and view.dtype == np.float32
        assert view.shape == (16, 3, 32, 32)
        unnormalised = host(view) * std[:, None, None] + mean[:, None, None]
        assert unnormalised.min() > -1e-5 and unnormalised.max() < 1 + 1e-5
    assert np.abs(host(view_a) - host(view_b)).mean() > 0.1  # two different views

    again_a, again_b = pipeline(images, backend.rng(0))
    assert_close(again_a, view_a, rtol=0, atol=0)
    assert_close(again_b, view_b, rtol=0, atol=0)
    other_a, _ = pipeline(images, backend.rng(1))
    assert np.abs(host(other_a) - host(view_a)).mean() > 0.1


def test_switched_off_pipeline_only_normalises():
    images = random_uint8((8, 12, 12, 3), seed=23)
    mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.2, 0.3, 0.25])
    pipeline = augment.paper(mean, std, size=12).replace(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
        grayscale_p=0.0, blur_p=0.0, solarize_p=0.0,
    )  # fmt: skip
    view_a, view_b = pipeline(images, np.random.default_rng(24))
    expected = augment.to_model_input(images, mean, std)
    assert_close(view_a, expected, rtol=0, atol=1e-5)
    assert_close(view_b, expected, rtol=0, atol=1e-5)


def test_shuffle_pixels_moves_every_images_pixels_alike():
    # channel 0 holds each pixel's position, channel 1 the image's index, channel 2 noise
    count, height, width = 5, 4, 6
    images = random_uint8((count, height, width, 3), seed=21)
    images[..., 0] = np.arange(height * width).reshape(height, width)
    images[..., 1] = np.arange(count)[:, None, None]
    shuffled = augment.shuffle_pixels(images, np.random.default_rng(22))
    assert shuffled.shape == images.shape and shuffled.dtype == np.uint8
    moved_from = shuffled[..., 0].reshape(count, -1)  # where each output pixel came from
    assert (moved_from == moved_from[0]).all(), "every image must be shuffled alike"
    assert sorted(moved_from[0]) == list(range(height * width))
    assert (moved_from[0] != np.arange(height * width)).any()
    np.testing.assert_array_equal(shuffled[..., 1], images[..., 1])  # no mixing of images
    noise = images[..., 2].reshape(count, -1)  # a pixel's channels move together
    np.testing.assert_array_equal(shuffled[..., 2].reshape(count, -1), noise[:, moved_from[0]])
    # a generator of the same seed shuffles another split alike
    again = augment.shuffle_pixels(images[:2], np.random.default_rng(22))
    np.testing.assert_array_equal(again, shuffled[:2])


@pytest.mark.parametrize("preset", ["paper", "cifar"])
def test_a_slice_of_the_batch_gets_exactly_the_whole_batchs_views_of_it(preset):
    """Processes that share a batch each make views of their own rows, drawing the whole
    batch's parameters: every slice's views are the whole batch's views of its rows, bit for
    bit, and the generator ends where the whole batch leaves it."""
    images = random_uint8((12, 32, 32, 3), seed=25)
    pipeline = getattr(augment, preset)(np.array([0.5, 0.4, 0.3]), np.array([0.2, 0.3, 0.25]))
    whole_rng = np.random.default_rng(26)
    whole = pipeline(images, whole_rng)
    for rows in (slice(0, 6), slice(6, 12), slice(3, 7)):
        rng = np.random.default_rng(26)
        for view, expected in zip(pipeline(images, rng, rows), whole, strict=True):
            assert_close(view, expected[rows], rtol=0, atol=0, what=f"rows {rows}")
        assert rng.bit_generator.state == whole_rng.bit_generator.state


def test_a_view_is_its_random_transforms_one_after_the_other(xp):
    """ViewAugment draws all its parameters first and then applies them, yet makes exactly
    the view of applying the random transforms in turn to the same generator."""
    images = augment.to_float(random_uint8((10, 16, 16, 3), seed=27))
    view = augment.ViewAugment(size=12, blur_p=0.5, solarize_p=0.5)
    rng = np.random.default_rng(28)
    expected = augment.random_resized_crop(images, rng, 12, view.crop_scale, view.crop_ratio)
    expected = augment.horizontal_flip(expected, rng, view.flip_p)
    expected = augment.color_jitter(expected, rng, 0.4, 0.4, 0.2, 0.1, view.jitter_p)
    expected = augment.random_grayscale(expected, rng, view.grayscale_p)
    expected = augment.gaussian_blur(expected, rng, 0.5, view.blur_sigma, view.blur_kernel_size)
    expected = augment.random_solarize(expected, rng, 0.5)
    assert_close(view(images, np.random.default_rng(28)), expected, rtol=0, atol=0)
