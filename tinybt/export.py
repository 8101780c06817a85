"""Export a run's encoder:  python -m tinybt.export runs/NAME --to encoder.onnx

Writes the run's encoder in evaluation mode as an ONNX graph (uint8 images in, features out,
the normalisation inside) or as a .safetensors file of PyTorch state_dict names;
docs/EXPORT.md shows how to use either. Needs the export extra: pip install -e ".[export]".
"""

import sys

from tinybt.errors import OneLineArgumentParser, TinyBTError, run_program
from tinybt.run_export import HEADS, export_run


def main(argv=None):
    parser = OneLineArgumentParser(
        prog="python -m tinybt.export",
        description="Write a run's encoder as an ONNX graph or a .safetensors file.",
    )
    parser.add_argument("run", help="a run folder (runs/NAME) or its checkpoint.npz")
    parser.add_argument(
        "--to", required=True, help="the file to write: FILE.onnx or FILE.safetensors"
    )
    parser.add_argument(
        "--head",
        choices=HEADS,
        default="none",
        help="projector: add the projector (ONNX: a second output, embeddings)",
    )
    parser.add_argument(
        "--unfinished",
        action="store_true",
        help="export a run that has not done all its epochs (its encoder so far)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="where the dataset is, if it moved (default: the run's)"
    )
    args = parser.parse_args(argv)
    try:
        path = export_run(args.run, args.to, args.head, args.unfinished, args.data_dir)
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_program(main)
