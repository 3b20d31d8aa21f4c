#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it:
# lint (ruff), types (mypy --strict on agent/), and pytest (unit, integration, e2e).
# Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

# Debian packages the tests drive for real (a real Prometheus, promtool, amtool; PostgreSQL for the e2e tests).
DEB_PACKAGES=(prometheus prometheus-alertmanager postgresql)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo ">> installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    # Packaged services must not start on install (tests start their own).
    echo 'exit 101' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    $SUDO rm -f /usr/sbin/policy-rc.d
  else
    echo "!! cannot install ${missing[*]} (not root, no sudo): tests that need them will fail" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo ">> creating $VENV"
  "$PY" -m venv "$VENV"
fi
echo ">> installing otel-sidecar with test extras"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e ".[test]"

echo ">> ruff"
"$VENV/bin/ruff" check agent instrumentation tests bench deploy
echo ">> mypy --strict agent/ instrumentation/"
"$VENV/bin/mypy" agent instrumentation
echo ">> pytest"
set +e
"$VENV/bin/pytest" "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "!! pytest collected no tests" >&2
fi
exit $rc
