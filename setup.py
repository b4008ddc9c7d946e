"""Build hook: the builder tests beside each TFDS builder stay out of the wheel."""

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithoutTests(build_py):
  """``build_py`` that skips ``*_test.py`` modules."""

  def find_package_modules(self, package, package_dir):
    modules = super().find_package_modules(package, package_dir)
    return [(pkg, module, path) for pkg, module, path in modules if not module.endswith("_test")]


setup(cmdclass={"build_py": BuildPyWithoutTests})
