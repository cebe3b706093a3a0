"""python -m wick_worker.aot_compile: compiles a torch.export.save'd ExportedProgram into an
AOTInductor package (.pt2) with this interpreter's torch, for `wick pack --aot-compile`.

    python -m wick_worker.aot_compile --exported EP.pt2 --out MODEL.pt2 --max-batch N
                                      [--example-inputs X.pt]

The program is exported again from its module with dimension 0 of every tensor input
dynamic in 1..N (static when N is 1), then compiled. A program whose graph fixes the batch
(exported with static shapes, and a reshape to its example's batch) cannot be: it is
compiled as saved, with a warning saying how to export it with a dynamic batch. The example inputs are X.pt (a tensor,
or a tuple or list of tensors, read with torch.load(weights_only=True)) or else the sample
inputs the program was saved with. The last line printed is "torch <version>".
"""
import argparse
import contextlib
import inspect
import sys

import torch


def example_args(path, ep):
    if path:
        obj = torch.load(path, weights_only=True)
        args = (obj,) if isinstance(obj, torch.Tensor) else tuple(obj)
    else:
        args, kwargs = ep.example_inputs
        if kwargs:
            raise SystemExit("the program's sample inputs include keyword arguments (%s): give "
                             "--example-inputs with the positional inputs" % ", ".join(kwargs))
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        raise SystemExit("the example inputs must be tensors (a tensor, or a tuple or list of "
                         "them); got %s" % [type(a).__name__ for a in args])
    return args


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m wick_worker.aot_compile")
    ap.add_argument("--exported", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-batch", type=int, default=1)
    ap.add_argument("--example-inputs")
    a = ap.parse_args(argv)
    ep = torch.export.load(a.exported)
    args = example_args(a.example_inputs, ep)

    unguarded = "check_guards" in str(inspect.signature(ep.module))
    # the saved program's module checks inputs against the shapes it was exported with
    module = ep.module(check_guards=False) if unguarded else ep.module()
    program = None
    if a.max_batch > 1:
        if any(t.dim() == 0 for t in args):
            raise SystemExit("an input has no dimension 0 to batch on: pack it with batchSize 1")
        # an example with one row would make torch.export specialise the batch to 1
        args = tuple(t if t.shape[0] > 1 else torch.cat([t, t]) for t in args)
        batch = torch.export.Dim("batch", min=1, max=a.max_batch)
        dynamic = tuple({0: batch} for _ in args)
        ctx = contextlib.nullcontext()
        try:  # keeps the minimum at 1 where the graph allows it (torch >= 2.7)
            import torch.fx.experimental._config as fx_config
            ctx = fx_config.patch(backed_size_oblivious=True)
        except (ImportError, AttributeError):
            pass
        try:
            with torch.no_grad(), ctx:
                program = torch.export.export(module, args, dynamic_shapes=dynamic)
                torch._inductor.aoti_compile_and_package(program, package_path=a.out)
        except Exception as e:  # the graph fixes the batch
            print("wick pack: cannot make dimension 0 dynamic (%s); compiling the program as "
                  "saved: export it with dynamic_shapes={...: {0: torch.export.Dim('batch')}} "
                  "to batch requests" % str(e).splitlines()[0][:300], file=sys.stderr)
            program = None
    if program is None:
        with torch.no_grad():
            torch._inductor.aoti_compile_and_package(ep, package_path=a.out)
    print("torch %s" % torch.__version__.split("+")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
