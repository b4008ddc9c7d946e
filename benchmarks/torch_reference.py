"""The same network in JAX and in PyTorch, timed on one machine: how efficient is each
framework's CPU training step and forward pass on a prediction network of MNAD's shape?

  python benchmarks/torch_reference.py --framework jax   --batch 2 --size 256
  python benchmarks/torch_reference.py --framework jax   --batch 2 --size 256 --layers flax
  python benchmarks/torch_reference.py --framework torch --batch 2 --size 256   # needs torch

The network has the shape of MNAD's frame predictor (Park et al. 2020; the PyTorch
reference of issue 12): four input frames stacked on channels, encoder blocks of two 3x3
convolutions with BatchNorm and ReLU at widths 64-128-256-512 with max pooling between,
a read from 10 memory items concatenated to the normalised bottleneck, decoder blocks with
2x2 stride-2 transposed convolutions (MNAD's are 3x3; 2x2 is what the dual-stream network
uses) and skip connections, and a tanh output frame. The JAX version computes its layers
with the project's ``dual_stream/conv.py`` (``model.conv_impl = auto``: ``mixed`` for
training on CPUs, ``native`` for inference) or, with ``--layers flax``, with plain
``flax.linen`` convolutions, transposed convolutions and max pooling. Both
versions are written here from that description, with the same layers in the same order;
a training step is an MSE loss, its gradients and an Adam update. It prints one line:
GFLOP per call counted by the framework (XLA's cost analysis, torch's FlopCounterMode),
median seconds over ``--steps`` timed calls after a warm-up, GFLOP/s, and the framework's
own 2048x2048 float32 matmul rate. Run each framework on a quiet machine, alternating.
"""

import argparse
import statistics
import time

WIDTHS = (64, 128, 256, 512)
ITEMS = 10
FRAMES, CHANNELS = 4, 3


def median_seconds(fn, steps: int) -> float:
  fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def run_jax(batch: int, size: int, steps: int, layers: str) -> dict[str, float]:
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import optax

  from vad_jax.dual_stream import conv as conv_lib  # also the project's XLA:CPU setting (vad_jax/xla_cpu.py)

  def conv(features, kernel, impl):
    if layers == "flax":
      return nn.Conv(features, kernel)
    return conv_lib.Conv(features, kernel, impl=impl)

  def upsample(features, impl):
    if layers == "flax":
      return nn.ConvTranspose(features, (2, 2), strides=(2, 2))
    return conv_lib.Upsample(features, impl=impl)

  def pool(x, impl):
    return nn.max_pool(x, (2, 2), (2, 2)) if layers == "flax" else conv_lib.max_pool2x2(x, impl)

  class Block(nn.Module):
    features: int
    last_relu: bool = True

    @nn.compact
    def __call__(self, x, train):
      for i in range(2):
        x = conv(self.features, (3, 3), conv_lib.resolve("auto", train=train))(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x) if (i == 0 or self.last_relu) else x
      return x

  class Up(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x, train):
      x = upsample(self.features, conv_lib.resolve("auto", train=train))(x)
      return nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train):
      impl = conv_lib.resolve("auto", train=train)
      s1 = Block(WIDTHS[0])(x, train)
      s2 = Block(WIDTHS[1])(pool(s1, impl), train)
      s3 = Block(WIDTHS[2])(pool(s2, impl), train)
      q = Block(WIDTHS[3], last_relu=False)(pool(s3, impl), train)
      memory = self.param("memory", lambda k: jax.random.normal(k, (ITEMS, WIDTHS[3])))
      memory = memory / jnp.linalg.norm(memory, axis=-1, keepdims=True)
      q = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
      read = jax.nn.softmax(q @ memory.T, axis=-1) @ memory
      y = Up(WIDTHS[2])(Block(WIDTHS[3])(jnp.concatenate([q, read], -1), train), train)
      y = Up(WIDTHS[1])(Block(WIDTHS[2])(jnp.concatenate([s3, y], -1), train), train)
      y = Up(WIDTHS[0])(Block(WIDTHS[1])(jnp.concatenate([s2, y], -1), train), train)
      y = Block(WIDTHS[0])(jnp.concatenate([s1, y], -1), train)
      return jnp.tanh(conv(CHANNELS, (3, 3), impl)(y))

  net = Net()
  x = jax.random.uniform(jax.random.key(0), (batch, size, size, FRAMES * CHANNELS), minval=-1, maxval=1)
  target = jax.random.uniform(jax.random.key(1), (batch, size, size, CHANNELS), minval=-1, maxval=1)
  variables = net.init(jax.random.key(2), x, False)
  tx = optax.adam(1e-4)
  opt_state = tx.init(variables["params"])

  def train_step(params, batch_stats, opt_state, x, target):
    def loss_fn(params):
      y, updates = net.apply({"params": params, "batch_stats": batch_stats}, x, True, mutable=["batch_stats"])
      return jnp.mean((y - target) ** 2), updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  forward = jax.jit(lambda v, x: net.apply(v, x, False)).lower(variables, x).compile()
  step = jax.jit(train_step).lower(variables["params"], variables["batch_stats"], opt_state, x, target).compile()

  def flops(program):
    analysis = program.cost_analysis()
    return float((analysis[0] if isinstance(analysis, (list, tuple)) else analysis)["flops"])

  args = (variables["params"], variables["batch_stats"], opt_state, x, target)
  a = jnp.ones((2048, 2048))
  matmul = jax.jit(jnp.dot)
  return {
    "forward GFLOP": flops(forward) / 1e9,
    "forward s": median_seconds(lambda: jax.block_until_ready(forward(variables, x)), steps),
    "train GFLOP": flops(step) / 1e9,
    "train s": median_seconds(lambda: jax.block_until_ready(step(*args)), steps),
    "matmul peak GFLOP/s": 2 * 2048**3 / median_seconds(lambda: jax.block_until_ready(matmul(a, a)), 5) / 1e9,
  }


