"""Learning-rate schedules: the learning rate as a function of the iteration count.

A schedule has two faces because graphc's training step is one compiled graph: ``value(t)``
computes the rate with numpy (plots, tests, logging), and ``symbolic(t)`` builds the same formula
as graph nodes over the optimizer's step counter, so the compiled step reads the current rate
itself and no Python code has to run between steps. Both read ``t`` = the number of updates done
so far (0 at the first step), as Caffe's solver and PyTorch's ``scheduler.step()`` after each
``optimizer.step()`` do.

The names follow the lecture (file 004) and Caffe's ``lr_policy`` (``from_caffe``): the lecture's
*Linear* is :class:`Linear`, its *Power* ``eta0 (1 + t/s)^c`` is Caffe's ``inv`` (:class:`Inv`
with ``gamma = 1/s``, ``power = -c``), its *Exponential* ``eta0 c^(t/s)`` is :class:`Exponential`
(``period=s``; Caffe's ``exp`` has ``s = 1``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import UsageError
from ..graph import Variable
from ..ops import cast, cos, ge, lt, maximum, minimum, sigmoid, where


def _t(iteration) -> Variable:
    if not isinstance(iteration, Variable) or iteration.ndim != 0:
        raise UsageError(
            f"a schedule's symbolic() needs a scalar graphc variable (the step counter), got {iteration!r}"
        )
    return cast(iteration, "float64")


def _positive(who: str, **values) -> None:
    for name, v in values.items():
        if not isinstance(v, (int, float, np.integer, np.floating)) or not v > 0:
            raise UsageError(f"{who}: {name} must be a positive number, got {v!r}")


def _number(who: str, **values) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise UsageError(f"{who}: {name} must be a finite number, got {v!r}")


class Schedule:
    """The base of every schedule: ``value(t)`` with numpy, ``symbolic(t)`` as a graph."""

    def value(self, iteration):
        """The rate at ``iteration`` (an int or an array of them): a float or a float64 array."""
        t = np.asarray(iteration, dtype=np.float64)
        out = np.asarray(self._value(t), dtype=np.float64)
        return float(out) if out.ndim == 0 else out

    def symbolic(self, iteration: Variable) -> Variable:
        """The rate as a float64 scalar graph of the step counter ``iteration``."""
        return cast(self._symbolic(_t(iteration)), "float64")

    def _value(self, t: np.ndarray):
        raise NotImplementedError

    def _symbolic(self, t: Variable) -> Variable:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``lr_t = base_lr`` (Caffe ``fixed``)."""

    def __init__(self, base_lr: float):
        _number("Constant", base_lr=base_lr)
        self.base_lr = float(base_lr)

    def _value(self, t):
        return np.full_like(t, self.base_lr)

    def _symbolic(self, t):
        return t * 0.0 + self.base_lr


Fixed = Constant


class Step(Schedule):
    """``lr_t = base_lr * gamma^floor(t / step_size)`` (Caffe ``step``, PyTorch ``StepLR``)."""

    def __init__(self, base_lr: float, gamma: float, step_size: int):
        _number("Step", base_lr=base_lr, gamma=gamma)
        _positive("Step", step_size=step_size)
        self.base_lr, self.gamma, self.step_size = float(base_lr), float(gamma), step_size

    def _value(self, t):
        return self.base_lr * self.gamma ** np.floor(t / self.step_size)

    def _symbolic(self, t):
        # floor by truncation: t >= 0, and an exact integer quotient of integers is exact in float64
        k = cast(cast(t / float(self.step_size), "int64"), "float64")
        return self.base_lr * self.gamma**k


class MultiStep(Schedule):
    """``lr_t = base_lr * gamma^(number of milestones <= t)`` (Caffe ``multistep`` with its
    ``stepvalue`` list, PyTorch ``MultiStepLR``)."""

    def __init__(self, base_lr: float, gamma: float, milestones: Sequence[int]):
        _number("MultiStep", base_lr=base_lr, gamma=gamma)
        milestones = [milestones] if isinstance(milestones, (int, np.integer)) else list(milestones)
        for m in milestones:
            _positive("MultiStep", milestones=m)
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise UsageError(f"MultiStep: milestones must increase, got {milestones}")
        self.base_lr, self.gamma, self.milestones = float(base_lr), float(gamma), milestones

    def _value(self, t):
        count = sum((t >= m).astype(np.float64) for m in self.milestones) if self.milestones else 0.0 * t
        return self.base_lr * self.gamma**count

    def _symbolic(self, t):
        count = t * 0.0
        for m in self.milestones:
            count = count + cast(ge(t, float(m)), "float64")
        return self.base_lr * self.gamma**count


class Exponential(Schedule):
    """``lr_t = base_lr * gamma^(t / period)`` (Caffe ``exp`` and PyTorch ``ExponentialLR`` with
    ``period=1``; the lecture's *Exponential* ``eta0 c^(t/s)`` with ``c = gamma``, ``s = period``)."""

    def __init__(self, base_lr: float, gamma: float, period: float = 1):
        _number("Exponential", base_lr=base_lr, gamma=gamma)
        _positive("Exponential", period=period)
        self.base_lr, self.gamma, self.period = float(base_lr), float(gamma), period

    def _value(self, t):
        return self.base_lr * self.gamma ** (t / self.period)

    def _symbolic(self, t):
        return self.base_lr * self.gamma ** (t / float(self.period))


