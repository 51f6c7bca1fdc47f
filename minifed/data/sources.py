"""Where each file-backed data set comes from: official URLs and pinned sha256 values.

Provenance of the hashes:

- MNIST: the original LeCun ``.gz`` files (the values torchvision, TFDS and others pin).
- Fashion-MNIST: the official Zalando ``.gz`` files first. Debian's ``dataset-fashion-mnist``
  (0.0~git20200523.55506a9-1, installed under ``/usr/share/datasets/fashion-mnist``) ships the
  same four files re-compressed (24 bytes smaller: no file name in the gzip header), so their
  hashes differ; they are accepted as a second value.
- UCI Heart Disease and optdigits: the unmodified UCI files (the values FLamby and others pin).
- Tiny Shakespeare: karpathy/char-rnn ``data/tinyshakespeare/input.txt``.
"""

from __future__ import annotations

from minifed.data.fetch import DataFile, DataSource

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases/"


def _idx_files(mirrors: tuple[str, ...], hashes: dict[str, tuple[str, ...]]) -> dict:
    """``{key: DataFile}`` for the four IDX files, keyed like ``"train-images"``."""
    names = {
        "train-images": "train-images-idx3-ubyte.gz",
        "train-labels": "train-labels-idx1-ubyte.gz",
        "test-images": "t10k-images-idx3-ubyte.gz",
        "test-labels": "t10k-labels-idx1-ubyte.gz",
    }
    return {
        key: DataFile(name, tuple(m + name for m in mirrors), hashes[key])
        for key, name in names.items()
    }


MNIST = DataSource(
    "mnist",
    _idx_files(
        MNIST_MIRRORS,
        {
            "train-images": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",),
            "train-labels": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",),
            "test-images": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",),
            "test-labels": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",),
        },
    ),
)

FASHION_MNIST = DataSource(
    "fashion-mnist",
    _idx_files(
        FASHION_MIRRORS,
        {
            "train-images": (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",  # Debian
            ),
            "train-labels": (
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",  # Debian
            ),
            "test-images": (
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",  # Debian
            ),
            "test-labels": (
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",  # Debian
            ),
        },
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    hint="on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist",
)

HEART_DISEASE_HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")
_HEART_SHA256 = {
    "cleveland": "a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8",
    "hungarian": "d1ad108f785768cd3d7e82dc522e6f5a61eea93cccfb3a46ee8076f73fc3d796",
    "switzerland": "834a405ccf5b66ab4056bb77794adc8df0b7125186454c0a1d002d33c6c3b314",
    "va": "e7c93d8d0d2acdadfa4c5e8de768e2191e7f618b952e29623f1f0d5949ff6b8f",
}
HEART_DISEASE = DataSource(
    "heart-disease",
    {
        h: DataFile(
            f"processed.{h}.data",
            (f"{UCI}heart-disease/processed.{h}.data",),
            (_HEART_SHA256[h],),
        )
        for h in HEART_DISEASE_HOSPITALS
    },
)

OPTDIGITS = DataSource(
    "optdigits",
    {
        "train": DataFile(
            "optdigits.tra",
            (f"{UCI}optdigits/optdigits.tra",),
            ("e1b683cc211604fe8fd8c4417e6a69f31380e0c61d4af22e93cc21e9257ffedd",),
        ),
        "test": DataFile(
            "optdigits.tes",
            (f"{UCI}optdigits/optdigits.tes",),
            ("6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8",),
        ),
    },
)

TINY_SHAKESPEARE = DataSource(
    "tinyshakespeare",
    {
        "text": DataFile(
            "input.txt",
            (
                "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                "tinyshakespeare/input.txt",
            ),
            ("86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",),
        )
    },
)

DATASETS: dict[str, DataSource] = {
    s.name: s for s in (MNIST, FASHION_MNIST, HEART_DISEASE, OPTDIGITS, TINY_SHAKESPEARE)
}
