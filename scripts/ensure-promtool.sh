#!/bin/sh
# Prints the path of a promtool binary, installing it first when there is none.
#
#   sh scripts/ensure-promtool.sh        # stdout: /path/to/promtool; exit 0
#
# Used by __test__/fleet.test.js to check and unit-test deploy/prometheus/ (promtool check
# rules, promtool test rules). Order: $PROMTOOL, a promtool on PATH, one this script installed
# before (.tools/bin/promtool), else Debian's `prometheus` package: `apt-get download` fetches
# the .deb and only usr/bin/promtool is extracted into .tools/bin — nothing is installed
# system-wide and no Prometheus server is set up or started. The package index is refreshed
# (apt-get update, as root) only when apt does not know the package yet. Idempotent; when
# promtool is present it runs no apt command at all.
#
# Exit 0 with the path on stdout; otherwise exit 2 with the reason on stderr (no apt, not
# root for an index that needs updating, no network to the mirror).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/.tools/bin/promtool"

works () { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if [ -n "${PROMTOOL:-}" ] && works "$PROMTOOL"; then echo "$PROMTOOL"; exit 0; fi
if command -v promtool >/dev/null 2>&1 && works "$(command -v promtool)"; then command -v promtool; exit 0; fi
if works "$dest"; then echo "$dest"; exit 0; fi

fail () { echo "ensure-promtool: $*" >&2; exit 2; }
command -v apt-get >/dev/null 2>&1 || fail "no promtool on PATH and no apt-get to fetch Debian's prometheus package (install promtool, or set PROMTOOL=/path/to/promtool)"
command -v dpkg-deb >/dev/null 2>&1 || fail "no dpkg-deb to unpack Debian's prometheus package"

known () { apt-cache show prometheus >/dev/null 2>&1; }
if ! known; then
  [ "$(id -u)" = 0 ] || fail "apt does not know the prometheus package and only root can run apt-get update"
  echo "ensure-promtool: apt-get update (the package index has no prometheus package)" >&2
  apt-get update -qq >&2 || fail "apt-get update failed"
  known || fail "no prometheus package in the apt sources"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/leakguard-promtool.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "ensure-promtool: fetching Debian's prometheus package for its promtool" >&2
# apt-get download writes into the current directory; as root it drops to the _apt user,
# which must be able to write there.
chmod 0777 "$work"
(cd "$work" && apt-get download -qq prometheus >&2) || fail "apt-get download prometheus failed (no network to the Debian mirror?)"
deb=$(ls "$work"/prometheus_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "apt-get download left no prometheus_*.deb"
dpkg-deb -x "$deb" "$work/x" || fail "dpkg-deb could not unpack $deb"
[ -x "$work/x/usr/bin/promtool" ] || fail "$deb has no usr/bin/promtool"
mkdir -p "$here/.tools/bin"
# Copy then rename: a concurrent run never sees a partial binary.
cp "$work/x/usr/bin/promtool" "$dest.$$"
mv -f "$dest.$$" "$dest"
works "$dest" || fail "the unpacked promtool does not run"
echo "$dest"