class Inv(Schedule):
    """``lr_t = base_lr * (1 + gamma t)^(-power)`` (Caffe ``inv``; the lecture's *Power*
    ``eta0 (1 + t/s)^c`` with ``gamma = 1/s``, ``power = -c``)."""

    def __init__(self, base_lr: float, gamma: float, power: float):
        _number("Inv", base_lr=base_lr, power=power)
        _positive("Inv", gamma=gamma)
        self.base_lr, self.gamma, self.power = float(base_lr), float(gamma), float(power)

    def _value(self, t):
        return self.base_lr * (1.0 + self.gamma * t) ** (-self.power)

    def _symbolic(self, t):
        return self.base_lr * (1.0 + self.gamma * t) ** (-self.power)


class Poly(Schedule):
    """``lr_t = base_lr * (1 - min(t, max_iter) / max_iter)^power`` (Caffe ``poly``, PyTorch
    ``PolynomialLR``): reaches 0 at ``max_iter`` and stays there (Caffe stops training there)."""

    def __init__(self, base_lr: float, power: float, max_iter: int):
        _number("Poly", base_lr=base_lr)
        _positive("Poly", power=power, max_iter=max_iter)
        self.base_lr, self.power, self.max_iter = float(base_lr), float(power), max_iter

    def _value(self, t):
        return self.base_lr * (1.0 - np.minimum(t, self.max_iter) / self.max_iter) ** self.power

    def _symbolic(self, t):
        return self.base_lr * (1.0 - minimum(t, float(self.max_iter)) / float(self.max_iter)) ** self.power


class Linear(Schedule):
    """``lr_t = (1 - t/K) start + (t/K) end`` for ``t <= K = steps``, then ``end``: the lecture's
    *Linear* schedule; a decay when ``end < start``, a warm-up when ``end > start``."""

    def __init__(self, start: float, end: float, steps: int):
        _number("Linear", start=start, end=end)
        _positive("Linear", steps=steps)
        self.start, self.end, self.steps = float(start), float(end), steps

    def _value(self, t):
        f = np.minimum(t, self.steps) / self.steps
        return (1.0 - f) * self.start + f * self.end

    def _symbolic(self, t):
        f = minimum(t, float(self.steps)) / float(self.steps)
        return (1.0 - f) * self.start + f * self.end


class Cosine(Schedule):
    """``lr_t = min_lr + (base_lr - min_lr) (1 + cos(pi min(t, T) / T)) / 2`` with ``T = max_iter``
    (SGDR's cosine annealing without restarts; PyTorch ``CosineAnnealingLR``)."""

    def __init__(self, base_lr: float, max_iter: int, min_lr: float = 0.0):
        _number("Cosine", base_lr=base_lr, min_lr=min_lr)
        _positive("Cosine", max_iter=max_iter)
        self.base_lr, self.max_iter, self.min_lr = float(base_lr), max_iter, float(min_lr)

    def _value(self, t):
        c = np.cos(np.pi * np.minimum(t, self.max_iter) / self.max_iter)
        return self.min_lr + (self.base_lr - self.min_lr) * (1.0 + c) / 2.0

    def _symbolic(self, t):
        c = cos(np.pi * minimum(t, float(self.max_iter)) / float(self.max_iter))
        return self.min_lr + (self.base_lr - self.min_lr) * (1.0 + c) / 2.0


class Sigmoid(Schedule):
    """``lr_t = base_lr / (1 + exp(-gamma (t - step_size)))`` (Caffe ``sigmoid``): a smooth step
    at ``step_size``, down when ``gamma < 0``."""

    def __init__(self, base_lr: float, gamma: float, step_size: float):
        _number("Sigmoid", base_lr=base_lr, gamma=gamma, step_size=step_size)
        self.base_lr, self.gamma, self.step_size = float(base_lr), float(gamma), step_size

    def _value(self, t):
        return self.base_lr / (1.0 + np.exp(-self.gamma * (t - self.step_size)))

    def _symbolic(self, t):
        return self.base_lr * sigmoid(self.gamma * (t - float(self.step_size)))


