"""Class-conditional teachers and students (issue 20): train-teacher --conditional, the label probe of
foreign teachers, and distillation in which every term works per label."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from edgegan.distill import DistillConfig, distill
from edgegan.errors import ConfigError
from edgegan.models import build_discriminator, build_generator
from edgegan.sources import load_generator
from edgegan.train import TrainConfig, train_gan


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgegan.app.cli", "--threads", "1", *args], capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def cond_teacher(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("cteacher")
    train_gan(TrainConfig(dataset="mnist", d=8, steps=40, lr=1e-3, conditional=True, sample_every=0,
                          checkpoint_every=0, limit=512), out, progress=False)
    return out


def test_conditional_modules_take_an_index_or_a_one_hot_and_refuse_the_rest():
    g = build_generator("dcgan", d=2, nc=1, image_size=32, num_classes=10)  # train mode: BatchNorm of the batch
    D = build_discriminator("dcgan", d=2, nc=1, image_size=32, num_classes=10)
    z, y = torch.randn(4, 100), torch.tensor([0, 3, 9, 1])
    with torch.no_grad():
        a, b = g(z, y), g(z, nn.functional.one_hot(y, 10).float())
        other = g(z, torch.tensor([1, 4, 0, 2]))
    assert torch.equal(a, b)  # the index is the one-hot, exactly
    assert (a - other).abs().amax((1, 2, 3)).min() > 1e-4  # the label reaches every image
    assert D(a, y).shape == (4,)
    for bad, msg in ((None, "conditional on 10 classes"), (torch.tensor([0, 1, 2, 10]), r"outside \[0, 10\)"),
                     (torch.tensor([0.0, 1.0, 2.0, 3.0]), "integer index"), (torch.zeros(4, 9), r"one-hot label of shape \(4, 9\); expected \(4, 10\)")):
        with pytest.raises(ConfigError, match=msg):
            g(z, bad)
    u = build_generator("dcgan", d=2, nc=1, image_size=32)
    with pytest.raises(ConfigError, match="unconditional"):
        u(z, y)
    with pytest.raises(ConfigError, match="num_classes"):
        build_generator("dcgan", d=2, num_classes=1)


def test_conditional_teacher_run_records_its_classes(cond_teacher):
    m = json.loads((cond_teacher / "manifest.json").read_text())
    assert m["model"]["args"]["num_classes"] == 10
    assert m["model"]["classes"] == {"count": 10, "names": [str(i) for i in range(10)]}
    src = load_generator(str(cond_teacher))
    assert src.num_classes == 10 and src.labels.form == "index" and src.class_names[7] == "7"


def test_a_dataset_without_labels_cannot_train_a_conditional_teacher(tmp_path):
    import numpy as np

    folder = tmp_path / "data"
    folder.mkdir()
    np.savez(folder / "x.npz", images=np.zeros((8, 32, 32, 1), np.uint8))
    with pytest.raises(ConfigError, match="needs a dataset with class labels"):
        train_gan(TrainConfig(dataset="folder", data_dir=str(folder), d=4, steps=2, conditional=True), tmp_path / "t",
                  progress=False)
    assert not (tmp_path / "t").exists()


def test_conditional_distillation_with_every_term(cond_teacher, tmp_path):
    """pixel + feature + a projection GAN on MNIST with its labels: one conditional student, its labels and
    classes recorded; the student follows the label it is given."""
    m = distill(DistillConfig(teacher=str(cond_teacher), d=2, steps=30, terms="pixel:1,feature:0.1,gan:0.01",
                              label_weights="1,1,1,1,1,1,1,1,1,2"), tmp_path / "s", progress=False)
    assert m["model"]["args"]["num_classes"] == 10 and m["model"]["classes"]["count"] == 10
    assert m["distill"]["labels"]["sampling"] == {"weights": [1.0] * 9 + [2.0]}
    assert m["distill"]["teacher"]["labels"] == {"form": "index", "num_classes": 10, "dtype": "int64"}
    assert m["distill"]["gan"]["real"] == "dataset"
    assert m["distill"]["eval"]["mse_end"] < m["distill"]["eval"]["mse_start"]
    from edgegan.checkpoint import load_run

    s = load_run(tmp_path / "s").generator
    z = torch.randn(2, 100)
    with torch.no_grad():
        assert (s(z, torch.tensor([0, 0])) - s(z, torch.tensor([5, 5]))).abs().max() > 1e-4


def test_conditional_distillation_from_a_one_hot_factory_teacher_without_data(tmp_path, monkeypatch):
    """A foreign teacher taking a float one-hot (N, K): K read by probing, the data-free GAN term's
    discriminator conditional on the step's labels, a latent pool with its own labels."""
    (tmp_path / "ohgen.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class G(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(nn.ConvTranspose2d(16 + 4, 8, 4, 1, 0), nn.ReLU(),\n"
        "                                 nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(1, 1, 4, 2, 1),\n"
        "                                 nn.Tanh())\n"
        "    def forward(self, z, onehot):\n"
        "        return self.net(torch.cat([z, onehot], 1)[:, :, None, None])\n\n"
        "def make():\n    torch.manual_seed(0)\n    return G()\n")
    monkeypatch.chdir(tmp_path)
    src = load_generator("ohgen:make")
    assert (src.latent_dim, src.num_classes, src.labels.form, src.output_shape) == (16, 4, "onehot", (1, 16, 16))
    m = distill(DistillConfig(teacher="ohgen:make", family="anyshape", d=2, steps=20, terms="pixel:1,gan:0.01",
                              latent_pool=128, class_names="a,b,c,d"), tmp_path / "s", progress=False)
    assert m["distill"]["gan"]["real"] == "teacher" and m["model"]["classes"]["names"] == ["a", "b", "c", "d"]
    assert m["distill"]["teacher"]["labels"]["form"] == "onehot"


@pytest.mark.parametrize("args, msg", [
    (["--label-weights", "1,2"], "2 weights for a teacher of 10 classes"),
    (["--class-names", "a,b"], "2 names for a teacher of 10 classes"),
    (["--num-classes", "7"], "--num-classes 7 contradicts"),
    (["--label-weights", "0,0,0,0,0,0,0,0,0,0"], "not all 0"),
])
def test_bad_label_options_are_one_line_errors_and_write_nothing(cond_teacher, tmp_path, args, msg):
    r = cli("distill", "--teacher", str(cond_teacher), "--steps", "2", "--out", str(tmp_path / "s"), *args)
    assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()
