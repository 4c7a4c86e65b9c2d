"""The `warp` engine's command-line options (registry hook; imports nothing heavy)."""
from __future__ import annotations


def add_options(add, command: str) -> None:
    if command not in ("reenact", "talk"):
        return
    # shared with other methods' --preset (emo: hallo | emo); each method checks its own names
    add("--preset", dest="preset_name", metavar="NAME",
        help="warp: default | subtle | expressive; emo: the settings of a bare net.pth, hallo | emo")
    if command == "reenact":
        add("--smoothing", type=float, help="driving landmark smoothing, sigma in frames (default 1)")
        add("--motion-limit", type=float, help="soft limit on landmark motion in face widths (default 0.1; 0 = none)")
        return
    add("--detector", choices=["hog", "mmod"], help="face detector (default hog)")
    add("--fps", type=float, help="output frame rate (default 25)")
    add("--still", action="store_true", help="no idle head motion (blinks stay)")
    add("--head-amplitude", type=float, help="idle head motion amplitude, x (default 1)")
    add("--head-speed", type=float,
        help="warp: idle head motion speed, x (default 1); emo: head rotation, degrees per frame (speed layers)")
    add("--blink-rate", type=float, help="blinks per minute (default 15; 0 = none)")
    add("--max-opening", type=float, help="widest mouth opening (inner-lip gap / face width)")
    add("--seed", type=int, help="seed of the idle motion (blinks, head)")
