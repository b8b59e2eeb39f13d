#!/bin/sh
# check-base-extension NAME LIBRARY MIN_VERSION MAJOR...
#
# Part of a pgha-image build: checks, in the final image, that the base image
# provides extension NAME for every PostgreSQL MAJOR: its control file (at
# MIN_VERSION or newer; "-" for no minimum), or else, for modules without one
# (output plugins, preload-only modules), its library LIBRARY.so.
# Fails naming the extension. PGHA_ROOT prefixes the paths (for tests).
set -eu

if [ "$#" -lt 4 ]; then
    echo "usage: check-base-extension NAME LIBRARY MIN_VERSION MAJOR..." >&2
    exit 2
fi
name=$1
lib=$2
min=$3
shift 3
root="${PGHA_ROOT:-}"

for major in "$@"; do
    control="$root/usr/share/postgresql/$major/extension/$name.control"
    library="$root/usr/lib/postgresql/$major/lib/$lib.so"
    if [ -f "$control" ]; then
        have=$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$control" | head -n 1)
        if [ -z "$have" ]; then
            echo "pgha-image: extension $name: $control has no default_version" >&2
            exit 1
        fi
        if [ "$min" != "-" ] && ! dpkg --compare-versions "$have" ge "$min"; then
            echo "pgha-image: extension $name: the base image has version $have for PostgreSQL $major, older than the required $min; build the pinned version with --from-source $name" >&2
            exit 1
        fi
        echo "pgha-image: extension $name $have for PostgreSQL $major: provided by the base image"
    elif [ -f "$library" ]; then
        echo "pgha-image: extension $name for PostgreSQL $major: provided by the base image ($library)"
    else
        echo "pgha-image: extension $name: not provided by the base image for PostgreSQL $major (neither $control nor $library exists); build it with --from-source $name, or leave it out" >&2
        exit 1
    fi
done
