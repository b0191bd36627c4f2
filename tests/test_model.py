"""CAR-DRN shapes, batch-norm folding and the weights file round trip."""

import numpy as np
import pytest
import torch

from streamfix.core.network import CARDRN, ModelArgs, fold_batchnorm, parameter_count
from streamfix.core.weights import ModelNotFound, load_model, read_info, save_weights

torch.set_num_threads(1)


def _trained_bn(model: CARDRN) -> CARDRN:
    """Give BN non-trivial running statistics and affine parameters."""
    model.train()
    with torch.no_grad():
        for bn in (model.bn_a, model.bn_b, model.bn_c):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
        for _ in range(3):
            model(torch.rand(2, model.args.channels + model.args.cond_channels, 24, 24))
        model.reconstruct.weight.normal_(0, 0.05)  # leave the identity start
    return model.eval()


@pytest.mark.parametrize("channels,cond", [(1, 0), (3, 0), (1, 1)])
@pytest.mark.parametrize("size", [(16, 16), (17, 33), (31, 9)])
def test_output_shape_matches_input(channels, cond, size):
    model = CARDRN(ModelArgs(channels=channels, cond_channels=cond)).eval()
    x = torch.rand(2, channels + cond, *size)
    assert model(x).shape == (2, channels, *size)


def test_parameter_count_matches_the_paper():
    # The paper reports ~165k weights for the gray model.
    assert 160_000 < parameter_count(CARDRN(ModelArgs(channels=1))) < 172_000


def test_untrained_model_is_identity():
    x = torch.rand(1, 1, 20, 20)
    assert torch.equal(CARDRN(identity_init=True).eval()(x), x)
    assert not torch.equal(CARDRN().eval()(x), x)


@pytest.mark.parametrize("channels,cond", [(1, 0), (3, 1)])
def test_batchnorm_folding_keeps_outputs(channels, cond):
    torch.manual_seed(0)
    model = _trained_bn(CARDRN(ModelArgs(channels=channels, cond_channels=cond)))
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, channels + cond, 29, 35)
    with torch.no_grad():
        diff = (model(x) - folded(x)).abs().max().item()
    assert diff < 1e-5


def test_weights_round_trip(tmp_path):
    torch.manual_seed(1)
    model = _trained_bn(CARDRN(ModelArgs(cond_channels=1)))
    path = tmp_path / "m.pt"
    save_weights(path, model, name="m", description="test model", task="video", conditioning="qp",
                 trained_on={"steps": 5}, scores={"val": {"psnr": 30.0}})
    loaded, info = load_model(path)
    assert info.name == "m" and info.conditioning == "qp" and info.model_args.cond_channels == 1
    assert info.model_args.batch_norm is False  # stored folded
    assert info.trained_on == {"steps": 5} and info.scores == {"val": {"psnr": 30.0}}
    x = torch.rand(1, 2, 21, 19)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_conditioning_must_match_model(tmp_path):
    with pytest.raises(ValueError):
        save_weights(tmp_path / "x.pt", CARDRN(), name="x", description="", task="jpeg",
                     conditioning="jpeg_quality", trained_on={})


def test_unknown_model_and_bad_file(tmp_path):
    with pytest.raises(ModelNotFound, match="bundled models"):
        read_info("no-such-model")
    bad = tmp_path / "bad.pt"
    bad.write_text("not weights")
    with pytest.raises(ModelNotFound, match="not a streamfix weights file"):
        read_info(bad)


def test_bundled_models_load():
    from streamfix.core.weights import list_models

    infos = {i.name: i for i in list_models()}
    assert {"jpeg-y-blind", "video-x264-qp"} <= set(infos)
    for name, info in infos.items():
        model, _ = load_model(name)
        assert info.trained_on["steps"] > 0  # never ship untrained weights
        x = torch.rand(1, 1 + info.model_args.cond_channels, 16, 16)
        assert model(x).shape == (1, 1, 16, 16)


def test_bundled_light_tiers_fit_their_full_models():
    """Every bundled NAME-lite (the light tier) is a narrower network for the same input
    as its bundled NAME: the Restorer swaps one for the other frame by frame."""
    from streamfix.core.network import parameter_count
    from streamfix.core.options import LIGHT_SUFFIX
    from streamfix.core.weights import list_models

    infos = {i.name: i for i in list_models()}
    lights = [name for name in infos if name.endswith(LIGHT_SUFFIX)]
    assert {"jpeg-y-blind-lite", "video-x264-qp-lite"} <= set(lights)
    for light in lights:
        full = infos[light[: -len(LIGHT_SUFFIX)]]
        lite = infos[light]
        assert (lite.task, lite.conditioning) == (full.task, full.conditioning)
        assert (lite.model_args.channels, lite.model_args.cond_channels) == (full.model_args.channels,
                                                                             full.model_args.cond_channels)
        assert parameter_count(load_model(light)[0]) * 8 < parameter_count(load_model(full.name)[0])
