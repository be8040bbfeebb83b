#!/usr/bin/env python3
"""Writes a dynamic-batch copy of an embedder whose ONNX file fixes its batch at 1 (issue 22).

The shipped MobileFaceNet-128 file (`../shared/models/mobilefacenet_128.onnx`) declares its
input `[1,3,112,112]` and ends in a Reshape to `[1,-1]`, so ONNX Runtime runs one face per call.
This makes the batch dimension of the graph's inputs and outputs symbolic (`N`) and rewrites a
Reshape shape that pins the batch at 1 into `[-1, D…]`, checks the graph, runs a batch of
random faces through both files and refuses to write unless every output equals the
one-by-one outputs (to 1e-5), then prints the new file's sha256. The manifest
`models/batch/mobilefacenet_128_batch.toml` names that sha256; load it with
`--manifests models/batch --embedder mobilefacenet_128_batch` and the embedder sends all the
faces of a frame in one call (the point of it is a GPU; on one CPU core it changes little:
BENCHMARKS.md).

Needs `onnx` and `onnxruntime` (scripts/setup.sh installs both into .cache/venv):

    .cache/venv/bin/python models/make_batch_model.py ../shared/models/mobilefacenet_128.onnx \
        MODELS_DIR/mobilefacenet_128_batch.onnx
"""
import hashlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def make_dynamic(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    for vi in list(g.input) + list(g.output):
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if not dims:
            raise SystemExit(f"{vi.name}: no shape")
        dims[0].ClearField("dim_value")
        dims[0].dim_param = "N"
    rewritten = 0
    for n in g.node:
        if n.op_type != "Reshape":
            continue
        src = n.input[1]
        if src in inits:
            t = inits[src]
        elif src in consts:
            t = next(a.t for a in consts[src].attribute if a.name == "value")
        else:
            continue  # a computed shape follows the input's batch already
        shape = numpy_helper.to_array(t)
        if shape.ndim != 1 or len(shape) < 2 or shape[0] != 1:
            continue
        if -1 in shape[1:]:
            if list(shape[1:]).count(-1) != 1 or len(n.output) != 1:
                raise SystemExit(f"Reshape {n.name}: cannot free the batch of {shape.tolist()}")
            # [1, -1] -> [-1, D]: D from the graph output this Reshape feeds, when it is one
            out = next((o for o in g.output if o.name == n.output[0]), None)
            if out is None:
                raise SystemExit(f"Reshape {n.name} to {shape.tolist()} feeds no graph output")
            rest = [d.dim_value for d in out.type.tensor_type.shape.dim[1:]]
            if len(rest) != len(shape) - 1 or any(v <= 0 for v in rest):
                raise SystemExit(f"Reshape {n.name}: output {out.name} has no fixed trailing dims")
            new = np.array([-1] + rest, dtype=shape.dtype)
        else:
            new = np.array([-1] + list(shape[1:]), dtype=shape.dtype)
        t.CopyFrom(numpy_helper.from_array(new, t.name))
        rewritten += 1
    return rewritten


def main(argv):
    if len(argv) != 2:
        raise SystemExit(__doc__)
    src, dst = argv
    model = onnx.load(src)
    rewritten = make_dynamic(model)
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    one = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    many = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inp = one.get_inputs()[0]
    shape = [5] + [int(d) for d in inp.shape[1:]]
    x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
    each = np.concatenate([one.run(None, {inp.name: x[i:i + 1]})[0] for i in range(len(x))])
    together = many.run(None, {inp.name: x})[0]
    diff = float(np.abs(each - together).max())
    if together.shape != each.shape or diff > 1e-5:
        raise SystemExit(f"batched outputs differ from one-by-one: shape {together.shape}, max diff {diff}")
    with open(dst, "wb") as f:
        f.write(data)
    print(f"{dst}: batch N (reshapes rewritten: {rewritten}), a batch of {len(x)} equals one-by-one "
          f"(max diff {diff:.2e}); sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1:])
