"""The self-ensemble wrapper: exact inverse transforms and block-grid-preserving padding."""

import numpy as np
import torch

from streamfix.engines.ensemble import EnsembleEngine, _forward, _inverse
from streamfix.core.network import CARDRN, ModelArgs


class _Net:
    """An engine around a torch module (kept tiny so the test is fast)."""

    name, device = "test", "cpu"

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def infer(self, batch):
        self.calls.append(batch.shape)
        return self.fn(batch)


def test_transforms_invert_exactly():
    x = np.random.default_rng(0).random((2, 3, 5, 7)).astype(np.float32)
    for k in range(8):
        assert np.array_equal(_inverse(_forward(x, k), k), x)
    assert len({_forward(x, k).tobytes() for k in range(8)}) == 8


def test_equivariant_function_is_unchanged():
    # A pixel-wise function commutes with every transform: the ensemble equals it.
    x = np.random.default_rng(1).random((1, 2, 13, 22)).astype(np.float32)
    ens = EnsembleEngine(_Net(lambda b: b[:, :1] * 2.0))
    assert np.allclose(ens.infer(x), x[:, :1] * 2.0, atol=1e-6)


def test_padding_keeps_the_block_grid():
    # Inputs reach the inner engine padded to multiples of 8 in both sides.
    inner = _Net(lambda b: b[:, :1])
    EnsembleEngine(inner).infer(np.zeros((1, 1, 13, 21), np.float32))
    assert all(h % 8 == 0 and w % 8 == 0 for *_, h, w in inner.calls) and len(inner.calls) == 8


def test_ensemble_of_a_real_model_stays_close_and_differs():
    torch.manual_seed(0)
    model = CARDRN(ModelArgs(features=8, mid_features=4)).eval()
    torch.nn.init.normal_(model.reconstruct.weight, std=0.1)
    fn = lambda b: model(torch.from_numpy(b.copy())).detach().numpy()
    x = np.random.default_rng(2).random((1, 1, 16, 24)).astype(np.float32)
    single, ens = fn(x), EnsembleEngine(_Net(fn)).infer(x)
    assert ens.shape == single.shape
    assert 0 < np.abs(ens - single).max() < 0.5


def test_restorer_uses_the_ensemble_for_stills_only(tmp_path):
    """Stills get the 8-transform average by default; `ensemble="never"` turns it off."""
    from PIL import Image

    from streamfix.media.planes import plane_to_array
    from streamfix.media.reader import DecodedFrame, MediaReader
    from streamfix.restore.restorer import Restorer

    rng = np.random.default_rng(3)
    path = tmp_path / "p.jpg"
    Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8)).save(path, quality=10)
    outputs = {}
    for mode in ("stills", "never"):
        with Restorer(engine="torch", ensemble=mode, log=lambda *_: None) as restorer, MediaReader(path) as reader:
            restorer.prepare(reader.video)
            (decoded,) = [i for i in reader.items() if isinstance(i, DecodedFrame)]
            outputs[mode] = plane_to_array(restorer.restore_batch([decoded])[0], 0)
    assert not np.array_equal(outputs["stills"], outputs["never"])
    assert np.abs(outputs["stills"].astype(int) - outputs["never"]).max() < 40
