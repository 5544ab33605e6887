"""Optimizers that build update expressions, so one compiled function trains.

In a static graph the optimizer step is part of the graph: ``opt.updates(loss)`` returns new
values for the parameters, the optimizer's state (moments, accumulators: shared variables created
once per optimizer, so every training graph built from it shares them) and its step counter
``opt.iterations``, and ``gc.function(..., updates=opt.updates(loss))`` runs forward, backward and
update in one call::

    opt = optim.Adam(model.param_groups(), lr=1e-3)
    step = gc.function([x, y], loss, updates={**opt.updates(loss), **model.state_updates()})

The formulas are PyTorch's (``torch.optim``, single-tensor code path), operation for operation, so
float64 results agree with it to rounding; each class docstring gives the rule in the lecture's
notation (seeds 000-004) and says where PyTorch writes it differently. ``lr_mult`` and
``decay_mult`` of a parameter group scale the learning rate and weight decay as Caffe's
``param { lr_mult decay_mult }`` do (a PyTorch group with ``lr = lr * lr_mult``,
``weight_decay = weight_decay * decay_mult``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..autodiff import grad as gc_grad
from ..errors import DTypeError, ShapeError, UsageError
from ..graph import SharedVariable, Variable, shared
from ..nn.module import load_values
from ..ops import as_variable, cast, eq, maximum, sqrt, where
from .schedules import Constant, Schedule, as_schedule

_GROUP_KEYS = ("params", "lr_mult", "decay_mult")


@dataclass
class ParamGroup:
    """Parameters that share Caffe's multipliers: lr = lr * lr_mult, decay = weight_decay * decay_mult."""

    params: list[SharedVariable]
    lr_mult: float = 1.0
    decay_mult: float = 1.0


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v)


def _check(who: str, name: str, value, low: float = 0.0, high: float | None = None, high_open: bool = True):
    """Hyper-parameters are checked when the optimizer is built, not when the step misbehaves."""
    if not _is_number(value) or value < low or (high is not None and (value >= high if high_open else value > high)):
        bound = f"in [{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
        raise UsageError(f"{who}: {name} must be a number {bound}, got {value!r}")
    return float(value)


def _groups(params, who: str) -> list[ParamGroup]:
    from ..nn.module import Module

    if isinstance(params, Module):
        params = params.param_groups()
    if isinstance(params, (SharedVariable, Mapping)):
        params = [params]
    try:
        items = list(params)
    except TypeError:
        raise UsageError(f"{who}: params must be a list of shared variables or of param-group dicts") from None
    if not items:
        raise UsageError(f"{who}: got no parameters to optimize")
    if all(isinstance(item, Mapping) for item in items):
        groups = []
        for k, item in enumerate(items):
            unknown = sorted(set(item) - set(_GROUP_KEYS))
            if unknown or "params" not in item:
                problem = f"unknown keys {unknown}" if unknown else "no 'params'"
                raise UsageError(f"{who}: param group {k} has {problem}; a group has keys {', '.join(_GROUP_KEYS)}")
            lr_mult = _check(who, f"lr_mult of param group {k}", item.get("lr_mult", 1.0))
            decay_mult = _check(who, f"decay_mult of param group {k}", item.get("decay_mult", 1.0))
            ps = item["params"]
            groups.append(ParamGroup([ps] if isinstance(ps, SharedVariable) else list(ps), lr_mult, decay_mult))
    elif any(isinstance(item, Mapping) for item in items):
        raise UsageError(f"{who}: params mixes param-group dicts and bare parameters; wrap the bare ones in a group")
    else:
        groups = [ParamGroup(items)]
    seen = set()
    position = 0
    for group in groups:
        for p in group.params:
            if not isinstance(p, SharedVariable):
                raise UsageError(
                    f"{who}: parameter {position} is {p!r}, not a shared variable (gc.shared); "
                    "an optimizer can only update values that live across calls"
                )
            if p.dtype not in ("float32", "float64"):
                raise DTypeError(f"{who}: parameter {p.name or position} has dtype {p.dtype}; only floats are trained")
            if p in seen:
                raise UsageError(f"{who}: parameter {p.name or position} is listed twice")
            seen.add(p)
            position += 1
    return groups


