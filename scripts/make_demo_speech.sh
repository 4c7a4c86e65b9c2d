#!/usr/bin/env bash
# Regenerates faceanim/assets/hello.ogg, the demo's speech clip (espeak-ng from Debian's packages,
# then 16 kHz mono Opus through faceanim's own audio I/O). The committed file was made with this script.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp --suffix .wav)
espeak-ng -v en-us -s 145 -w "$tmp" "Hello! I am an astronaut. Faceanim makes me talk, with no downloads at all."
.venv/bin/python - "$tmp" <<'PY'
import sys
import av
import numpy as np
from faceanim.media import read_audio

speech = read_audio(sys.argv[1], sample_rate=48000)
with av.open("faceanim/assets/hello.ogg", "w") as out:
    stream = out.add_stream("libopus", rate=48000, layout="mono")
    frame = av.AudioFrame.from_ndarray((speech.samples[None] * 32767).astype(np.int16), format="s16", layout="mono")
    frame.sample_rate = 48000
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        out.mux(packet)
PY
rm -f "$tmp"
