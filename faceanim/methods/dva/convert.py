"""`faceanim convert dva`: the released Lightning checkpoint (its EMA weights, or `--weights model`) and,
optionally, the attribute classifier and the identity statistics, as one converted folder (`config.json` +
`model.safetensors`) that `DVAPipeline.from_pretrained` loads alone. Nothing in the inputs is executed
(weights-only reading); the inputs' SHA-256 go into the safetensors metadata and the report."""
from __future__ import annotations

import os

from ...checkpoints import Conversion, check_conversion_paths
from .weights import load_classifier, load_identity_stats, load_model, save_converted


def convert_official(checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                     classifier: str | os.PathLike | None = None, identity_stats: str | os.PathLike | None = None,
                     weights: str | None = None) -> Conversion:
    paths = {"checkpoint": checkpoint, **({"classifier": classifier} if classifier else {}),
             **({"identity_stats": identity_stats} if identity_stats else {})}
    check_conversion_paths(paths, output)
    config, model = load_model(checkpoint, weights=weights or "ema")
    found_classifier = load_classifier(classifier) if classifier else None
    stats = load_identity_stats(identity_stats) if identity_stats else None
    conversion = Conversion.of(output, paths, tuple(paths))
    save_converted(output, config, model.state_dict(), classifier=found_classifier, stats=stats,
                   metadata=conversion.metadata())
    return conversion
