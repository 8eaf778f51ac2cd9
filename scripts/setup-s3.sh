#!/bin/sh
# Installs the S3 server the upload tests run on loopback (moto's S3 with IAM auth, from
# PyPI) into a private venv, once: later runs find it and return at once. On failure it
# prints why, loudly, and writes the reason where __test__/upload.test.js reads it, so the
# test reports a skip with that reason instead of failing obscurely. Exit status is 0 in
# both cases (the rest of the suite must still run).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="${LEAKGUARD_S3_VENV:-$ROOT/node_modules/.cache/leakguard-s3}"
REASON="$DIR.unavailable"
PY="$DIR/bin/python"
MOTO_SPEC='moto[server]>=5,<6'

if [ -x "$PY" ] && "$PY" -c 'import moto, boto3, werkzeug' 2>/dev/null; then
  rm -f "$REASON"
  exit 0
fi
mkdir -p "$(dirname "$DIR")"
fail () {
  echo "" >&2
  echo "!!! leakguard: the S3 test server could not be installed: $1" >&2
  echo "!!! __test__/upload.test.js will SKIP its object-store tests for this reason." >&2
  echo "" >&2
  printf '%s\n' "$1" > "$REASON"
  exit 0
}
PYTHON=$(command -v python3 || command -v python) || fail "no python3 on PATH (install python3 and python3-venv)"
echo "leakguard: installing $MOTO_SPEC into $DIR (once) ..." >&2
"$PYTHON" -m venv "$DIR" >/dev/null 2>&1 || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
"$PY" -m pip install --quiet --disable-pip-version-check "$MOTO_SPEC" >&2 || fail "pip install '$MOTO_SPEC' failed (no access to PyPI?)"
"$PY" -c 'import moto, boto3, werkzeug' || fail "moto installed but does not import"
rm -f "$REASON"
echo "leakguard: S3 test server installed" >&2
