"""``graphc.caffe``: Caffe's net and solver files (prototxt or YAML) as graphc graphs and training runs.

    from graphc import caffe
    net = caffe.build(caffe.load_net("lenet_train_test.prototxt"), "TRAIN", bindings={...})
    solver = caffe.Solver("lenet_solver.prototxt", bindings={...}); solver.solve()

or on the command line: ``graphc train --solver lenet_solver.prototxt --data SOURCE=digits:train``.
See ``docs/caffe.md``.
"""

from .data import digits, load_layer_data, parse_binding
from .fillers import fill
from .layers import LAYERS, SUPPORTED, NetError, NetShapeError
from .net import CaffeModel, Net, build, included, load_and_build
from .prototxt import PrototxtError, load, load_net, load_solver, parse, parse_yaml
from .solver import CaffeSGD, Solver, load_snapshot, main_train

__all__ = [
    "CaffeModel",
    "CaffeSGD",
    "LAYERS",
    "Net",
    "NetError",
    "NetShapeError",
    "PrototxtError",
    "SUPPORTED",
    "Solver",
    "build",
    "digits",
    "fill",
    "included",
    "load",
    "load_and_build",
    "load_layer_data",
    "load_net",
    "load_snapshot",
    "load_solver",
    "main_train",
    "parse",
    "parse_binding",
    "parse_yaml",
]