def run_torch(batch: int, size: int, steps: int) -> dict[str, float]:
  import torch
  import torch.nn.functional as F
  from torch import nn
  from torch.utils.flop_counter import FlopCounterMode

  def block(c_in, c_out, last_relu=True):
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
    layers += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*(layers + [nn.ReLU()] if last_relu else layers))

  def up(c_in, c_out):
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, stride=2), nn.BatchNorm2d(c_out), nn.ReLU())

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      w = WIDTHS
      self.e1, self.e2 = block(FRAMES * CHANNELS, w[0]), block(w[0], w[1])
      self.e3, self.e4 = block(w[1], w[2]), block(w[2], w[3], last_relu=False)
      self.memory = nn.Parameter(torch.randn(ITEMS, w[3]))
      self.d4, self.u4 = block(2 * w[3], w[3]), up(w[3], w[2])
      self.d3, self.u3 = block(2 * w[2], w[2]), up(w[2], w[1])
      self.d2, self.u2 = block(2 * w[1], w[1]), up(w[1], w[0])
      self.d1, self.out = block(2 * w[0], w[0]), nn.Conv2d(w[0], CHANNELS, 3, padding=1)

    def forward(self, x):
      s1 = self.e1(x)
      s2 = self.e2(F.max_pool2d(s1, 2))
      s3 = self.e3(F.max_pool2d(s2, 2))
      q = F.normalize(self.e4(F.max_pool2d(s3, 2)), dim=1)
      memory = F.normalize(self.memory, dim=1)
      b, c, h, w = q.shape
      flat = q.permute(0, 2, 3, 1).reshape(-1, c)
      read = (torch.softmax(flat @ memory.t(), dim=1) @ memory).reshape(b, h, w, c).permute(0, 3, 1, 2)
      y = self.u4(self.d4(torch.cat([q, read], 1)))
      y = self.u3(self.d3(torch.cat([s3, y], 1)))
      y = self.u2(self.d2(torch.cat([s2, y], 1)))
      return torch.tanh(self.out(self.d1(torch.cat([s1, y], 1))))

  net = Net()
  x = torch.rand(batch, FRAMES * CHANNELS, size, size) * 2 - 1
  target = torch.rand(batch, CHANNELS, size, size) * 2 - 1
  optimizer = torch.optim.Adam(net.parameters(), 1e-4)

  def forward():
    with torch.no_grad():
      net.eval()
      return net(x)

  def train_step():
    net.train()
    optimizer.zero_grad(set_to_none=True)
    F.mse_loss(net(x), target).backward()
    optimizer.step()

  with FlopCounterMode(display=False) as counter:
    forward()
  forward_flops = counter.get_total_flops()
  with FlopCounterMode(display=False) as counter:
    train_step()
  train_flops = counter.get_total_flops()
  a = torch.ones(2048, 2048)
  return {
    "forward GFLOP": forward_flops / 1e9,
    "forward s": median_seconds(forward, steps),
    "train GFLOP": train_flops / 1e9,
    "train s": median_seconds(train_step, steps),
    "matmul peak GFLOP/s": 2 * 2048**3 / median_seconds(lambda: a @ a, 5) / 1e9,
    "threads": float(torch.get_num_threads()),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--framework", choices=("jax", "torch"), required=True)
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--layers", choices=("project", "flax"), default="project", help="JAX only: the layers' code")
  args = parser.parse_args()
  if args.framework == "jax":
    result = run_jax(args.batch, args.size, args.steps, args.layers)
  else:
    result = run_torch(args.batch, args.size, args.steps)
  result["forward GFLOP/s"] = result["forward GFLOP"] / result["forward s"]
  result["train GFLOP/s"] = result["train GFLOP"] / result["train s"]
  name = f"jax ({args.layers} layers)" if args.framework == "jax" else "torch"
  print(
    f"{name} batch {args.batch} {args.size}x{args.size}: "
    + ", ".join(f"{k} {v:.3f}" if v < 10 else f"{k} {v:.1f}" for k, v in result.items())
  )


if __name__ == "__main__":
  main()
