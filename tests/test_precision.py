"""``model.dtype``: ``auto`` resolved per backend and CPU, with the reason said."""

import jax.numpy as jnp
import pytest

from vad_jax import precision

X86_ZEN5 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
X86_OLD = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
ARM_V86 = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm sve\n"


def test_cpu_flags_are_read_from_x86_and_arm_cpuinfo():
  assert "avx512_bf16" in precision.cpu_flags(X86_ZEN5)
  assert "bf16" in precision.cpu_flags(ARM_V86)
  assert precision.cpu_flags("model name : no flags here\n") == frozenset()


@pytest.mark.parametrize("cpuinfo", [X86_ZEN5, ARM_V86])
def test_auto_is_bfloat16_on_a_cpu_with_bfloat16_dot_products(cpuinfo, monkeypatch):
  monkeypatch.delenv(precision.OVERRIDE, raising=False)
  chosen = precision.resolve("auto", "cpu", precision.cpu_flags(cpuinfo))
  assert chosen.dtype == jnp.bfloat16
  assert "bf16" in chosen.reason and chosen.describe().startswith("precision: bfloat16 compute, float32 parameters")


def test_auto_is_float32_on_a_cpu_without_them_and_says_why(monkeypatch):
  monkeypatch.delenv(precision.OVERRIDE, raising=False)
  chosen = precision.resolve("auto", "cpu", precision.cpu_flags(X86_OLD))
  assert chosen.dtype == jnp.float32
  assert chosen.describe() == (
    "precision: float32 (auto: this CPU has no bfloat16 dot products (no avx512_bf16, amx_bf16 or bf16 flag))"
  )


def test_the_environment_simulates_a_cpu_without_bfloat16(monkeypatch):
  monkeypatch.setenv(precision.OVERRIDE, "0")
  chosen = precision.resolve("auto", "cpu", precision.cpu_flags(X86_ZEN5))
  assert chosen.dtype == jnp.float32 and precision.OVERRIDE in chosen.reason
  monkeypatch.setenv(precision.OVERRIDE, "1")
  assert precision.resolve("auto", "cpu", precision.cpu_flags(X86_OLD)).dtype == jnp.bfloat16


def test_auto_is_bfloat16_on_accelerators_and_explicit_choices_are_kept(monkeypatch):
  monkeypatch.setenv(precision.OVERRIDE, "0")  # the CPU's answer does not matter there
  assert precision.resolve("auto", "gpu").dtype == jnp.bfloat16
  assert precision.resolve("auto", "tpu").dtype == jnp.bfloat16
  assert precision.resolve("float32", "tpu").dtype == jnp.float32
  assert precision.resolve("bfloat16", "cpu").dtype == jnp.bfloat16


def test_an_unknown_precision_is_refused_by_name():
  with pytest.raises(ValueError, match="model.dtype='bf16' is not a precision; expected one of auto"):
    precision.resolve("bf16")
