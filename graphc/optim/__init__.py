"""``graphc.optim``: optimizers that build update expressions, and learning-rate schedules.

``opt = optim.Adam(model.params, lr=1e-3)``;
``step = gc.function([x, y], loss, updates=opt.updates(loss))`` compiles forward, backward and
update into one call. See ``docs/optimizers.md``.
"""

from .optimizers import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, Optimizer, ParamGroup, RMSProp
from .schedules import (
    CAFFE_POLICIES,
    Chain,
    Constant,
    Cosine,
    Exponential,
    Fixed,
    Inv,
    Linear,
    MultiStep,
    Poly,
    Schedule,
    Sigmoid,
    Step,
    as_schedule,
    from_caffe,
    plot,
)

__all__ = [
    "Optimizer",
    "ParamGroup",
    "SGD",
    "Momentum",
    "Nesterov",
    "AdaGrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "Schedule",
    "Constant",
    "Fixed",
    "Step",
    "MultiStep",
    "Exponential",
    "Inv",
    "Poly",
    "Linear",
    "Cosine",
    "Sigmoid",
    "Chain",
    "as_schedule",
    "from_caffe",
    "plot",
    "CAFFE_POLICIES",
]
