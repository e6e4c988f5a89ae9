"""Shared fixtures. Tests use the real embedded model (converted once per machine into the model cache), real
PEFT, real SQLite and real files; each test gets its own WORKBENCH_HOME so runs never leak between tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub, here or in CI
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers share the cores: one torch thread each (and in every process they start), so that no two
    # threads of one worker wait on each other while the other worker holds a core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def pytest_xdist_make_scheduler(config, log):
    """How pytest-xdist (`make test` runs a worker per core) shares the tests out: every module that drives the
    shared app (`pytestmark = APP_TESTS`) goes to one worker, so that the app is launched and the model loaded once;
    a module with module-scoped fixtures goes to one worker as a whole, so they are built once; the tests of any
    other module are shared out one by one, so that no worker is left alone with a long module at the end. (xdist's
    own `loadgroup` cannot mark tests under pytest 9, whose node ids are read-only.)"""
    from xdist.scheduler import LoadScopeScheduling

    root, kinds = config.rootpath, {}
    # Hand out the work in file order (not the largest count of tests first): the shared app's modules, the longest
    # piece of work, then start early (test_browser.py) instead of last.
    config.option.loadscopereorder = False

    def kind(module: str) -> str:
        if module not in kinds:
            path = root / module
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            kinds[module] = ("app" if "pytestmark = APP_TESTS" in text else
                             "module" if 'scope="module"' in text else "test")
        return kinds[module]

    class SharedOut(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return {"app": "the shared app", "module": module}.get(kind(module), nodeid)

    return SharedOut(config, log)


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """The real app over one home, launched once for every UI test (the model loads once). Tests share its runs,
    votes and uploads: each finds its own by id or name, and counts what it adds rather than what there is."""
    from appdriver import _launch

    launched = _launch(tmp_path_factory.mktemp("app") / "home")
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def own_session(app):
    """A client of the module's own for the shared app: its own session, so no conversation or battle of another
    module is carried into it (the app's runs, votes and files stay shared)."""
    from gradio_client import Client

    shared, url, app.client = app.client, app.url, Client(app.url, verbose=False)
    yield app.client
    app.client.close()
    app.client = shared if app.url == url else Client(app.url, verbose=False)  # a new one after App.restart()


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread while a module drives the app (restored after it).

    On a small shared CPU, two threads that wait on each other at every op make a 3-step run take 1-2 minutes
    instead of ~20 s whenever another process holds a core (the app trains in a thread while the test polls it).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh WORKBENCH_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def tiny_config():
    """The one tiny-run factory: a run that takes seconds (a few steps on short sequences of the bundled English
    sample); a test states only what it changes, e.g. tiny_config(**{"name": "x", "train.eval_every": 0})."""
    from workbench.config import RunConfig

    def make(**overrides):
        base = {"train.max_steps": 3, "train.batch_size": 2, "train.max_seq_len": 128, "train.eval_every": 2,
                "train.learning_rate": 0.002, "train.warmup_ratio": 0.0, "data.val_size": 8, "data.test_size": 8,
                # The forgetting probe and test-split scoring have their own tests; off here to keep runs short.
                "train.general_every": 0, "train.eval_test": False}
        return RunConfig().with_overrides({**base, **overrides})

    return make


@pytest.fixture(scope="session")
def make_adapter():
    """A real adapter of any method, made in a second instead of trained: the method attached to the real model as
    a run attaches it, the tensors it trains moved off their starting point by seeded noise (so it answers
    differently from the base, as a trained one does), saved as a run saves it. For tests of what is done with an
    adapter (serving, batching, exporting), where what it learned does not matter; tests of training train.
    make(folder, method="lora", seed=0, **{"method.rank": 4}) -> the adapter folder."""
    from pathlib import Path

    def make(folder, method: str = "lora", seed: int = 0, noise: float = 0.05, **overrides) -> str:
        import torch

        from workbench.config import RunConfig
        from workbench.models.adapters import save_trained
        from workbench.models.loading import load_model
        from workbench.train.attach import attach_method

        config = RunConfig().with_overrides({"method.name": method, **overrides})
        model = attach_method(load_model(config.model).model, config)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in (p for p in model.parameters() if p.requires_grad):
                param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * noise)
        return str(save_trained(model, method, Path(folder) / "adapter"))

    return make
