"""The model, the loss, weights files and the training loop, on the CPU with the real Paddle."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mnistgen import checkpoint, data, decoders, sample, train
from mnistgen.config import ModelConfig
from mnistgen.data import Dataset
from mnistgen.errors import MnistgenError


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_parameters_match_the_config(kind):
    from mnistgen import model

    cfg = ModelConfig(kind=kind)
    net = model.build(cfg)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == cfg.param_shapes()


def test_forward_shapes_and_loss_terms():
    from mnistgen import model
    from mnistgen.model import paddle

    net = model.build(ModelConfig(kind="cvae", latent=3, channels=4))
    x = paddle.uniform([5, 1, 28, 28], min=-1, max=1)
    onehot = paddle.to_tensor(data.one_hot([0, 1, 2, 3, 9], 10))
    head, mean, logvar = net(x, onehot, paddle.randn([5, 3]))
    assert head.shape == [5, 1, 28, 28] and mean.shape == [5, 3] and logvar.shape == [5, 3]
    assert float(net.decoder(mean, onehot).abs().max()) <= 1.0  # images in [-1, 1]
    loss, rec, kl = model.vae_loss(x, head, mean, logvar)
    assert float(loss) == pytest.approx(float(rec) + float(kl), rel=1e-5)
    assert float(kl) >= 0


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_one_table_gives_each_likelihoods_images_and_loss(likelihood):
    """model.OUTPUTS, the one place a likelihood becomes arithmetic: tanh + squared error, or
    2 * sigmoid - 1 + cross-entropy on [0, 1] pixels (in nats), as numpy computes them."""
    from mnistgen import model
    from mnistgen.config import LIKELIHOODS
    from mnistgen.model import paddle

    assert sorted(model.OUTPUTS) == sorted(LIKELIHOODS)
    rng = np.random.default_rng(0)
    x, head = rng.uniform(-1, 1, (2, 1, 28, 28)), rng.standard_normal((2, 1, 28, 28)) * 3
    mean, logvar = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    tensors = [paddle.to_tensor(a.astype(np.float32)) for a in (x, head, mean, logvar)]
    rec, kl = model.per_image_terms(*tensors, likelihood)
    image = model.to_image(tensors[1], likelihood).numpy()
    if likelihood == "gaussian":
        want_image, want_rec = np.tanh(head), ((x - np.tanh(head)) ** 2).sum(axis=(1, 2, 3))
    else:
        target = (x + 1) / 2
        want_image = 2 / (1 + np.exp(-head)) - 1
        want_rec = (np.logaddexp(0, head) - target * head).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(image, want_image, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rec.numpy(), want_rec, rtol=1e-5)
    np.testing.assert_allclose(kl.numpy(), (-0.5 * (1 + logvar - mean**2 - np.exp(logvar))).sum(1), rtol=1e-5)


def _small(dataset, n):
    return Dataset(dataset.train.subset(slice(0, n)), dataset.test.subset(slice(0, 100)), "fixture")


def test_loss_falls(tmp_path, dataset):
    metrics = train.train(
        ModelConfig(kind="vae", channels=8),
        _small(dataset, 640),
        train.TrainOptions(epochs=3, seed=2, lr_decay=False),
        tmp_path / "run",
    )
    history = [json.loads(line) for line in (tmp_path / "run" / train.METRICS_FILE).read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < 0.85 * history[0]["train_loss"]
    assert history[-1]["test_loss"] < history[0]["test_loss"]
    assert metrics["epoch"] == 3
    assert (tmp_path / "run" / "samples" / "epoch-003.png").is_file()


def test_run_writes_a_complete_model_card(tiny_cvae):
    weights = checkpoint.inspect(str(tiny_cvae))
    card = weights.card
    assert card["format"] == "mnistgen-weights" and card["format_version"] == 1
    assert card["config"] == {
        "kind": "cvae",
        "latent": 2,
        "channels": 8,
        "num_classes": 10,
        "image_size": 28,
        "likelihood": "gaussian",
    }
    assert card["training"]["epochs_done"] == 2 and card["sha256"] == weights.sha256
    assert set(card["metrics"]) >= {"test_loss", "test_rec", "test_kl", "train_loss"}
    stats = card["latent_stats"]
    assert len(stats["mean_min"]) == 2 and set(stats["centroids"]) == {str(d) for d in range(10)}


def test_save_load_round_trip_is_bit_exact(tmp_path, tiny_cvae):
    original = checkpoint.inspect(str(tiny_cvae))
    arrays = original.arrays()
    copy = checkpoint.save(tmp_path / "copy", arrays, {k: v for k, v in original.card.items() if k not in ("sha256",)})
    again = checkpoint.inspect(str(copy.path))
    assert again.sha256 == original.sha256  # same bytes
    reloaded = again.arrays()
    assert all(np.array_equal(arrays[k], reloaded[k]) for k in arrays)
    z = sample.block_latents(5, 3, 0, 2)
    labels = data.one_hot(np.full(len(z), 3), 10)
    assert np.array_equal(
        decoders.decode(decoders.load_model(original), z, labels),
        decoders.decode(decoders.load_model(again), z, labels),
    )


class StopAfter(train.TrainCallback):
    """A Ctrl-C right after the given epoch was saved."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch(self, metrics):
        if metrics["epoch"] == self.epoch:
            raise KeyboardInterrupt


