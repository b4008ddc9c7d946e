"""The classifiers' tests run on ``synthetic_surveillance/supervised`` (prepared once per
test process by the root ``supervised_data_dir``)."""

import pytest


@pytest.fixture(scope="module")
def data_dir(supervised_data_dir):
  return supervised_data_dir
