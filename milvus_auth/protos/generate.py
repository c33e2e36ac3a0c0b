"""Regenerate the committed gRPC code from the project's .proto files: `make protos`.

pymilvus ships compiled protos but no .proto sources, so protoc reads `common.proto` from the
descriptor pymilvus registers at import (`--descriptor_set_in`): the generated code then refers
to pymilvus's very own `milvus.proto.common.Status` and `MsgBase`, which keeps the wire format
Milvus's and the default descriptor pool free of duplicate symbols. protoc writes imports for a
flat layout (`import common_pb2`); they are rewritten to the real packages afterwards.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from grpc_tools import protoc  # type: ignore[import-untyped]
from pymilvus.grpc_gen import common_pb2

PROTOS = Path(__file__).resolve().parent
PROJECT_ROOT = PROTOS.parent.parent
SOURCES = (PROTOS / "proxy.proto", PROTOS / "apikeys.proto")
OUTPUTS = tuple(
    f"{source.stem}{suffix}"
    for source in SOURCES
    for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
)
# protoc writes `import common_pb2` as if common.proto sat next to the project's protos.
_COMMON_IMPORT = re.compile(r"^import common_pb2 as (\w+)$", re.MULTILINE)


def _descriptor_set(root: FileDescriptor) -> descriptor_pb2.FileDescriptorSet:
    """`root` and everything it imports, dependencies first, as protoc wants them."""
    found = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        found.file.add().ParseFromString(file.serialized_pb)

    add(root)
    return found


def generate(output: Path) -> dict[str, str]:
    """Compile every source into `output`; return the fixed generated files by name."""
    with tempfile.TemporaryDirectory() as scratch:
        descriptors = Path(scratch) / "pymilvus-common.pb"
        descriptors.write_bytes(_descriptor_set(common_pb2.DESCRIPTOR).SerializeToString())
        argv = [
            "protoc",
            f"--descriptor_set_in={descriptors}",
            f"-I{PROJECT_ROOT}",
            f"--python_out={scratch}",
            f"--grpc_python_out={scratch}",
            f"--mypy_out={scratch}",
            f"--mypy_grpc_out={scratch}",
            *_plugins(),
            *(str(source.relative_to(PROJECT_ROOT)) for source in SOURCES),
        ]
        if protoc.main(argv) != 0:
            raise RuntimeError(f"protoc failed on {', '.join(s.name for s in SOURCES)}")
        generated = Path(scratch) / PROTOS.relative_to(PROJECT_ROOT)
        files = {name: _fix_imports((generated / name).read_text()) for name in OUTPUTS}
    output.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (output / name).write_text(text)
    return files


def _plugins() -> list[str]:
    # mypy-protobuf's plugins sit next to this interpreter, which need not be on PATH.
    scripts = Path(sys.executable).parent
    return [
        f"--plugin={name}={scripts / name}" for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc")
    ]


def _fix_imports(text: str) -> str:
    return _COMMON_IMPORT.sub(r"from pymilvus.grpc_gen import common_pb2 as \1", text)


def main(argv: list[str] | None = None) -> int:
    """Write the generated files next to their .proto sources (or into --output)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=PROTOS, help="where to write the files")
    args = parser.parse_args(argv)
    for name in generate(args.output):
        print(f"wrote {args.output / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
