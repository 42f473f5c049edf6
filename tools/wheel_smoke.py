"""Run by tools/check_wheel.sh in a fresh venv holding the repaired wheel: mnq must import
from site-packages with no compiler on PATH and classify the sample picture the same at
every level this CPU offers (byte-identical uint8 outputs, the expected top-1).
    python wheel_smoke.py SHARED_DIR
"""
import shutil
import sys
from pathlib import Path

import numpy as np

import mnq
from mnq.preprocess import load_image

MILITARY_UNIFORM = 653  # grace_hopper.bmp's top-1 with the main model (README)

shared = Path(sys.argv[1])
assert not any(shutil.which(cc) for cc in ("gcc", "cc", "clang")), "a compiler is on PATH"
assert "site-packages" in mnq.__file__, f"mnq imported from {mnq.__file__}, not the installed wheel"
info = mnq.info()
print(f"mnq {info['version']} from {Path(mnq.__file__).parent}; cpu {info['cpu_features']}; levels {info['isas']}; "
      f"kernels built {info['kernels_built']}, not built {info['kernels_not_built']}")
model_path = shared / "models" / "mobilenet_v1_1.0_160_quant_from224.tflite"
outputs = {}
for isa in info["isas"]:
    model = mnq.load(model_path, isa=isa)
    image = load_image(shared / "images" / "samples" / "grace_hopper.bmp", model.input_shape[:2])
    outputs[isa] = model.run(image)
    top1 = int(np.argmax(outputs[isa][0]))
    print(f"  {isa:10s} top-1 {top1}  kernels {sorted(set(model.kernels))}")
    assert top1 == MILITARY_UNIFORM, (isa, top1)
    assert np.array_equal(outputs[isa], outputs["scalar"]), f"{isa} differs from scalar"
print(f"wheel OK at {len(outputs)} levels")