def _fit(x, dtype: str):
    """A scalar factor in the parameter's dtype: Python numbers stay weak (float32 * 0.1 is
    float32), graph scalars (scheduled rates, bias corrections: float64) are cast."""
    return cast(x, dtype) if isinstance(x, Variable) else x


def _lerp(start, end, weight: float):
    """``torch.lerp`` as PyTorch computes it (two forms, for accuracy near each end)."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


class Optimizer:
    """The base of every optimizer: parameters in groups, a learning rate, the state and the step counter.

    ``params``: a list of ``gc.shared`` parameters, a list of groups ``{"params": [...], "lr_mult":
    1.0, "decay_mult": 1.0}`` (``Module.param_groups()`` returns this form), or a ``Module``.
    ``lr``: a number, a schedule (``graphc.optim.Step(...)``; it reads ``iterations``), or a scalar
    graphc variable (a ``gc.shared`` you set between calls). ``weight_decay``: L2 decay added to
    the gradient (``g + weight_decay * decay_mult * w``), except in ``AdamW``, which decouples it.
    """

    def __init__(self, params, lr, weight_decay: float = 0.0):
        who = type(self).__name__
        self.groups = _groups(params, who)
        self.params: list[SharedVariable] = [p for g in self.groups for p in g.params]
        if isinstance(lr, Variable):
            if lr.ndim != 0 or lr.dtype not in ("float32", "float64"):
                raise UsageError(f"{who}: a symbolic lr must be a float scalar, got {lr.type}")
            self.lr = lr
        else:
            if _is_number(lr):
                _check(who, "lr", lr)
            self.lr = as_schedule(lr, who)
        self.weight_decay = _check(who, "weight_decay", weight_decay)
        self.iterations = shared(np.int64(0), name=f"{who}.iterations")
        self.slots: dict[SharedVariable, dict[str, SharedVariable]] = {}

    # -- state ------------------------------------------------------------------------------------

    def _slot_specs(self) -> list[tuple[str, float]]:
        """(slot name, initial value) per parameter; subclasses call ``_init_slots`` after
        setting their options, since the slots depend on them (momentum buffers only with momentum)."""
        return []

    def _init_slots(self) -> None:
        names = [p.name or f"param{i}" for i, p in enumerate(self.params)]
        for i, (p, name) in enumerate(zip(self.params, names)):
            if names.count(name) > 1:  # keys of state_dict must be unique
                name = f"{name}#{i}"
            shape = p.get_value(borrow=True).shape
            self.slots[p] = {
                slot: shared(np.full(shape, fill, dtype=p.dtype), name=f"{name}.{slot}", shape=p.type.shape)
                for slot, fill in self._slot_specs()
            }

    def _state_vars(self) -> dict[str, SharedVariable]:
        out = {"iterations": self.iterations}
        for slots in self.slots.values():
            out.update({var.name: var for var in slots.values()})
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """The step counter and every slot by name (copies): with the parameters, a checkpoint."""
        return {name: var.get_value() for name, var in self._state_vars().items()}

    def load_state_dict(self, values: Mapping[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` saved; the names and shapes must match exactly."""
        load_values(self._state_vars(), values, type(self).__name__, "this optimizer")

    def reset(self) -> None:
        """Forget the state: slots back to their initial values, the counter to 0."""
        self.iterations.set_value(np.int64(0))
        fills = dict(self._slot_specs())
        for slots in self.slots.values():
            for slot, var in slots.items():
                var.set_value(np.full(var.get_value(borrow=True).shape, fills[slot], dtype=var.dtype))

    def lr_value(self) -> float:
        """The base learning rate the next step will use (before ``lr_mult``)."""
        if isinstance(self.lr, Schedule):
            return self.lr.value(int(self.iterations.get_value()))
        return float(self.lr.get_value()) if isinstance(self.lr, SharedVariable) else float("nan")

    # -- the update -------------------------------------------------------------------------------

    def _grads(self, loss, grads) -> list[Variable]:
        who = type(self).__name__
        if grads is None:
            if loss is None:
                raise UsageError(f"{who}.updates needs a loss or the gradients")
            return gc_grad(loss, self.params)
        if isinstance(grads, Mapping):
            lacking = [p.name or "?" for p in self.params if p not in grads]
            if lacking:
                raise UsageError(f"{who}.updates: grads has no gradient for {', '.join(lacking)}")
            grads = [grads[p] for p in self.params]
        grads = list(grads)
        if len(grads) != len(self.params):
            raise UsageError(f"{who}.updates: got {len(grads)} gradients for {len(self.params)} parameters")
        out = []
        for p, g in zip(self.params, grads):
            g = as_variable(g)
            if g.dtype not in ("float32", "float64"):
                raise DTypeError(f"{who}.updates: the gradient of {p.name or '?'} has dtype {g.dtype}")
            if not p.type.is_compatible(g.type):
                raise ShapeError(f"{who}.updates: the gradient of {p.name or '?'} is {g.type}, the parameter {p.type}")
            out.append(cast(g, p.dtype))
        return out

    def _base_lr(self):
        """A Python float for a constant rate (weak: keeps float32 graphs float32), else a graph scalar."""
        if isinstance(self.lr, Constant):
            return self.lr.base_lr
        if isinstance(self.lr, Schedule):
            return self.lr.symbolic(self.iterations)
        return self.lr

    def updates(self, loss=None, grads=None) -> dict[SharedVariable, Variable]:
        """New values for every parameter, every slot and ``iterations``, as graph expressions.

        ``grads`` (a list in parameter order, or a dict by parameter) replaces ``gc.grad(loss,
        params)``, e.g. for clipped gradients. Calling this again builds another graph over the
        same state: both compiled steps then advance one optimizer.
        """
        grads = self._grads(loss, grads)
        base = self._base_lr()
        out: dict[SharedVariable, Variable] = {}
        k = 0
        for group in self.groups:
            lr = base * group.lr_mult if group.lr_mult != 1.0 else base
            wd = self.weight_decay * group.decay_mult
            for p in group.params:
                out.update(self._update(p, grads[k], lr, wd, self.slots[p]))
                k += 1
        out[self.iterations] = self.iterations + 1
        return out

    def _update(self, p, g, lr, wd, slots) -> dict[SharedVariable, Variable]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.params)} parameters, lr={self.lr!r})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov momentum, dampening, L2 decay.

    Lecture (file 004): ``w^t = w^(t-1) - eta grad L(w^(t-1))``; with momentum ``mu`` it writes
    the velocity with the rate inside, ``v^t = mu v^(t-1) - eta g^t``, ``w^t = w^(t-1) + v^t``.
    PyTorch (and graphc) keep the rate outside: ``v^t = mu v^(t-1) + (1 - dampening) g^t`` (``v^1 =
    g^1``), ``w^t = w^(t-1) - eta v^t``. For a constant ``eta`` (and no dampening) the two give the
    same weights: by induction the lecture's velocity is ``-eta`` times PyTorch's. With a schedule
    they differ: a new rate here scales the whole velocity at once, in the lecture's (Caffe's)
    form only the new gradients. Nesterov (Sutskever et al. 2013, evaluated at the current
    weights): ``w^t = w^(t-1) - eta (g^t + mu v^t)``. ``g^t`` includes ``weight_decay * w``.
    Slot: ``v`` (the velocity, only with momentum).
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
        super().__init__(params, lr, weight_decay)
        who = type(self).__name__
        self.momentum = _check(who, "momentum", momentum)
        self.dampening = _check(who, "dampening", dampening, 0.0, 1.0, high_open=False)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise UsageError(f"{who}: Nesterov momentum needs momentum > 0 and dampening = 0")
        self._init_slots()

    def _slot_specs(self):
        return [("v", 0.0)] if self.momentum else []

    def _update(self, p, g, lr, wd, slots):
        out = {}
        if wd:
            g = g + wd * p
        if self.momentum:
            v = slots["v"]
            new_v = self.momentum * v + (1.0 - self.dampening) * g
            if self.dampening:  # PyTorch starts the buffer at g itself, undamped
                new_v = where(eq(self.iterations, 0), g, new_v)
            out[v] = new_v
            g = g + self.momentum * new_v if self.nesterov else new_v
        out[p] = p - _fit(lr, p.dtype) * g
        return out