class Chain(Schedule):
    """Schedules one after the other: ``Chain([Linear(0, 1e-3, 500), Cosine(1e-3, 9500)], [500])``
    warms up for 500 steps, then anneals. Each later schedule sees ``t - boundary``, so it starts
    from its own step 0."""

    def __init__(self, schedules: Sequence[Schedule], boundaries: Sequence[int]):
        schedules, boundaries = list(schedules), list(boundaries)
        if len(schedules) != len(boundaries) + 1:
            raise UsageError(
                f"Chain: {len(schedules)} schedules need {len(schedules) - 1} boundaries, got {len(boundaries)}"
            )
        for s in schedules:
            if not isinstance(s, Schedule):
                raise UsageError(f"Chain: {s!r} is not a schedule")
        for b in boundaries:
            _positive("Chain", boundaries=b)
        if any(b <= a for a, b in zip(boundaries, boundaries[1:])):
            raise UsageError(f"Chain: boundaries must increase, got {boundaries}")
        self.schedules, self.boundaries = schedules, boundaries

    def _value(self, t):
        out = self.schedules[0]._value(t)
        for s, b in zip(self.schedules[1:], self.boundaries):
            out = np.where(t < b, out, s._value(np.maximum(t - b, 0.0)))
        return out

    def _symbolic(self, t):
        out = self.schedules[0]._symbolic(t)
        for s, b in zip(self.schedules[1:], self.boundaries):
            out = where(lt(t, float(b)), out, s._symbolic(maximum(t - float(b), 0.0)))
        return out


def as_schedule(lr, who: str = "optimizer") -> Schedule:
    """A schedule for ``lr``: schedules pass through, numbers become :class:`Constant`."""
    if isinstance(lr, Schedule):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise UsageError(f"{who}: lr must be a number or a schedule (graphc.optim.Step, ...), got {lr!r}")
    return Constant(lr)


# ----- Caffe ---------------------------------------------------------------------------------------

#: lr_policy -> (the schedule, its solver parameters in the constructor's order)
CAFFE_POLICIES = {
    "fixed": (Constant, ("base_lr",)),
    "step": (Step, ("base_lr", "gamma", "stepsize")),
    "exp": (Exponential, ("base_lr", "gamma")),
    "inv": (Inv, ("base_lr", "gamma", "power")),
    "multistep": (MultiStep, ("base_lr", "gamma", "stepvalue")),
    "poly": (Poly, ("base_lr", "power", "max_iter")),
    "sigmoid": (Sigmoid, ("base_lr", "gamma", "stepsize")),
}


def _caffe_number(policy: str, key: str, value, integer: bool):
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"from_caffe: lr_policy {policy!r}: {key} must be a number, got {value!r}") from None
    if integer:
        if number != int(number):
            raise UsageError(f"from_caffe: lr_policy {policy!r}: {key} must be an integer, got {value!r}")
        return int(number)
    return number


def from_caffe(solver: Mapping | str) -> Schedule:
    """The schedule of a Caffe solver: a dict of its fields or the text of a ``solver.prototxt``.

    Text is read by graphc's protobuf text-format parser (``graphc.caffe.prototxt.parse``, the one
    ``graphc train`` uses), so anything Caffe accepts reads the same here: several fields on one
    line, ``stepvalue: [100, 250]``, ``#`` inside quoted strings; a syntax error is a
    ``PrototxtError`` with line and column. Reads ``lr_policy`` and the parameters it needs
    (``base_lr``, ``gamma``, ``power``, ``stepsize``, ``stepvalue`` (repeated: a list),
    ``max_iter``); a missing one is an error naming the policy and the parameter, as is an unknown
    policy.
    """
    if isinstance(solver, str):
        from ..caffe.prototxt import parse  # lazy: graphc.caffe imports graphc.optim

        solver = parse(solver, "SolverParameter", filename="<solver text>")
    if not isinstance(solver, Mapping):
        raise UsageError(f"from_caffe needs a dict of solver fields or prototxt text, got {type(solver).__name__}")
    if "lr_policy" not in solver:
        raise UsageError(f"from_caffe: the solver has no lr_policy (one of {', '.join(CAFFE_POLICIES)})")
    policy = str(solver["lr_policy"]).strip().strip('"')
    if policy not in CAFFE_POLICIES:
        raise UsageError(f"from_caffe: unknown lr_policy {policy!r}; graphc knows {', '.join(CAFFE_POLICIES)}")
    cls, keys = CAFFE_POLICIES[policy]
    args = []
    for key in keys:
        if key not in solver:
            raise UsageError(f"from_caffe: lr_policy {policy!r} needs {key!r}, which the solver does not set")
        value = solver[key]
        if key == "stepvalue":
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            args.append([_caffe_number(policy, key, v, integer=True) for v in values])
        else:
            args.append(_caffe_number(policy, key, value, integer=key in ("stepsize", "max_iter")))
    return cls(*args)


# ----- plotting ------------------------------------------------------------------------------------


def plot(schedules, iterations, ax=None, path=None):
    """Plot schedules over ``iterations`` (a count or an array); returns the matplotlib figure.

    ``schedules`` is one schedule, a list of them, or a dict ``{label: schedule}``.
    """
    from ..plots import _pyplot

    if isinstance(schedules, Schedule):
        schedules = [schedules]
    items = schedules.items() if isinstance(schedules, Mapping) else [(repr(s), s) for s in schedules]
    t = np.arange(iterations) if np.ndim(iterations) == 0 else np.asarray(iterations)
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
    else:
        fig = ax.figure
    for label, s in items:
        if not isinstance(s, Schedule):
            raise UsageError(f"plot: {s!r} is not a schedule")
        ax.plot(t, s.value(t), label=label)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
