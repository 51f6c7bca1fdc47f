"""MNIST (LeCun et al., 1998) and Fashion-MNIST (Xiao et al., 2017) as flat float32 rows."""

from __future__ import annotations

import os

import numpy as np

from minifed.data.fetch import DataSource, locate
from minifed.data.idx import read_idx
from minifed.data.sources import FASHION_MNIST, MNIST

SPLITS = ("train", "test")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def load_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits: 60000 train or 10000 test images of 28 x 28 pixels, 10 classes.

    Parameters
    ----------
    split : {"train", "test"}
        Which part to load.
    data_dir : str or path-like, optional
        Folder with the four ``.gz`` IDX files (or with a sub-folder ``mnist/`` holding them).
        See :func:`minifed.data.locate` for the full lookup order.
    download : bool
        Allow a download into the cache when the files are not found.

    Returns
    -------
    X : ndarray of float32, shape (n, 784)
        Pixels scaled to ``[0, 1]`` (``x / 255``), one image per row, row-major.
    y : ndarray of int64, shape (n,)
        Digit labels 0-9.
    """
    return _load_idx_pair(MNIST, split, data_dir, download)


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST: 60000 train or 10000 test clothing images of 28 x 28 pixels, 10 classes.

    Same format and arguments as :func:`load_mnist`; the data-set folder is ``fashion-mnist/``
    and Debian's ``/usr/share/datasets/fashion-mnist`` is searched too. Class names are in
    ``FASHION_MNIST_CLASSES``.

    Returns
    -------
    X : ndarray of float32, shape (n, 784)
        Pixels scaled to ``[0, 1]``.
    y : ndarray of int64, shape (n,)
        Class labels 0-9.
    """
    return _load_idx_pair(FASHION_MNIST, split, data_dir, download)


def _load_idx_pair(source: DataSource, split, data_dir, download):
    """Load ``<split>-images`` and ``<split>-labels`` of ``source`` as ``(X, y)``."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    keys = [f"{split}-images", f"{split}-labels"]
    paths = locate(source, data_dir=data_dir, download=download, files=keys)
    images = read_idx(paths[keys[0]])  # (n, 28, 28) uint8
    labels = read_idx(paths[keys[1]])  # (n,) uint8
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{paths[keys[0]]} and {paths[keys[1]]} do not form an image/label pair: "
            f"shapes {images.shape} and {labels.shape}."
        )
    X = images.reshape(len(images), -1).astype(np.float32)  # (n, 784)
    X /= 255.0
    return X, labels.astype(np.int64)