def test_resume_repeats_the_uninterrupted_run(tmp_path, dataset):
    """Resumed with the default options, a run trained with others (beta1 0.9) continues with its
    own: the optimiser was once built with the given beta1 before the saved options were read."""
    small, cfg = _small(dataset, 192), ModelConfig(kind="cvae", channels=4)
    own = train.TrainOptions(epochs=3, seed=4, beta1=0.9)
    train.train(cfg, small, own, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, small, own, tmp_path / "split", callback=StopAfter(2))
    assert json.loads((tmp_path / "split" / "train_state.json").read_text())["epoch"] == 2
    train.train(cfg, small, train.TrainOptions(epochs=3, seed=4), tmp_path / "split", resume=True)
    a = checkpoint.inspect(str(tmp_path / "straight")).arrays()
    b = checkpoint.inspect(str(tmp_path / "split")).arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "split" / train.METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def _run_files(run) -> dict:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_fit_resume_refuses_a_setting_other_than_the_runs(tmp_path, mnist_dir):
    """A resumed run trains with its own settings: a keyword given at another value is refused before
    anything is trained or written (lr=0.01 on a run at 0.002 would seem to have had an effect); the
    same value resumes, and so does no keyword (the run's own, not the recipe's batch of 64)."""
    import mnistgen

    run = tmp_path / "run"
    shape = {"limit": 64, "channels": 4, "device": "cpu"}
    own = {"lr": 0.002, "batch_size": 32, "lr_decay": False}
    with pytest.raises(KeyboardInterrupt):
        mnistgen.fit(mnist_dir, run, "vae", epochs=3, **shape, **own, callback=StopAfter(1))
    before = _run_files(run)
    for keyword, message in [
        ({"lr": 0.01}, "lr 0.002 (its own setting); drop --lr 0.01"),
        ({"lr_decay": True}, "lr-decay off (its own setting); drop --lr-decay"),
        ({"batch_size": 64, "lr": 0.002}, "batch-size 32 (its own setting); drop --batch-size 64"),
    ]:
        with pytest.raises(MnistgenError) as caught:
            mnistgen.fit(mnist_dir, run, "vae", epochs=3, resume=True, **shape, **keyword)
        assert str(caught.value) == f"--resume: {run} trains with {message}, or start a new run in another --out"
        assert _run_files(run) == before
    with pytest.raises(KeyboardInterrupt):  # the same values resume
        mnistgen.fit(mnist_dir, run, "vae", epochs=3, resume=True, **shape, **own, callback=StopAfter(2))
    assert mnistgen.fit(mnist_dir, run, "vae", epochs=3, resume=True, **shape)["epoch"] == 3  # none: the run's
    assert {k: v for k, v in mnistgen.load(str(run)).card["training"].items() if k in own} == own
    assert [json.loads(line)["epoch"] for line in (run / train.METRICS_FILE).read_text().splitlines()] == [1, 2, 3]


