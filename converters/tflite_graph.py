"""The ops of a .tflite model, read from its flatbuffer with the schema bindings LiteRT ships
(`ai_edge_litert.schema_py_generated`), instead of the interpreter's private `_get_ops_details`.

Reading the file needs no interpreter, so a model is inspected exactly as written, before any
delegate or kernel resolution."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Op:
    index: int  # position in the main subgraph's execution order
    name: str  # builtin op name, e.g. CONV_2D
    input_types: tuple[str, ...]  # tensor types of the (non-optional) inputs, e.g. INT8, FLOAT32
    output_name: str  # name of the first output tensor (carries the Keras layer path)


def read_ops(model: bytes | str | Path) -> list[Op]:
    from ai_edge_litert import schema_py_generated as schema

    flat = model if isinstance(model, bytes) else Path(model).read_bytes()
    parsed = schema.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = parsed.subgraphs[0]
    ops = []
    for i, op in enumerate(graph.operators):
        code = parsed.operatorCodes[op.opcodeIndex]
        # Codes above 127 live only in builtinCode; older files have only the deprecated field.
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, f"CUSTOM:{(code.customCode or b'').decode()}")
        ops.append(
            Op(
                i,
                name,
                tuple(type_names[graph.tensors[t].type] for t in op.inputs if t >= 0),
                graph.tensors[op.outputs[0]].name.decode(),
            )
        )
    return ops
