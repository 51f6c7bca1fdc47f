"""Where each file-backed data set comes from: official URLs and pinned sha256 values.

Provenance of the hashes:

- MNIST: the original LeCun ``.gz`` files (the values torchvision, TFDS and others pin).
- Fashion-MNIST: the official Zalando ``.gz`` files first. Debian's ``dataset-fashion-mnist``
  (0.0~git20200523.55506a9-1, installed under ``/usr/share/datasets/fashion-mnist``) ships the
  same four files re-compressed (24 bytes smaller: no file name in the gzip header), so their
  hashes differ; they are accepted as a second value.
- UCI Heart Disease and optdigits: the unmodified UCI files (the values FLamby and others pin).
- Tiny Shakespeare: karpathy/char-rnn ``data/tinyshakespeare/input.txt``.
- Beijing multi-site air quality (UCI dataset 501): the 12 station CSVs of UCI's zip. UCI ships
  them inside a zip inside a zip and the CSVs were never compared with UCI's archive hash, so the
  download is the per-station CSV from public repositories at a pinned commit: 12 stations from
  Peiris94-dev/Beijing-Multi-Site-Air-Quality-Analysis, and 11 of them (not Aotizhongxin) also
  from roccohsia/stats131group10 (2019, the same git blobs). The sha256 pins are those of the
  CSV bytes; ``gz_sha256`` are the ``gzip -n -9`` copies of minifed's shared data folder.
- NASA C-MAPSS (FD001-FD004): NASA's text files (NASA ships a zip inside a zip). Downloaded from
  OctaiPipe/datasets ``cmapss/data/raw/`` and blopax3/cmapss_anomaly_detection ``CMAPSSData/``
  at pinned commits (git blobs equal to NASA's files; the sha256 values are the ones many
  projects pin for NASA's files).
- Default of credit card clients (UCI dataset 350): UCI ships an Excel workbook, which NumPy and
  the standard library cannot read; this is the common CSV conversion ``UCI_Credit_Card.csv``
  (the Hugging Face dataset scikit-learn/credit-card-clients), from two repositories at pinned
  commits and Hugging Face.
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

GITHUB_RAW = "https://raw.githubusercontent.com/"
BEIJING_STATIONS = (
    "Aotizhongxin", "Changping", "Dingling", "Dongsi", "Guanyuan", "Gucheng", "Huairou",
    "Nongzhanguan", "Shunyi", "Tiantan", "Wanliu", "Wanshouxigong",
)  # fmt: skip
_BEIJING_MIRRORS = (
    f"{GITHUB_RAW}Peiris94-dev/Beijing-Multi-Site-Air-Quality-Analysis/"
    "0aa46c055fcca7da49ebac9329435ffe674b74c3/",
    f"{GITHUB_RAW}roccohsia/stats131group10/7ab081112080765c4fbeb7557ba25ed1af3652b6/",
)
_BEIJING_SHA256 = {  # station: (sha256 of the CSV, sha256 of its gzip -n -9 copy)
    "Aotizhongxin": (
        "a94fbcfc71708b6ffdc033360163d91efb7f675e496f6b5860929aa96b96351b",
        "28a5b697f46d2e7780a41cf4077e7b60cf3629a9ea90c8084a586ad7dac1a4d5",
    ),
    "Changping": (
        "a2e21402a6d95fb7043f87959e6e3dcbecb957aac356a6f8028a85b047c772e7",
        "338044e897f877d704fcaf460adb3695721ab26bde5dbb8d5fcb12eb19e07ab1",
    ),
    "Dingling": (
        "3d8dff81f18a80d9f455876a785642bffe1e9b9924ec1e6b7ce8cca790432eeb",
        "441e0b941e6916df524083c73eb1d2e06cad13cfc1f9ddb6e16bcaca1eb1cee3",
    ),
    "Dongsi": (
        "9c0020214425e5ee2a64d42f97a1f632e1d8f6b53ad50edd85a686cc7999f27e",
        "9143e9bdf9c8cc31fe7c996fed90aa4299f6baed07f5c808b92c930cbecbdedc",
    ),
    "Guanyuan": (
        "59390fee3b032597b387491f5230e7edb90a8558e30217ebd6d9befbe669fbf9",
        "8f5f74750038acc13d43e43bb5dff7ec94cad964f0edf4e0a0ef4a24ed4f1ca4",
    ),
    "Gucheng": (
        "10ae48801ea55869fee56a48b885fb1127859c130551888d71673f34216ba951",
        "448eec899812080e11380a748a184e9700d5e708c4303be52a9e234df3427ff3",
    ),
    "Huairou": (
        "812dcbe848b3ba2c2d25731064797bff803c46eb0c602156a1fa044df136dc26",
        "75afaac82fada503bd2c362e27c96658f988bcda14e65e702f7ef9b110700efe",
    ),
    "Nongzhanguan": (
        "572cf87b65ef543cd55d3a711b28474def224a46b0ec3fc8add8aaf13b67a487",
        "e71a07558749e736fbe8539adbef44befaea597053ff89b8bf8f3f4b22259567",
    ),
    "Shunyi": (
        "520b59e4ead3b0cfe7f1ed673e30275de8441e999db6f413d5172d2277b8c15a",
        "a5099a112eea0d8b1df522fa706ce165742986ef6d40781c9cd8e59f95e7349a",
    ),
    "Tiantan": (
        "0743e34799cf1ee36195b73321b91baa5625276532e7263c588f68cdef3b4daa",
        "5990391e4765a1c788addd4dd5115fc85c39b41d7358eaf5133cd6e174431eed",
    ),
    "Wanliu": (
        "0b1a6d754a07f0def2f55434ddfa3870dcd0063b7f766a6f66b6c11bb05a377a",
        "87351fafaaa66944852ee327f9823388795f82990700dee86243e89e1c24ddf6",
    ),
    "Wanshouxigong": (
        "ab1d6a356d6997a45f6d657ad47de1e05a4a08d4a7015b38a329a90665ab74d0",
        "a766e89cffb938f71963140037a399b4c7562c8a7b214672ba03bb40e0457b69",
    ),
}


def _beijing_file(station: str) -> DataFile:
    """The CSV of one station; roccohsia's copy of Aotizhongxin was altered, so it is left out."""
    name = f"PRSA_Data_{station}_20130301-20170228.csv"
    mirrors = _BEIJING_MIRRORS[:1] if station == "Aotizhongxin" else _BEIJING_MIRRORS
    csv_sha, gz_sha = _BEIJING_SHA256[station]
    return DataFile(name, tuple(m + name for m in mirrors), (csv_sha,), (gz_sha,))