def test_training_into_a_used_directory_is_refused(tiny_vae, dataset):
    with pytest.raises(
        MnistgenError, match="is not empty: pass --resume to continue that run, or choose a new directory"
    ):
        train.train(ModelConfig(kind="vae"), dataset, train.TrainOptions(epochs=1), tiny_vae)


def test_divergence_stops_with_a_clear_message(tmp_path, dataset):
    huge = train.TrainOptions(epochs=1, lr=1e12, seed=0, lr_decay=False)
    with pytest.raises(
        MnistgenError, match=r"training diverged at epoch 1, step \d+ \(loss is (nan|inf)\): lower --lr"
    ):
        train.train(ModelConfig(kind="vae", channels=4), _small(dataset, 640), huge, tmp_path / "boom")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda card: card.update(format_version=99), "card format version 99, newer than this mnistgen reads"),
        (lambda card: card["config"].update(latent=10**9), "latent=1000000000 is out of range"),
        (
            lambda card: card["config"].update(latent=3),
            "tensor decoder.fc.weight is F32 \\[12, 392\\], the card's config needs F32 \\[13, 392\\]",
        ),
        (lambda card: card.update(sha256="0" * 64), "does not match the sha256 in its card"),
    ],
)
def test_bad_cards_are_refused(tmp_path, tiny_cvae, change, message):
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"m{suffix}").write_bytes((tiny_cvae / f"model{suffix}").read_bytes())
    card = json.loads((tmp_path / "m.json").read_text())
    change(card)
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(MnistgenError, match=message):
        checkpoint.inspect(str(tmp_path / "m.safetensors"))


def test_truncated_weights_are_refused(tmp_path, tiny_cvae):
    payload = (tiny_cvae / "model.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(MnistgenError, match="is truncated or damaged"):
        checkpoint.inspect(str(tmp_path / "m.safetensors"))


def test_pickle_is_refused_without_unpickling(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("open('%s', 'w').write('ran')" % (tmp_path / "pwned"),))

    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps(Boom()))
    (tmp_path / "evil.pdparams").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(MnistgenError, match="is a pickle/zip file, not safetensors"):
        checkpoint.inspect(str(tmp_path / "evil.safetensors"))
    with pytest.raises(MnistgenError, match="is a pickle-based file: mnistgen loads only .safetensors"):
        checkpoint.inspect(str(tmp_path / "evil.pdparams"))
    assert not (tmp_path / "pwned").exists()


def test_header_length_starting_like_a_pickle_still_loads(tmp_path, tiny_cvae):
    """A safetensors header length whose low byte is 0x80 (pickle's first byte) is not a pickle."""
    import struct

    from safetensors.numpy import save

    arrays = checkpoint.inspect(str(tiny_cvae)).arrays()
    config = json.dumps(ModelConfig(kind="cvae", channels=8).to_dict())
    for pad in range(512):
        payload = save(arrays, metadata={"mnistgen_config": config, "pad": "x" * pad})
        if payload[0] == 0x80:
            break
    assert struct.unpack("<Q", payload[:8])[0] % 256 == 0x80
    (tmp_path / "odd.safetensors").write_bytes(payload)
    assert checkpoint.inspect(str(tmp_path / "odd.safetensors")).config.channels == 8


def test_eval_every_skips_test_evaluation_between(tmp_path, dataset):
    train.train(
        ModelConfig(kind="vae", channels=4),
        _small(dataset, 128),
        train.TrainOptions(epochs=3, eval_every=2),
        tmp_path / "r",
    )
    history = [json.loads(line) for line in (tmp_path / "r" / train.METRICS_FILE).read_text().splitlines()]
    assert ["test_loss" in h for h in history] == [False, True, True]  # epoch 2, and always the last


def test_a_run_that_failed_before_its_first_checkpoint_names_the_way_out(tmp_path, dataset):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)  # what train writes before the first checkpoint
    (run / "samples" / "epoch-001.png").write_bytes(b"")
    message = f"--out {run} is not empty and holds no checkpoint to resume: choose a new directory, or empty it"
    with pytest.raises(MnistgenError, match=re.escape(message)):
        train.train(ModelConfig(kind="vae"), dataset, train.TrainOptions(epochs=1), run)
    assert [p.name for p in run.rglob("*")] == ["samples", "epoch-001.png"]
