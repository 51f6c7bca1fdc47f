"""Federated learning in the field: four real data sets whose silos exist in the data itself.

Each builder returns a :class:`SiloTask`: ``silos[name] = (X_train, y_train, X_test, y_test)``
per silo (``X`` float32 without NaN), in a fixed silo order, with the feature names, the task
kind and what a reader needs to interpret the numbers. Every preprocessing step is stated in the
builder's docstring and uses only statistics that the silo could compute itself (its own
training rows), unless ``standardize="pooled"`` asks for the statistics of all silos' training
rows.

================  ===========================  ==================================  ==========
builder           silos                        task                                kind
================  ===========================  ==================================  ==========
``heart_silos``   4 hospitals                  heart disease (FLamby's split)      classif.
``air_silos``     12 Beijing stations          PM2.5 > 75 ug/m^3, last year test   classif.
``engine_silos``  4 C-MAPSS fleets             remaining useful life (cap 125)     regression
``credit_silos``  education segments or        default next month (synthetic       classif.
                  Dirichlet label skew         silos: the data have none)
================  ===========================  ==================================  ==========

:func:`compare_silos` trains each silo alone, all silos pooled and federated, and scores every
model on every silo's own test set; :func:`format_markdown` prints its table and
:func:`silo_gains` says which silos gain from federation. ``benchmarks/applications.py`` runs
the four cases.
"""

from minifed.applications._common import SiloTask
from minifed.applications.air import air_silos
from minifed.applications.compare import compare_silos, format_markdown, silo_gains
from minifed.applications.credit import credit_silos
from minifed.applications.engines import engine_silos
from minifed.applications.heart import heart_silos

__all__ = [
    "SiloTask",
    "air_silos",
    "compare_silos",
    "credit_silos",
    "engine_silos",
    "format_markdown",
    "heart_silos",
    "silo_gains",
]
