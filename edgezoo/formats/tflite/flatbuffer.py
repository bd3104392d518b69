"""Reading a .tflite file without an interpreter: its ops and the tensors they write, and the
signature's inputs and outputs with their positions, shapes and quantisation.

Uses the flatbuffer schema that ships with the tflite-micro package (plain Python, no TensorFlow),
so the TFLM child process and the pre-conversion op check can use it too. It also reads models
that no interpreter would load (Flex ops, ops a runtime lacks), which is what the op checks need.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from edgezoo.errors import CorruptModelError


@dataclass(frozen=True)
class OpNode:
    op: str  # builtin name (CONV_2D) or custom code (FlexErf, TFLite_Detection_PostProcess)
    output_names: tuple[str, ...]  # tensor names, which carry the TensorFlow node (and so layer) names
    subgraph: int = 0
    index: int = 0  # the operator's position in its subgraph: the "number" in TFLM's node messages
    input_dtypes: tuple[str, ...] = ()  # numpy dtype names of the inputs it reads (optional inputs left out)

    @property
    def node_name(self) -> str:
        """The first TensorFlow node fused into this op's first output (TFLite joins them with ';')."""
        return self.output_names[0].split(";")[0] if self.output_names else ""


@dataclass(frozen=True)
class IoTensor:
    name: str  # the signature's name (the model's input or output name)
    position: int  # index among the subgraph's inputs or outputs: what set_input/get_output take
    tensor_name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 where the dimension is dynamic
    dtype: str  # numpy dtype name
    scale: float  # 0.0 when not quantised
    zero_point: int

    @property
    def dynamic(self) -> bool:
        return -1 in self.shape_signature

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


@dataclass(frozen=True)
class FlatbufferSummary:
    ops: tuple[OpNode, ...]
    inputs: tuple[IoTensor, ...]
    outputs: tuple[IoTensor, ...]

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(sorted({node.op for node in self.ops}))


@lru_cache(maxsize=1)
def schema():
    """The generated TFLite schema module (reader and object API)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


@lru_cache(maxsize=None)
def enum_names(enum_name: str) -> dict[int, str]:
    enum = getattr(schema(), enum_name)
    return {value: key for key, value in vars(enum).items() if key.isupper() and isinstance(value, int)}


@contextmanager
def readable(what: str = "not a readable .tflite flatbuffer"):
    """Reads of a flatbuffer inside this block: offsets in a damaged file point anywhere, and the flatbuffers package
    answers with struct, index, value and type errors; they become one CorruptModelError saying `what`."""
    try:
        yield
    except CorruptModelError:
        raise
    except Exception as exc:
        raise CorruptModelError(f"{what}: {type(exc).__name__}: {exc}") from exc


def open_model(data: bytes):
    """The root Model of a .tflite and its operator codes' names (by opcode index). Call inside `readable()`."""
    if not schema().Model.ModelBufferHasIdentifier(data, 0):
        raise ValueError("no TFL3 identifier")
    model = schema().Model.GetRootAs(data, 0)
    return model, [op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]


def builtin_op_names() -> frozenset[str]:
    """Every builtin operator name the TFLite schema defines."""
    return frozenset(enum_names("BuiltinOperator").values())


def op_name(code) -> str:
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema().BuiltinOperator.CUSTOM:
        return (code.CustomCode() or b"CUSTOM").decode("utf-8", "replace")
    return enum_names("BuiltinOperator").get(builtin, f"BUILTIN_{builtin}")


def dtype_name(tensor_type: int) -> str:
    return enum_names("TensorType").get(tensor_type, "unknown").lower()


def _io_tensor(subgraph, name: str, position: int, tensor_index: int) -> IoTensor:
    tensor = subgraph.Tensors(tensor_index)
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    signature = tuple(int(d) for d in tensor.ShapeSignatureAsNumpy()) if tensor.ShapeSignatureLength() else shape
    quantization = tensor.Quantization()
    scale, zero_point = 0.0, 0
    if quantization is not None and quantization.ScaleLength():
        scale, zero_point = float(quantization.Scale(0)), int(quantization.ZeroPoint(0))
    dtype = dtype_name(tensor.Type())
    return IoTensor(name, position, (tensor.Name() or b"").decode(), shape, signature, dtype, scale, zero_point)


def _io(model, subgraph, signature_key: str | None) -> tuple[tuple[IoTensor, ...], tuple[IoTensor, ...]]:
    """Inputs and outputs by the signature's names, in the order of the subgraph's inputs and outputs."""
    input_indices = [int(i) for i in subgraph.InputsAsNumpy()] if subgraph.InputsLength() else []
    output_indices = [int(i) for i in subgraph.OutputsAsNumpy()] if subgraph.OutputsLength() else []
    names: dict[int, str] = {}
    for s in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(s)
        if signature_key is not None and (signature.SignatureKey() or b"").decode() != signature_key:
            continue
        for j in range(signature.InputsLength()):
            names[signature.Inputs(j).TensorIndex()] = signature.Inputs(j).Name().decode()
        for j in range(signature.OutputsLength()):
            names[signature.Outputs(j).TensorIndex()] = signature.Outputs(j).Name().decode()
        break

    def tensors(indices):
        return tuple(
            _io_tensor(subgraph, names.get(index) or (subgraph.Tensors(index).Name() or b"").decode(), position, index)
            for position, index in enumerate(indices)
        )

    return tensors(input_indices), tensors(output_indices)


def read_flatbuffer(data: bytes, signature_key: str | None = None) -> FlatbufferSummary:
    """The ops (of every subgraph) and the main subgraph's signature inputs and outputs."""
    with readable():
        model, codes = open_model(data)
        ops = []
        for g in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(g)
            for o in range(subgraph.OperatorsLength()):
                operator = subgraph.Operators(o)
                outputs = tuple(
                    (subgraph.Tensors(int(t)).Name() or b"").decode()
                    for t in (operator.OutputsAsNumpy() if operator.OutputsLength() else ())
                    if t >= 0
                )
                dtypes = tuple(
                    dtype_name(subgraph.Tensors(int(t)).Type())
                    for t in (operator.InputsAsNumpy() if operator.InputsLength() else ())
                    if t >= 0
                )
                ops.append(OpNode(codes[operator.OpcodeIndex()], outputs, g, o, dtypes))
        inputs, outputs = _io(model, model.Subgraphs(0), signature_key)
    return FlatbufferSummary(tuple(ops), inputs, outputs)


def variable_tensors(data: bytes) -> tuple[str, ...]:
    """Names of the main subgraph's variable tensors: state a runtime keeps from one invocation to the next
    (a recurrent layer's fused LSTM keeps its hidden and cell state there) until it resets its variables."""
    with readable():
        subgraph = open_model(data)[0].Subgraphs(0)
        return tuple((subgraph.Tensors(i).Name() or b"").decode() for i in range(subgraph.TensorsLength()) if subgraph.Tensors(i).IsVariable())