BEIJING_AIR = DataSource("beijing-air", {s: _beijing_file(s) for s in BEIJING_STATIONS})

CMAPSS_SUBSETS = ("FD001", "FD002", "FD003", "FD004")
_CMAPSS_MIRRORS = (
    f"{GITHUB_RAW}OctaiPipe/datasets/b73a83128ac4a6231f03e23ecfff28088d003bd0/cmapss/data/raw/",
    f"{GITHUB_RAW}blopax3/cmapss_anomaly_detection/b56311eafd1c884afb045bf21e5a78412da9b920/"
    "CMAPSSData/",
)
_CMAPSS_SHA256 = {  # file: (sha256 of NASA's text file, sha256 of its gzip -n -9 copy or None)
    "train_FD001": (
        "963b5e22825b34d8b21c69e1aeb4af3e647050eb672ee8834ba4b5d91d2de0f8",
        "129645b2abec2ff391d6677af8828e9f8957164923e75a928fb1ad93b3ad5346",
    ),
    "test_FD001": (
        "3cda7109ce17bafb5443f2ac926cfcf88154b941b8c4cf95eb55d1ddd6f52851",
        "b132843f5188d465a4b252dbbf0b6940c45af1fe12afbdf427acfa71f9618c54",
    ),
    "RUL_FD001": ("a19c8ec94931949d0485bdc35118206e9c81c4547b422efb9cf86f4ceddbceca", None),
    "train_FD002": (
        "dac6c4dbc4e7c1bdeb5747da3d313d05c395bb99801b44a002b26a2ba13d788f",
        "ebc877202ad6630f624b453d96a1c19030d97002db72791455a54756bbd20620",
    ),
    "test_FD002": (
        "de7b5bf7e998a985c378488480528b7c02cff1406a46740def362dda8d9b4e02",
        "69156f4e20ad30c0c0ca93ac40ec889d595cb3b1ed60325350b9a9795c67f09d",
    ),
    "RUL_FD002": ("c851dd96a6ea6998d3c4a8f834d3c8013aa90e93a6ed950dc826ad0655b2906b", None),
    "train_FD003": (
        "2abbe9968cc5e8eb091980f51b20f62bb4127336d3482cb52071d53bf23329e2",
        "da3b3e5ee97d87e7c7f394d9dbf634a412fe2e2c1ad52a3f9e67b1f1363b2247",
    ),
    "test_FD003": (
        "299babd63c8d987cef079c4a425429f33b3a34797d803bbe2ad48c29dbd0d790",
        "26b9116c32657b82414a5cdfb968b0f18d5834ba37bda95178ba4db91293db37",
    ),
    "RUL_FD003": ("df1e0566306b174a2de41c67a3e7a51877889598b78643fc3e5685259091b7cb", None),
    "train_FD004": (
        "27ef6160b6a1dcb2613a88de9c239f763b223f02cdc41dc5cdedc5dc189b6218",
        "00d9e88f0f72e1ed1a90386e4f2a454408040200b0975550d474a4a01f0264a5",
    ),
    "test_FD004": (
        "1dc675fff0624bac10786927c6715b37d1297657137400d2b1a3138d777a3ba5",
        "fe6a66aaae62d6483b1fcf773a12e1c6efc05536fc84361edae0ee86bbd6d435",
    ),
    "RUL_FD004": ("196b836b85a95ac7fdbbf29c5fdf1657382eafa445644d114ffaaf50dc2975e1", None),
}


