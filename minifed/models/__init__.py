"""Models with parameters in one flat vector ``w`` and hand-written gradients."""

from minifed.models.base import Model
from minifed.models.cnn import CNN
from minifed.models.gradcheck import gradcheck
from minifed.models.linear import LinearRegression, LogisticRegression, SoftmaxRegression
from minifed.models.mlp import MLP

__all__ = [
    "CNN",
    "MLP",
    "LinearRegression",
    "LogisticRegression",
    "Model",
    "SoftmaxRegression",
    "gradcheck",
]
