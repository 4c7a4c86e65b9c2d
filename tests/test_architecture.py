"""House rules checked on the source: imports point one way, methods never import each other,
every torch.load is weights-only, `import faceanim` stays light."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "faceanim"

# Lower layers may not import higher ones.  Layer of a top-level subpackage / module:
LAYERS = {
    "errors": 0, "fileio": 0, "progress": 0, "registry": 0, "checkpoints": 0,
    "media": 1, "nn": 1, "diffusion": 1,
    "face": 2, "audio": 2, "warping": 2, "losses": 2,
    "methods": 3,
    "tasks": 4, "train": 4, "metrics": 4,
    "cli": 5, "__init__": 5, "__main__": 5,
}
BANNED = {"torchvision", "torchaudio", "timm", "lpips", "open_clip", "facexlib", "insightface"}


def _modules():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        yield path, rel.parts


def _imported(path: Path, parts: tuple[str, ...]):
    tree = ast.parse(path.read_text(), str(path))
    package = ["faceanim", *parts[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split("."), node
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield base + (node.module.split(".") if node.module else []), node
            else:
                yield node.module.split("."), node


def _is_training_module(parts) -> bool:
    """A method's training modules (`methods/<m>/training.py`, `..._training.py`) sit on the trainer."""
    return len(parts) > 2 and parts[0] == "methods" and parts[-1].endswith("training")


def _layer(parts) -> int:
    return LAYERS["train"] if _is_training_module(parts) else LAYERS.get(parts[0], 0)


def test_imports_point_one_way():
    problems = []
    for path, parts in _modules():
        own = parts[0]
        for target, node in _imported(path, parts):
            if target[:1] == ["faceanim"] and _is_training_module(target[1:]) and _layer(parts) < LAYERS["train"]:
                problems.append(f"{path}:{node.lineno} imports the training module {'.'.join(target)}")
            if target[0] in BANNED:
                problems.append(f"{path}:{node.lineno} imports {target[0]}")
            if target[0] != "faceanim" or len(target) < 2:
                continue
            other = target[1]
            if own == "methods" and other == "methods" and len(parts) > 2 and len(target) > 2 and target[2] != parts[1]:
                problems.append(f"{path}:{node.lineno} method imports another method ({'.'.join(target)})")
            if LAYERS.get(other, 0) > _layer(parts):
                problems.append(f"{path}:{node.lineno} {own} imports higher layer {'.'.join(target)}")
    assert not problems, "\n".join(problems)


def test_every_torch_load_is_weights_only():
    offenders = []
    for path, _ in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" \
                    and getattr(node.func, "value", None) is not None and getattr(node.func.value, "id", "") == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                    offenders.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in ("load", "loads") \
                    and getattr(node.value, "id", "") == "pickle":
                offenders.append(f"{path}:{node.lineno} pickle.{node.attr}")
    assert not offenders, offenders


def test_import_faceanim_is_light():
    code = "import sys, faceanim; print(sorted(m for m in ('torch','av','dlib','cv2','librosa','transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
