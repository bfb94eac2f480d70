import pytest

from workbench.kernel.image import build_image


@pytest.fixture(scope="session")
def image():
    return build_image(8)
