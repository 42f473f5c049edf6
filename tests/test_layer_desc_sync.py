"""One description of a layer across the C/Python boundary: mnq.h's mnq_layer_desc
is the source; the Cython binding's struct and assignments, plan.py's dict keys
and op codes, the .mnq record (mnq_format.py) and the C reader's offsets
(mnq_file.c) are parsed or read here and must agree with it. A field added to
one place and not the others fails this test."""
import re
from pathlib import Path

from mnq import _core
from mnq.graph import Layer, Quant
from mnq.mnq_format import HEADER_DTYPE, LAYER_DTYPE
from mnq.plan import OP_CODES, layer_desc

SRC = Path(__file__).resolve().parents[1] / "src"
MNQ_H = (SRC / "kernels" / "mnq.h").read_text()
CORE_PYX = (SRC / "mnq" / "_core.pyx").read_text()
MNQ_FILE_C = (SRC / "kernels" / "mnq_file.c").read_text()


def c_struct_fields(body: str) -> list:
    """Field names, in order, of a C struct body (comments dropped)."""
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    fields = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        first, *rest = decl.split(",")
        fields.append(re.findall(r"\w+", first)[-1])
        fields += [re.sub(r"[*\s]", "", name) for name in rest]
    return fields


def header_fields() -> list:
    body = re.search(r"typedef struct \{(.*?)\} mnq_layer_desc;", MNQ_H, re.S).group(1)
    return c_struct_fields(body)


def test_binding_declares_and_fills_every_field():
    fields = header_fields()
    assert list(_core.DESC_FIELDS) == fields
    pyx_body = re.search(r"ctypedef struct mnq_layer_desc:\n(.*?)\n    ctypedef", CORE_PYX, re.S).group(1)
    declared = [name.strip().lstrip("*") for line in pyx_body.splitlines()
                for name in re.sub(r"^\s*(const\s+)?\w+\s+", "", line).split(",") if line.strip()]
    assert sorted(declared) == sorted(fields)
    assigned = set(re.findall(r"c_descs\[i\]\.(\w+)", CORE_PYX))
    assert assigned == set(fields), f"assigned but not in mnq.h: {assigned - set(fields)}; " \
                                    f"never assigned: {set(fields) - assigned}"


def test_plan_dict_has_exactly_the_fields():
    layer = Layer(op="avgpool", name="p", in_shape=(2, 2, 4), out_shape=(1, 1, 4), in_quant=Quant(0.1, 3),
                  out_quant=Quant(0.1, 3), kernel=(2, 2), stride=(2, 2))
    assert sorted(layer_desc(layer)) == sorted(header_fields())


def test_op_codes_match_the_enum():
    enum = dict((name.lower(), int(v)) for name, v in re.findall(r"MNQ_OP_(\w+) = (\d+)", MNQ_H))
    assert {("reshape" if k == "copy" else k): v for k, v in enum.items()} == OP_CODES


def test_mnq_record_holds_every_field():
    """Each desc field is a record field of its name, or a blob (weights, bias, the
    per-channel arrays), or desc_op for op."""
    blobs = {"weights": "weights_off", "bias": "bias_off", "channel_multipliers": "channels_off",
             "channel_shifts": "channels_off", "op": "desc_op"}
    for field in header_fields():
        assert blobs.get(field, field) in LAYER_DTYPE.names, field


def test_c_reader_offsets_match_the_record():
    offsets = {name: LAYER_DTYPE.fields[name][1] for name in LAYER_DTYPE.names}
    # single fields: d->x = i32(r + N)
    singles = re.findall(r"d->(\w+) = i32\(r \+ (\d+)\)", MNQ_FILE_C)
    assert len(singles) >= 5
    for name, at in singles:
        assert offsets["desc_op" if name == "op" else name] == int(at), name
    # the dimension loop and the resolved-parameter loop
    dims = re.search(r"int \*dims\[\] = \{(.*?)\};", MNQ_FILE_C, re.S).group(1)
    base = int(re.search(r"u32\(r \+ (\d+) \+ 4 \* k\)", MNQ_FILE_C).group(1))
    for k, name in enumerate(re.findall(r"&d->(\w+)", dims)):
        assert offsets[name] == base + 4 * k, name
    resolved = re.search(r"int32_t \*resolved\[\] = \{(.*?)\};", MNQ_FILE_C, re.S).group(1)
    base = int(re.search(r"i32\(r \+ (\d+) \+ 4 \* k\)", MNQ_FILE_C).group(1))
    for k, name in enumerate(re.findall(r"&d->(\w+)", resolved)):
        assert offsets[name] == base + 4 * k, name
    # blob offsets and lengths, and the flags
    for prefix, name in (("w", "weights"), ("b", "bias"), ("c", "channels")):
        assert int(re.search(rf"{prefix}_off = u64\(r \+ (\d+)\)", MNQ_FILE_C).group(1)) == offsets[f"{name}_off"]
        assert int(re.search(rf"{prefix}_len = u64\(r \+ (\d+)\)", MNQ_FILE_C).group(1)) == offsets[f"{name}_len"]
    assert int(re.search(r"flags = u32\(r \+ (\d+)\)", MNQ_FILE_C).group(1)) == offsets["flags"]
    assert int(re.search(r"LAYER_SIZE = (\d+)", MNQ_FILE_C).group(1)) == LAYER_DTYPE.itemsize
    assert int(re.search(r"HEADER_SIZE = (\d+)", MNQ_FILE_C).group(1)) == HEADER_DTYPE.itemsize


def test_c_reader_header_offsets():
    h = {name: HEADER_DTYPE.fields[name][1] for name in HEADER_DTYPE.names}
    for name, pattern in (("layer_type", r"m->layer_type = data\[(\d+)\]"),
                          ("input_type", r"m->input_type = data\[(\d+)\]"),
                          ("output_type", r"m->output_type = data\[(\d+)\]"),
                          ("input_edge_scale", r"memcpy\(&edge_scale, data \+ (\d+), 4\)"),
                          ("input_edge_zp", r"edge_zp_u8 = i32\(data \+ (\d+)\)"),
                          ("input_scale", r"memcpy\(&m->input_scale, data \+ (\d+), 4\)"),
                          ("input_zp", r"m->input_zp = i32\(data \+ (\d+)\)")):
        assert int(re.search(pattern, MNQ_FILE_C).group(1)) == h[name], name
