import pytest

from tests.conditioning.tiny_clap import save_tiny_clap


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    return save_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny_clap")
