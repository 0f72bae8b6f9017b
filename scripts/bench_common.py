"""What the bench's measuring and rendering halves share: where things are, and the
process classes every figure is grouped by."""
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results/bench"  # the quick size writes to OUT / "quick", never over the full figures

# Process classes, by executable name.
CONTROL_PLANE = {"kube-apiserver": "apiserver", "kine": "kine", "kube-scheduler": "kube-scheduler",
                 "kube-controller-manager": "controller-manager", "kwok": "kwok"}
HARNESS = {"scaletest-load-driver": "load-driver", "scaletest-node-creator": "node-creator",
           "scaletest-pod-shim": "pod-shim", "scaletest-sut": "sut", "scaletest-cluster": "supervisor"}
OTHER = {"prometheus": "prometheus", "scaletest-runner": "runner", "kube-burner": "kube-burner"}
CLASSES = {**CONTROL_PLANE, **HARNESS, **OTHER}


def exit_once_on(signals, code):
    """The first of `signals` becomes sys.exit(code), which runs every teardown on the way
    out; the rest are ignored from then on, so a second SIGTERM cannot cut that teardown
    short (a runner left writing into a temporary directory already removed)."""
    def leave(*_):
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        sys.exit(code)

    for s in signals:
        signal.signal(s, leave)
