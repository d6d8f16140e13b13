#!/usr/bin/env bash
# Runs docs/C_API.md's example. It exits 0 when saxpy ran and was right, 3 when it compiled the
# kernel but found no GPU (a pass here unless KILN_REQUIRE_GPU=1), anything else on failure.
set -uo pipefail
cache=$(mktemp -d /tmp/kiln-c-example.XXXXXX)
trap 'rm -rf "$cache"' EXIT
KILN_CACHE_DIR=$cache "$@"  # the example, after the emulator of a cross build if any
rc=$?
if [ "$rc" -eq 3 ] && [ "${KILN_REQUIRE_GPU:-0}" != "1" ]; then
  echo "(no GPU here: the example compiled its kernel and stopped, as it should)"
  exit 0
fi
exit "$rc"
