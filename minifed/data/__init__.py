"""Data sets as plain arrays: features ``X`` (float32, one sample per row) and labels ``y``.

Synthetic generators take a ``numpy.random.Generator``; file loaders find their files with
:func:`locate` (``data_dir`` argument, ``$MINIFED_DATA``, system folders, the cache, then a
verified download) and raise :class:`DatasetNotFoundError` listing every place searched.
"""

from minifed.data.fetch import (
    ChecksumError,
    DataFile,
    DatasetNotFoundError,
    DataSource,
    cache_dir,
    locate,
    verify,
)
from minifed.data.idx import read_idx
from minifed.data.mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist
from minifed.data.sources import DATASETS
from minifed.data.synthetic import fedprox_synthetic, gaussian_blobs, linear_regression
from minifed.data.uci import (
    HEART_DISEASE_FEATURES,
    HEART_DISEASE_HOSPITALS,
    load_heart_disease,
    load_optdigits,
)

__all__ = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "HEART_DISEASE_FEATURES",
    "HEART_DISEASE_HOSPITALS",
    "ChecksumError",
    "DataFile",
    "DataSource",
    "DatasetNotFoundError",
    "cache_dir",
    "fedprox_synthetic",
    "gaussian_blobs",
    "linear_regression",
    "load_fashion_mnist",
    "load_heart_disease",
    "load_mnist",
    "load_optdigits",
    "locate",
    "read_idx",
    "verify",
]
