"""Memory enhancement module (Eqs. 5-8), its discretization loss terms (Eq. 10) and
memory distance (Eq. 15).

Queries are the ``K = height * width`` feature vectors of each image; memory items are
``M`` unit vectors of the same width. Items are not parameters: they live in their own
variable collection ``"memory"``, receive no gradient, and are rewritten by the update
rule (Eqs. 7-8) when the module is applied with ``update=True`` and the collection is
mutable.

Every reduction over queries runs over the whole global batch, so under ``jax.jit`` the
update is the same whatever the batch sharding: XLA inserts the cross-device
reductions (tested on 1 vs 8 devices).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = Any

MEMORY_COLLECTION = "memory"


def l2_normalize(x: Array, axis: int = -1, eps: float = 1e-12) -> Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps))


def read_memory(queries: Array, items: Array) -> tuple[Array, Array]:
  """Memory read, Eqs. (5)-(6).

  Args:
    queries: ``[..., channels]`` unit vectors.
    items: ``[items, channels]`` unit vectors.

  Returns:
    ``(read, similarity)``: the softmax-over-items weighted sum of items for each query
    (``[..., channels]``) and the cosine similarity matrix (``[..., items]``).
  """
  similarity = jnp.einsum("...c,mc->...m", queries, items)
  weights = jax.nn.softmax(similarity, axis=-1)  # Eq. (5): over the M items
  return jnp.einsum("...m,mc->...c", weights, items), similarity  # Eq. (6)


def update_memory(queries: Array, items: Array) -> Array:
  """Memory update, Eqs. (7)-(8).

  For each item ``m``: ``v[k, m]`` is the softmax over all queries ``k`` of the cosine
  similarity (Eq. 7); ``U_m`` are the queries whose nearest item is ``m``; their weights
  are normalised by the largest ``v[:, m]`` (the normalisation of the reference memory
  implementation of Park et al., which this paper follows), and
  ``p_m <- normalize(p_m + sum_{k in U_m} v'[k, m] q_k)`` (Eq. 8).

  Args:
    queries: ``[..., channels]`` unit vectors; all leading axes are pooled (the whole
      global batch).
    items: ``[items, channels]``.

  Returns:
    The updated items ``[items, channels]``.
  """
  q = queries.reshape(-1, queries.shape[-1])
  # Item-major [M, K]: the reductions over queries run along the contiguous axis.
  similarity = items @ q.T
  v = jax.nn.softmax(similarity, axis=1)  # Eq. (7): over the K queries
  nearest = jax.nn.one_hot(jnp.argmax(similarity, axis=0), items.shape[0], dtype=q.dtype, axis=0)  # U_m
  v_norm = v * nearest / jnp.max(v, axis=1, keepdims=True)
  return l2_normalize(items + v_norm @ q)  # Eq. (8)


def nearest_items(similarity: Array, k: int) -> list[Array]:
  """Indices of the ``k`` most similar items, nearest first: ``k`` arrays of shape
  ``similarity.shape[:-1]``. The same indices as ``jax.lax.top_k`` (ties go to the lower
  index), found by ``k`` arg-maxima over the items, which XLA:CPU runs much faster than
  the sort it uses for ``top_k``."""
  nearest = []
  for _ in range(k):
    index = jnp.argmax(similarity, axis=-1)
    nearest.append(index)
    similarity = jnp.where(jax.nn.one_hot(index, similarity.shape[-1], dtype=bool), -jnp.inf, similarity)
  return nearest


def memory_losses(
  queries: Array, items: Array, similarity: Array, margin_a: float, margin_b: float, hinge: bool = True
) -> dict[str, Array]:
  """Per-example feature discretization loss (Eq. 10) and memory distance (Eq. 15).

  Args:
    queries: ``[batch, K, channels]`` unit vectors.
    items: ``[items, channels]`` unit vectors (at least 3).
    similarity: ``[batch, K, items]`` cosine similarities of ``queries`` and ``items``.
    margin_a, margin_b: the margins ``a`` and ``b`` of Eq. (10).
    hinge: clamp each bracket of Eq. (10) at zero (the triplet-margin reading).

  Returns:
    ``discretization``: ``[batch]`` mean over queries of Eq. (10)'s summand;
    ``distance``: ``[batch]`` Eq. (15), mean over queries of ``||q - p_nearest||``.
  """
  p, n1, n2 = (jnp.take(items, i, axis=0) for i in nearest_items(similarity, 3))
  sq = lambda x: jnp.sum(x * x, axis=-1)
  d_p, d_n1 = sq(queries - p), sq(queries - n1)
  pull = d_p - d_n1 + margin_a
  spread = d_p - jnp.sqrt(sq(n2 - n1) + 1e-12) + margin_b
  if hinge:
    pull, spread = jax.nn.relu(pull), jax.nn.relu(spread)
  distance = jnp.sqrt(jnp.maximum(jax.lax.stop_gradient(d_p), 0.0))
  return {"discretization": jnp.mean(pull + spread, axis=1), "distance": jnp.mean(distance, axis=1)}


class Memory(nn.Module):
  """Memory module on one feature map.

  Input ``[batch, height, width, channels]``. Returns ``(output, aux)`` where ``output``
  is the concatenation of the normalised query and the memory read
  (``[batch, height, width, 2 * channels]``) or the read alone (``concat_query=False``),
  and ``aux`` holds ``discretization`` and ``distance`` (``[batch]`` each).
  """

  num_items: int = 20
  margin_a: float = 2.0
  margin_b: float = 1.0
  hinge: bool = True
  concat_query: bool = True

  @nn.compact
  def __call__(self, features: Array, *, update: bool) -> tuple[Array, dict[str, Array]]:
    if features.ndim != 4:
      raise ValueError(f"Memory expects [batch, height, width, channels], got shape {features.shape}")
    b, h, w, c = features.shape
    items_var = self.variable(
      MEMORY_COLLECTION,
      "items",
      lambda: l2_normalize(jax.random.normal(self.make_rng("params"), (self.num_items, c), jnp.float32)),
    )
    items = jax.lax.stop_gradient(items_var.value)
    queries = l2_normalize(features.astype(jnp.float32)).reshape(b, h * w, c)
    read, similarity = read_memory(queries, items)
    aux = memory_losses(queries, items, similarity, self.margin_a, self.margin_b, self.hinge)
    if update and not self.is_initializing():
      if not self.is_mutable_collection(MEMORY_COLLECTION):
        raise ValueError(
          "Memory update requested but the 'memory' collection is not mutable; "
          "apply the model with mutable=[..., 'memory']."
        )
      items_var.value = update_memory(jax.lax.stop_gradient(queries), items)
    out = jnp.concatenate([queries, read], axis=-1) if self.concat_query else read
    return out.reshape(b, h, w, -1).astype(features.dtype), aux
