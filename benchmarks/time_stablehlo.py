r"""Times the StableHLO programs that `benchmarks/layer_speed.py
--export_stablehlo=DIR` wrote, with JAX's XLA on this machine's default
device (a GPU or TPU where JAX has one, else the CPU). Needs JAX only, not
TensorFlow: export on a machine with TensorFlow, time on one with the
accelerator.

    python benchmarks/time_stablehlo.py hlo/ [--repeats=20] [--output=hlo_times.json]

Every program's inputs are random arrays of the shapes its `main` takes.
Prints one line per program and, per shape and pass, the ratios of the
contenders to keras_gn (keras, paper, floor), and the GN / BN ratio of the
ResNet-50 training steps. The figures are medians of `--repeats` rounds,
the programs interleaved round by round.
"""

import argparse
import json
import os
import re
import statistics
import time

import numpy as np

DTYPES = {
    "f32": np.float32,
    "f16": np.float16,
    "bf16": "bfloat16",
    "f64": np.float64,
    "i32": np.int32,
    "i64": np.int64,
    "i1": np.bool_,
    "ui8": np.uint8,
}


def parameter_types(text):
    """[(shape, dtype name)] of the arguments of the module's main."""
    header = re.search(r"func\.func (?:public )?@main\((.*?)\)\s*->", text, re.S)
    if header is None:
        raise ValueError("no @main function in the module")
    types = re.findall(r"tensor<([^>]*)>", re.sub(r"loc\([^)]*\)", "", header.group(1)))
    out = []
    for t in types:
        *dims, dtype = t.split("x")
        out.append((tuple(int(d) for d in dims), dtype))
    return out


def random_inputs(types, rng):
    import jax
    import ml_dtypes

    arrays = []
    for shape, dtype in types:
        if dtype.startswith("i") or dtype.startswith("ui"):
            value = rng.integers(0, 2, size=shape).astype(DTYPES[dtype])
        else:
            value = rng.normal(size=shape).astype(np.float32)
            value = value.astype(ml_dtypes.bfloat16 if dtype == "bf16" else DTYPES[dtype])
        arrays.append(jax.device_put(value))
    return arrays


def without_aliasing(text):
    """The module without its input/output aliasing: a training step
    exported from TensorFlow donates its variables' buffers, which would
    leave nothing to run it on a second time."""
    key = "mhlo.input_output_alias = ["
    start = text.find(key)
    if start < 0:
        return text
    depth, i = 0, start + len(key) - 1
    while True:
        depth += {"[": 1, "]": -1}.get(text[i], 0)
        if depth == 0:
            return text[:start] + "mhlo.input_output_alias = []" + text[i + 1 :]
        i += 1


def compile_program(text):
    from jax._src.lib import xla_client
    from jax.extend import backend

    client = backend.get_backend()
    return client.compile_and_load(without_aliasing(text), client.devices()[:1], xla_client.CompileOptions())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    import jax

    # The programs' int64 inputs (labels, step counters) stay 64-bit.
    jax.config.update("jax_enable_x64", True)

    manifest = json.load(open(os.path.join(args.folder, "manifest.json")))
    rng = np.random.default_rng(0)
    programs = {}
    for entry in manifest:
        text = open(os.path.join(args.folder, entry["file"])).read()
        programs[entry["file"]] = (compile_program(text), random_inputs(parameter_types(text), rng), entry)
    times = {name: [] for name in programs}
    for executable, inputs, _ in programs.values():  # warm up
        jax.block_until_ready(executable.execute(inputs))
    for _ in range(args.repeats):
        for name, (executable, inputs, _) in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(executable.execute(inputs))
            times[name].append((time.perf_counter() - start) * 1e3)
    device = jax.devices()[0]
    print(f"JAX {jax.__version__} on {device.platform} ({device.device_kind}); medians of {args.repeats} rounds")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, ms in medians.items():
        print(f"{name:<60} {ms:9.3f} ms")
    groups = {}
    for name, (_, _, entry) in programs.items():
        groups.setdefault((tuple(entry.get("shape", [])), entry["mode"]), {})[entry["contender"]] = medians[name]
    print("\nratios to keras_gn (> 1: keras_gn faster):")
    for (shape, mode), by in groups.items():
        if "keras_gn" in by:
            ratios = ", ".join(f"{k} {v / by['keras_gn']:.2f}x" for k, v in by.items() if k != "keras_gn")
            print(f"  {list(shape)} {mode}: {ratios}")
    for mode in sorted({e["mode"] for _, _, e in programs.values() if e["contender"].startswith("resnet50")}):
        step = {e["contender"]: medians[n] for n, (_, _, e) in programs.items() if e["mode"] == mode}
        if {"resnet50_gn", "resnet50_bn"} <= set(step):
            print(
                f"ResNet-50 {mode}: GN {step['resnet50_gn']:.1f} ms, BN {step['resnet50_bn']:.1f} ms, "
                f"GN / BN {step['resnet50_gn'] / step['resnet50_bn']:.2f}"
            )
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"device": str(device), "medians_ms": medians}, f, indent=1)


if __name__ == "__main__":
    main()