class Momentum(SGD):
    """SGD with (heavy-ball) momentum, 0.9 unless given; see :class:`SGD` for the rule."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, dampening=0.0):
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay, dampening=dampening)


class Nesterov(SGD):
    """SGD with Nesterov momentum, 0.9 unless given; see :class:`SGD` for the rule.

    Sutskever's form evaluates the gradient at the look-ahead point ``w + mu v``; PyTorch's (used
    here) is the same method rewritten in the variable ``w' = w + mu v``, so the gradient is taken
    at the weights the graph has: ``v^t = mu v^(t-1) + g^t``, ``w^t = w^(t-1) - eta (g^t + mu v^t)``.
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al. 2011): per-parameter rates shrinking with the squared gradients seen.

    Lecture (file 004), with ``delta = eps``: ``r^t = r^(t-1) + g^t (.) g^t``,
    ``w^t = w^(t-1) - eta / (sqrt(r^t) + delta) (.) g^t``; PyTorch's rule is the same, with
    ``r^0 = initial_accumulator_value`` and ``eta_t = eta / (1 + (t-1) lr_decay)``.
    Slot: ``r`` (the running sum of squares).
    """

    def __init__(self, params, lr=0.01, eps=1e-10, initial_accumulator_value=0.0, weight_decay=0.0, lr_decay=0.0):
        super().__init__(params, lr, weight_decay)
        who = type(self).__name__
        self.eps = _check(who, "eps", eps)
        self.initial_accumulator_value = _check(who, "initial_accumulator_value", initial_accumulator_value)
        self.lr_decay = _check(who, "lr_decay", lr_decay)
        self._init_slots()

    def _slot_specs(self):
        return [("r", self.initial_accumulator_value)]

    def _update(self, p, g, lr, wd, slots):
        if wd:
            g = g + wd * p
        if self.lr_decay:
            lr = lr / (1.0 + cast(self.iterations, "float64") * self.lr_decay)
        r = slots["r"]
        new_r = r + g * g
        return {r: new_r, p: p - _fit(lr, p.dtype) * (g / (sqrt(new_r) + self.eps))}


class RMSProp(Optimizer):
    """RMSProp (Hinton 2012, "leaky AdaGrad"): a moving average of squared gradients normalizes the step.

    Lecture (file 004), ``delta = eps``: ``r^t = alpha r^(t-1) + (1 - alpha) g^t (.) g^t``,
    ``w^t = w^(t-1) - eta / (sqrt(r^t) + delta) (.) g^t``, as PyTorch's ``RMSprop``. (File 001
    puts ``eps`` inside the root, ``sqrt(r + eps)``; the lecture's slide code writes ``r +=``
    where it means ``r =``.) ``centered`` divides by ``sqrt(r - m^2)`` instead, ``m`` the moving
    average of the gradients (Graves 2013); ``momentum`` accumulates the normalized step,
    ``v^t = mu v^(t-1) + g^t / (sqrt(r^t) + eps)``, ``w^t = w^(t-1) - eta v^t``.
    Slots: ``r``, ``m`` (centered), ``v`` (momentum).
    """

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        who = type(self).__name__
        self.alpha = _check(who, "alpha", alpha, 0.0, 1.0)
        self.eps = _check(who, "eps", eps)
        self.momentum = _check(who, "momentum", momentum)
        self.centered = bool(centered)
        self._init_slots()

    def _slot_specs(self):
        return [("r", 0.0)] + [("m", 0.0)] * self.centered + [("v", 0.0)] * bool(self.momentum)

    def _update(self, p, g, lr, wd, slots):
        out = {}
        if wd:
            g = g + wd * p
        r = slots["r"]
        out[r] = new_r = self.alpha * r + (1.0 - self.alpha) * (g * g)
        if self.centered:
            m = slots["m"]
            out[m] = new_m = _lerp(m, g, 1.0 - self.alpha)
            avg = sqrt(new_r - new_m * new_m)
        else:
            avg = sqrt(new_r)
        avg = avg + self.eps
        if self.momentum:
            v = slots["v"]
            out[v] = step = self.momentum * v + g / avg
        else:
            step = g / avg
        out[p] = p - _fit(lr, p.dtype) * step
        return out


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014): momentum and RMSProp, with the zero start's bias corrected.

    Lecture (file 004), ``beta1, beta2, delta = betas, eps``: ``s^t = beta1 s^(t-1) + (1 - beta1) g^t``,
    ``r^t = beta2 r^(t-1) + (1 - beta2) g^t (.) g^t``, ``s_hat = s^t / (1 - beta1^t)``,
    ``r_hat = r^t / (1 - beta2^t)``, ``w^t = w^(t-1) - eta s_hat / (sqrt(r_hat) + delta)``.
    PyTorch computes the same as ``w - (eta / (1 - beta1^t)) s / (sqrt(r) / sqrt(1 - beta2^t) + eps)``,
    as here. ``weight_decay`` adds ``lambda w`` to ``g`` (L2; see :class:`AdamW` for decoupled
    decay); ``amsgrad`` divides by the running maximum of ``r`` (Reddi et al. 2018).
    Slots: ``m`` (= ``s``, the first moment), ``v`` (= ``r``, the second), ``v_max`` (amsgrad);
    ``t`` is ``iterations + 1``.
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr, weight_decay)
        who = type(self).__name__
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise UsageError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}") from None
        self.betas = (_check(who, "beta1", beta1, 0.0, 1.0), _check(who, "beta2", beta2, 0.0, 1.0))
        self.eps = _check(who, "eps", eps)
        self.amsgrad = bool(amsgrad)
        self._init_slots()

    def _slot_specs(self):
        return [("m", 0.0), ("v", 0.0)] + [("v_max", 0.0)] * self.amsgrad

    def _update(self, p, g, lr, wd, slots):
        beta1, beta2 = self.betas
        out = {}
        w = p
        if wd and self.decoupled:
            w = p * _fit(1.0 - lr * wd, p.dtype)
        elif wd:
            g = g + wd * p
        m, v = slots["m"], slots["v"]
        out[m] = new_m = _lerp(m, g, 1.0 - beta1)
        out[v] = new_v = beta2 * v + (1.0 - beta2) * (g * g)
        t = cast(self.iterations + 1, "float64")
        step_size = lr / (1.0 - beta1**t)
        bc2_sqrt = sqrt(1.0 - beta2**t)
        if self.amsgrad:
            v_max = slots["v_max"]
            out[v_max] = new_v = maximum(v_max, new_v)
        denom = sqrt(new_v) / _fit(bc2_sqrt, p.dtype) + self.eps
        out[p] = w - _fit(step_size, p.dtype) * (new_m / denom)
        return out


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019).

    Lecture (file 004): each step also pulls the weights to zero, ``w <- w - eta lambda w``,
    outside the adaptive normalization (L2 in Adam's gradient gets divided by ``sqrt(r_hat)``, so
    large-gradient weights would barely decay). PyTorch, as here, decays first:
    ``w <- w (1 - eta lambda)``, then takes the Adam step. ``lambda = weight_decay * decay_mult``.
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
