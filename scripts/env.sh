#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv. Idempotent and quiet when done.
# Pinned versions: scripts/constraints.txt. facenet-pytorch pins an old torch/numpy, so it goes
# in with --no-deps (its own code runs fine on the versions pinned here).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.bench-env-ok"
if [ -f "$stamp" ] && [ "$stamp" -nt "$root/pyproject.toml" ] && [ "$stamp" -nt "$root/scripts/constraints.txt" ]; then
  exit 0
fi
echo "setting up $venv (first run only; torch is large)" >&2
python3 -m venv "$venv"
pip_install() {
  # Local package mirrors make pip warn about absent index folders; drop only that noise.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" \
    2> >(grep -v "is neither a file nor a directory" >&2)
}
pip_install -c "$root/scripts/constraints.txt" torch torchvision
pip_install -c "$root/scripts/constraints.txt" -e "$root[dev,cluster]"
pip_install --no-deps "facenet-pytorch==2.6.0"
touch "$stamp"
