# Shared helpers for scripts/run and scripts/test. Sourced, not executed.
set -euo pipefail

ZENITH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ZENITH_ROOT

die() { echo "zenith: $*" >&2; exit 1; }
say() { echo "zenith: $*" >&2; }

# Installs the Debian packages that are missing; fails with a clear message if it cannot.
ensure_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}. Run this command as root, or install them with: apt-get install -y ${missing[*]}"
  fi
  say "installing Debian packages: ${missing[*]}"
  local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}")
  # Try with the package lists as they are; refresh them once if that fails (or if there are none).
  if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] || ! "${install[@]}" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed; check the network or the apt sources"
    "${install[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  fi
}

# Installs npm packages when node_modules is missing or older than the lock file.
ensure_node_modules() {
  command -v node >/dev/null || die "Node.js 20.19 or newer is required (apt-get install nodejs npm)"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "Node.js 20.19 or newer is required, found $(node --version)"
  cd "$ZENITH_ROOT"
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || npm ci --no-audit --no-fund || die "npm ci failed"
  fi
}