def _cmapss_file(key: str) -> DataFile:
    """One NASA file; blopax3's copies of train_FD001 and test_FD001 were altered: left out."""
    mirrors = _CMAPSS_MIRRORS[:1] if key in ("train_FD001", "test_FD001") else _CMAPSS_MIRRORS
    sha, gz_sha = _CMAPSS_SHA256[key]
    name = f"{key}.txt"
    return DataFile(name, tuple(m + name for m in mirrors), (sha,), (gz_sha,) if gz_sha else ())


CMAPSS = DataSource("cmapss", {key: _cmapss_file(key) for key in _CMAPSS_SHA256})

CREDIT_DEFAULT = DataSource(
    "credit-default",
    {
        "csv": DataFile(
            "UCI_Credit_Card.csv",
            (
                f"{GITHUB_RAW}Vinit21592/CreditCard-Default-Prediction/"
                "50c7e15a8ded4defae95b42d272f2c2ae04e5e52/UCI_Credit_Card.csv",
                f"{GITHUB_RAW}fju155447/uci/11fb7b341154178b42fd194e164b454533055008/"
                "UCI_Credit_Card.csv",
                "https://huggingface.co/datasets/scikit-learn/credit-card-clients/resolve/main/"
                "UCI_Credit_Card.csv",
            ),
            ("a0f0ab49d6326671d6cd83be5c88dcf18007025fe9a53ecd699119c871176ca1",),
        )
    },
)

DATASETS: dict[str, DataSource] = {
    s.name: s
    for s in (
        MNIST,
        FASHION_MNIST,
        HEART_DISEASE,
        OPTDIGITS,
        TINY_SHAKESPEARE,
        BEIJING_AIR,
        CMAPSS,
        CREDIT_DEFAULT,
    )
}
