#!/usr/bin/env bash
# Create .venv (once) and install nst with its test and lint tools (ruff, mypy).
#
# torch: a torch already importable in .venv is left alone (bring your own CUDA
# build by installing it first). Otherwise torch 2.13.0 is installed: the CPU build
# when the machine has no NVIDIA GPU (no nvidia-smi, no /proc/driver/nvidia),
# PyPI's default CUDA build when it has one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
PIP=(.venv/bin/python -m pip install --quiet)

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
"${PIP[@]}" --upgrade pip

has_nvidia_gpu() {
    command -v nvidia-smi >/dev/null 2>&1 || [ -e /proc/driver/nvidia ]
}

install_cpu_torch() {
    # A CPU wheel that pip can already see (a local wheel folder or a mirror)
    # carries the "+cpu" label; plain PyPI has none and pip says so at once.
    local log
    log=$(mktemp)
    if "${PIP[@]}" "torch==${TORCH_VERSION}+cpu" 2>"$log"; then
        rm -f "$log"
        return 0
    fi
    # Otherwise PyTorch's own CPU index: fail quickly rather than retry for minutes
    # where it cannot be reached.
    echo "setup: installing torch ${TORCH_VERSION} (CPU build) from download.pytorch.org" >&2
    if ! "${PIP[@]}" --retries 1 --timeout 30 "torch==${TORCH_VERSION}" \
            --index-url https://download.pytorch.org/whl/cpu; then
        echo "setup: the CPU build of torch ${TORCH_VERSION} could not be installed;" \
             "the first attempt said:" >&2
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

if .venv/bin/python -c "import torch" 2>/dev/null; then
    :  # keep the torch that is there (for example a CUDA build the user installed)
elif has_nvidia_gpu; then
    echo "setup: NVIDIA GPU found: installing torch ${TORCH_VERSION} from PyPI (CUDA build, several GB)" >&2
    "${PIP[@]}" "torch==${TORCH_VERSION}"
else
    echo "setup: no NVIDIA GPU: installing torch ${TORCH_VERSION}, the CPU build" >&2
    install_cpu_torch
fi
"${PIP[@]}" -e ".[dev,serve,ray]"
