"""`mnq info`: version, CPU features, usable instruction sets, and the model's layers."""
from __future__ import annotations

import json

from .common import EXIT_OK, add_model_options, find_model, how_to_get_a_model, load_model


def add_parser(sub):
    p = sub.add_parser("info", help="version, CPU features, kernels and model summary",
                       description="Version, CPU features, usable instruction sets and, for the model "
                       "(resolved like classify's), layers, MACs, parameters and the C kernel of each layer.")
    add_model_options(p, threads=False)
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(func=info)


def model_summary(model, path) -> dict:
    from ..summary import layer_macs, layer_params

    layers = model.graph.layers
    return {
        "path": str(path), "input_shape": list(model.input_shape), "input_dtype": model.input_dtype,
        "output_dtype": model.output_dtype, "quantization": model.graph.scheme, "classes": model.num_outputs,
        "threads": model.num_threads, "isa": model.isa,
        "macs": sum(map(layer_macs, layers)), "parameters": sum(map(layer_params, layers)),
        "layers": [{"name": name, "op": layer.op, "kernel_size": list(layer.kernel) if _windowed(layer) else None,
                    "stride": layer.stride[0] if _windowed(layer) else None, "output_shape": list(layer.out_shape),
                    "macs": layer_macs(layer), "parameters": layer_params(layer), "c_kernel": kernel}
                   for layer, name, kernel in zip(layers, model.layer_names, model.kernels)],
    }


def _windowed(layer) -> bool:
    return layer.op in ("conv", "depthwise", "avgpool")


def info(args) -> int:
    import mnq

    from ..summary import shape_text

    path, _ = find_model(args.model)
    model = load_model(args, path)[0] if path else None
    details = mnq.info(None)
    if args.format == "json":
        details["model"] = model_summary(model, path) if model else None
        if model is None:
            details["model_note"] = "none found. " + how_to_get_a_model()
        print(json.dumps(details, indent=2))
        return EXIT_OK
    for key, value in details.items():
        print(f"{key}: {value}")
    if model is None:
        print("model: none found. " + how_to_get_a_model())
        return EXIT_OK
    s = model_summary(model, path)
    print(f"model: {path}")
    print(f"  input {shape_text(model.input_shape)} {s['input_dtype']}, {s['classes']} classes, {len(s['layers'])} "
          f"layers, {s['macs'] / 1e6:.1f} M MACs, {s['parameters'] / 1e6:.2f} M parameters, threads {s['threads']}, "
          f"isa {s['isa']}")
    print(f"  quantization: {s['quantization']}")
    print(f"  {'op':9s} {'kernel':7s} {'output':>11s} {'MACs':>11s} {'params':>9s}  {'C kernel':36s} layer")
    for layer in s["layers"]:
        k = f"{layer['kernel_size'][0]}x{layer['kernel_size'][1]}/{layer['stride']}" if layer["kernel_size"] else ""
        print(f"  {layer['op']:9s} {k:7s} {shape_text(layer['output_shape']):>11s} {layer['macs']:>11,d} "
              f"{layer['parameters']:>9,d}  {layer['c_kernel']:36s} {layer['name']}")
    return EXIT_OK
