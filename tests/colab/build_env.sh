#!/usr/bin/env bash
# Build .venv-colab: Colab's own package versions (tests/colab/requirements-colab.txt), WITHOUT the course
# package, the way a fresh Colab VM has them. The tests in tests/colab/ then install the course into it
# with the notebooks' own install cell. pip's cache is reused; a venv already built from the same file is
# kept (tests/colab/conftest.py puts it back to this state before each use).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
req=tests/colab/requirements-colab.txt
stamp=.venv-colab/colab-image.sha256
want=$( (cat "$req"; python3 --version) | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "Colab environment .venv-colab is up to date ($req)"
    exit 0
fi
start=$SECONDS
python3 -m venv --clear .venv-colab
.venv-colab/bin/pip install -q -r "$req"
# The image: every distribution and its version, as the fresh VM has them.
.venv-colab/bin/pip freeze --all > .venv-colab/colab-image.txt
echo "$want" > "$stamp"
echo "Colab environment .venv-colab built in $((SECONDS - start)) s ($(du -sh .venv-colab | cut -f1))"
