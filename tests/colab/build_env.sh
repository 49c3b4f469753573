#!/usr/bin/env bash
# Build .venv-colab: Colab's own package versions (tests/colab/requirements-colab.txt), WITHOUT the course
# package, as a fresh Colab VM has them. The tests in tests/colab/ then install the course into it with
# the notebooks' own install cell. Colab runs Python 3.13: python3.13 is used where there is one
# ($COLAB_PYTHON chooses another), else python3 with a warning. pip's cache is reused; a venv already
# built from the same file and interpreter is kept (the tests put it back to this state before each use).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
req=tests/colab/requirements-colab.txt
python=${COLAB_PYTHON:-}
if [[ -z $python ]]; then   # a python3.13 that runs (a pyenv shim may exist for a version not selected)
    for candidate in python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
        if "$candidate" -c "import venv, ssl" >/dev/null 2>&1; then python=$candidate; break; fi
    done
fi
if [[ -z $python ]]; then
    python=python3
    echo "build_env.sh: no python3.13 here (Colab's Python); building with $($python --version)" >&2
fi
stamp=.venv-colab/colab-image.sha256
want=$( (grep -v '^[[:space:]]*\(#\|$\)' "$req"; "$python" --version) | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "Colab environment .venv-colab is up to date ($("$python" --version), $req)"
    exit 0
fi
start=$SECONDS
"$python" -m venv --clear .venv-colab
.venv-colab/bin/pip install -q -r "$req"
# The image: every distribution and its version, as the fresh VM has them.
.venv-colab/bin/pip freeze --all > .venv-colab/colab-image.txt
echo "$want" > "$stamp"
echo "Colab environment .venv-colab built in $((SECONDS - start)) s with $("$python" --version) ($(du -sh .venv-colab | cut -f1))"
