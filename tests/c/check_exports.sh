#!/usr/bin/env bash
# libkiln.so exports exactly the functions kiln.h declares: every KILN_API function, nothing else
# (no C++ symbol of the library inside, no libstdc++ template).
set -euo pipefail
library=$1
header=$2
declared=$(grep -oE '^KILN_API [^(]*\bkiln_[a-z0-9_]+\(' "$header" | grep -oE 'kiln_[a-z0-9_]+\($' | tr -d '(' | sort -u)
# Defined dynamic symbols, without the version node itself (type A) and version suffixes.
exported=$("${NM:-nm}" -D --defined-only "$library" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u)
if [ "$declared" != "$exported" ]; then
  echo "exported symbols differ from kiln.h's declarations (< declared only, > exported only):"
  diff <(echo "$declared") <(echo "$exported") || true
  exit 1
fi
versions=$("${NM:-nm}" -D --defined-only "$library" | awk '$2 != "A" {print $3}' | grep -vc '@@KILN_1$' || true)
if [ "$versions" != "0" ]; then
  echo "$versions exported symbols lack the KILN_1 version"
  exit 1
fi
echo "libkiln.so exports the $(echo "$declared" | wc -l) functions kiln.h declares, all at version KILN_1"
