"""The long-lived inference thread: streaming, superseding, stale answers dropped, the GUI never blocked."""
import threading

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from ambiview.imaging.volume import Volume
from ambiview.models.base import Engine
from ambiview.session import Session
from ambiview.ui.inference_worker import InferenceClient


class SlowEngine(Engine):
    """Each hypothesis waits on an event the test controls, so the test decides when a sample boundary comes."""

    name, title, digest = "slow", "Slow fake", "0"

    def __init__(self):
        self.gate = threading.Semaphore(0)
        self.threads = set()
        self.prepared = []  # (image, thread) of every prepare

    def prepare(self, image):
        self.prepared.append((np.array(image), threading.get_ident()))
        return image

    def sample(self, state, prompts, n, seed, on_sample=None, cancel=None):
        self.threads.add(threading.get_ident())
        out = np.zeros((n, 64, 64), np.float32)
        for k in range(n):
            if cancel and cancel():
                return out[:k]
            self.gate.acquire(timeout=60)  # the test releases it; the timeout only guards a broken test
            out[k, 20:40, 20:40] = seed + 1
            if on_sample:
                on_sample(k + 1, out[k:k + 1])
        return out


@pytest.fixture
def client(qtbot):
    c = InferenceClient()
    engine = SlowEngine()
    c.worker._engines[("slow", None)] = engine
    yield c, engine
    for _ in range(50):
        engine.gate.release()
    c.shutdown()


def _volume_and_prompts():
    vox = np.zeros((3, 100, 100), np.int16)
    vox[1, 40:60, 40:60] = 100
    s = Session()
    s.set_volume(Volume.from_array(vox, series_uid="9.9"))
    s.add_box(1, 40, 40, 59, 59)
    return s.volume, s.prompts


def test_hypotheses_stream_and_the_gui_keeps_running(client, qtbot):
    c, engine = client
    volume, prompts = _volume_and_prompts()
    ticks, progress = [], []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    results = []
    c.progress.connect(lambda done, total, batch: progress.append(done))
    c.finished.connect(results.append)
    c.submit(volume, prompts, "slow", 3, 0)
    assert c.busy
    for _ in range(3):
        before = len(ticks)
        qtbot.waitUntil(lambda: len(ticks) > before + 2, timeout=30000)  # the loop ticks while the model waits
        assert not results
        engine.gate.release()
    qtbot.waitUntil(lambda: len(results) == 1, timeout=30000)
    timer.stop()
    assert progress == [1, 2, 3] and results[0].n == 3 and not c.busy
    assert threading.get_ident() not in engine.threads            # the model never ran on the GUI thread


def test_a_newer_prompt_supersedes_the_older_request(client, qtbot):
    c, engine = client
    volume, prompts = _volume_and_prompts()
    results = []
    c.finished.connect(results.append)
    c.submit(volume, prompts, "slow", 5, seed=0)
    engine.gate.release()                                          # the first request draws one hypothesis
    c.submit(volume, prompts, "slow", 2, seed=7)                   # then a newer prompt arrives
    for _ in range(10):
        engine.gate.release()
    qtbot.waitUntil(lambda: len(results) > 0, timeout=30000)
    qtbot.wait(100)
    assert len(results) == 1 and results[0].seed == 7 and results[0].n == 2   # the stale answer was dropped


def test_failures_reach_the_user_as_a_message(client, qtbot):
    c, _ = client
    volume, _ = _volume_and_prompts()
    with qtbot.waitSignal(c.failed, timeout=30000) as got:
        c.submit(volume, (), "slow", 2, 0)
    assert "place a point or a box" in got.args[0] and not c.busy


def test_a_warm_up_runs_the_engine_once_on_a_zero_crop_in_the_worker(client, qtbot):
    c, engine = client
    warmed = []
    c.worker.warmed.connect(warmed.append)
    c.warm_up("slow")
    qtbot.waitUntil(lambda: len(engine.prepared) == 1, timeout=30000)   # the GUI thread does not wait for it
    image, thread = engine.prepared[0]
    assert image.shape == (64, 64) and not image.any() and thread != threading.get_ident()
    engine.gate.release()
    engine.gate.release()                                              # its two throw-away hypotheses
    qtbot.waitUntil(lambda: warmed == ["slow"], timeout=30000)
    c.warm_up("slow")                                                  # warm already: nothing runs again
    qtbot.wait(200)
    assert len(engine.prepared) == 1 and warmed == ["slow"] and not c.busy


def test_a_request_supersedes_a_warm_up(client, qtbot):
    c, engine = client
    volume, prompts = _volume_and_prompts()
    warmed, results, progress = [], [], []
    c.worker.warmed.connect(warmed.append)
    c.finished.connect(results.append)
    c.progress.connect(lambda done, total, batch: progress.append(done))
    c.warm_up("slow")
    qtbot.waitUntil(lambda: len(engine.prepared) == 1, timeout=30000)  # the warm-up waits in its first hypothesis
    c.submit(volume, prompts, "slow", 2, seed=3)                       # the user's prompt arrives meanwhile
    for _ in range(3):                                                 # one for the warm-up, which then stops
        engine.gate.release()
    qtbot.waitUntil(lambda: len(results) == 1, timeout=30000)
    assert results[0].n == 2 and results[0].seed == 3 and progress == [1, 2] and not warmed
    assert len(engine.prepared) == 2 and engine.prepared[1][0].any()  # the request's own crop, not the zeros
