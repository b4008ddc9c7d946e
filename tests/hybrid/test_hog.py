"""JAX HOG against scikit-image's ``hog`` on real and synthetic images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data, feature, transform

from vad_jax.hybrid.hog import hog, hog_feature_size, rgb_to_gray


def _images():
  cam = data.camera()
  yy, xx = np.mgrid[0:40, 0:48].astype(np.float32)
  # Smooth ramp plus a bright disc: every orientation appears on the disc boundary.
  synthetic = 0.01 * xx + 0.02 * yy + 0.5 * (((yy - 20) ** 2 + (xx - 22) ** 2) < 120)
  return {
    # float32 crop resized like the pipeline does (anti-aliased resample of a real photo)
    "camera_resized": transform.resize(cam[64:320, 128:384], (64, 64), anti_aliasing=True).astype(np.float32),
    # raw uint8 crop, odd size (pixels outside whole cells are ignored by both)
    "camera_uint8": cam[200:250, 300:343],
    "synthetic": synthetic.astype(np.float32),
  }


IMAGES = _images()


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize(
  "block_norm,cells_per_block",
  [("L2-Hys", (2, 2)), ("L2-Hys", (3, 3)), ("L1", (2, 2)), ("L2", (2, 2))],
)
def test_hog_matches_skimage(name, block_norm, cells_per_block):
  image = IMAGES[name]
  kwargs = dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=cells_per_block, block_norm=block_norm)
  expected = feature.hog(image, transform_sqrt=False, **kwargs)
  got = np.asarray(hog(jnp.asarray(image), **kwargs))
  assert got.shape == expected.shape
  assert np.abs(expected).max() > 0.05  # a real, non-degenerate descriptor
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-6)


def test_hog_other_geometry_matches_skimage():
  image = IMAGES["camera_uint8"]
  kwargs = dict(orientations=6, pixels_per_cell=(6, 5), cells_per_block=(2, 3), block_norm="L2-Hys")
  expected = feature.hog(image, feature_vector=False, **kwargs)
  got = np.asarray(hog(jnp.asarray(image), feature_vector=False, **kwargs))
  assert got.shape == expected.shape
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-6)


def test_hog_batches_under_vmap_and_leading_axes():
  a = IMAGES["camera_resized"]
  b = np.flipud(a).copy()
  stack = jnp.stack([a, b])
  single = [np.asarray(hog(jnp.asarray(x), cells_per_block=(2, 2))) for x in (a, b)]
  vmapped = np.asarray(jax.vmap(lambda x: hog(x, cells_per_block=(2, 2)))(stack))
  batched = np.asarray(hog(stack[None], cells_per_block=(2, 2)))  # [1, 2, d]
  np.testing.assert_allclose(vmapped, np.stack(single), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(batched[0], np.stack(single), rtol=1e-6, atol=1e-7)
  assert not np.allclose(single[0], single[1])


def test_baseline_hog_size_and_errors():
  assert hog_feature_size(128, 128, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) == 8100
  out = jax.eval_shape(lambda x: hog(x, cells_per_block=(2, 2)), jax.ShapeDtypeStruct((3, 128, 128), jnp.float32))
  assert out.shape == (3, 8100)
  with pytest.raises(ValueError, match="too small"):
    hog(jnp.zeros((10, 10)), cells_per_block=(2, 2))
  with pytest.raises(ValueError, match="block_norm"):
    hog(jnp.zeros((32, 32)), block_norm="L3")


def test_rgb_to_gray_matches_skimage():
  from skimage.color import rgb2gray

  rgb = data.astronaut()[:16, :16].astype(np.float32) / 255.0
  np.testing.assert_allclose(np.asarray(rgb_to_gray(jnp.asarray(rgb))), rgb2gray(rgb), atol=1e-6)
