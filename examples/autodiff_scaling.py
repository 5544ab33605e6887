"""Forward against reverse mode as the number of inputs (f: R^n -> R) and outputs (g: R -> R^m)
grows: forward mode needs one sweep per input, reverse mode one per output.

Run: python examples/autodiff_scaling.py [--plot-dir docs/pictures]
"""

from __future__ import annotations

import argparse
import pathlib

import graphc as gc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,3,10,30,100,300,1000")
    parser.add_argument("--plot-dir", help="save scaling_inputs.png and scaling_outputs.png here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for kind in ("inputs", "outputs"):
        study = gc.scaling(kind, sizes)
        results[kind] = study
        print(study)
        print("forward/reverse run-time ratio:", ", ".join(f"{n}: {study.ratio(n):.2f}" for n in sizes))
        print()
        if args.plot_dir:
            study.plot(pathlib.Path(args.plot_dir) / f"scaling_{kind}.png")
    return results


if __name__ == "__main__":
    main()
