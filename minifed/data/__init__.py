"""Data sets as plain arrays: features ``X`` (float32, one sample per row) and labels ``y``.

Synthetic generators take a ``numpy.random.Generator``; file loaders find their files with
:func:`locate` (``data_dir`` argument, ``$MINIFED_DATA``, system folders, the cache, then a
verified download) and raise :class:`DatasetNotFoundError` listing every place searched.
"""

from minifed.data.beijing import BEIJING_COLUMNS, WIND_DIRECTIONS, load_beijing_air
from minifed.data.cmapss import CMAPSS_COLUMNS, CMAPSS_SENSOR_NAMES, load_cmapss
from minifed.data.credit import CREDIT_COLUMNS, CREDIT_TARGET, load_credit_default
from minifed.data.fetch import (
    ChecksumError,
    DataFile,
    DatasetNotFoundError,
    DataSource,
    cache_dir,
    locate,
    parse_numbers,
    read_text,
    verify,
)
from minifed.data.idx import read_idx
from minifed.data.mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist
from minifed.data.sources import BEIJING_STATIONS, CMAPSS_SUBSETS, DATASETS
from minifed.data.synthetic import fedprox_synthetic, gaussian_blobs, linear_regression
from minifed.data.uci import (
    HEART_DISEASE_FEATURES,
    HEART_DISEASE_HOSPITALS,
    load_heart_disease,
    load_optdigits,
)

__all__ = [
    "BEIJING_COLUMNS",
    "BEIJING_STATIONS",
    "CMAPSS_COLUMNS",
    "CMAPSS_SENSOR_NAMES",
    "CMAPSS_SUBSETS",
    "CREDIT_COLUMNS",
    "CREDIT_TARGET",
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "HEART_DISEASE_FEATURES",
    "HEART_DISEASE_HOSPITALS",
    "WIND_DIRECTIONS",
    "ChecksumError",
    "DataFile",
    "DataSource",
    "DatasetNotFoundError",
    "cache_dir",
    "fedprox_synthetic",
    "gaussian_blobs",
    "linear_regression",
    "load_beijing_air",
    "load_cmapss",
    "load_credit_default",
    "load_fashion_mnist",
    "load_heart_disease",
    "load_mnist",
    "load_optdigits",
    "locate",
    "parse_numbers",
    "read_idx",
    "read_text",
    "verify",
]
