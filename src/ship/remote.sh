# pgha-image ship: the remote side. Run by `sh -c` over ssh; needs only a
# POSIX sh, tar, sha256sum, zstd or gzip, and docker or podman.
# Usage: sh -c SCRIPT pgha-ship COMMAND ENGINE ARGS...
set -u
cmd=$1
engine=$2
shift 2
base="${XDG_CACHE_HOME:-$HOME/.cache}/pgha-image/ship"
layers="$base/layers"

fail() { code=$1; shift; echo "$*" >&2; exit "$code"; }

pick_engine() {
  case "$engine" in
    auto)
      if command -v docker >/dev/null 2>&1 && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        engine=docker
      elif command -v podman >/dev/null 2>&1; then
        engine=podman
      else
        fail 94 "no container engine: no docker that answers, no podman"
      fi ;;
    docker)
      command -v docker >/dev/null 2>&1 || fail 94 "docker is not installed"
      docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || fail 94 "docker does not answer (is dockerd running, DOCKER_HOST right?)" ;;
    podman)
      command -v podman >/dev/null 2>&1 || fail 94 "podman is not installed" ;;
    *) fail 2 "unknown engine $engine" ;;
  esac
}

case "$cmd" in
  inventory)
    # What the host holds: engine, decompressor, every image's layers, staged layers.
    pick_engine
    echo "engine $engine"
    if command -v zstd >/dev/null 2>&1; then echo "decompress zstd"
    elif command -v gzip >/dev/null 2>&1; then echo "decompress gzip"
    else fail 94 "neither zstd nor gzip is installed"; fi
    command -v sha256sum >/dev/null 2>&1 || fail 94 "sha256sum (coreutils) is not installed"
    command -v tar >/dev/null 2>&1 || fail 94 "tar is not installed"
    ids=$($engine image ls -a -q --no-trunc 2>/dev/null | sort -u) || fail 1 "$engine image ls failed"
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086
      # An image removed meanwhile only makes us send more: not an error.
      $engine image inspect --format 'image {{.Id}}{{range .RootFS.Layers}} {{.}}{{end}}' $ids 2>/dev/null || true
    fi
    if [ -d "$layers" ]; then
      # Left by killed runs, or staged for an image never loaded: not forever.
      find "$layers" -name '.*.partial' -mmin +120 -exec rm -f {} + 2>/dev/null
      find "$layers" -name '*.tar' -mtime +7 -exec rm -f {} + 2>/dev/null
      # Verified before use: a staged file that does not hash to its name
      # (a crash mid-write, a bad disk) is removed, and sent again.
      for f in "$layers"/*.tar; do
        [ -f "$f" ] || continue
        hex=$(basename "$f" .tar)
        if [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$hex" ]; then
          echo "staged $hex"
        else
          rm -f "$f" && echo "evicted $hex"
        fi
      done
    fi
    echo "end"
    ;;
  receive)
    # stdin: one layer, compressed. Kept only when its sha256 is the diff id.
    hex=$1
    how=$2
    mkdir -p "$layers" || fail 1 "cannot create $layers on this host: make it writable or free its disk"
    tmp="$layers/.$hex.$$.partial"
    errf="$layers/.$hex.$$.err"
    trap 'rm -f "$tmp" "$errf"' EXIT
    trap 'exit 1' HUP INT TERM PIPE
    # A place we cannot write is the host's problem (exit 1), not corruption.
    nowrite() { fail 1 "cannot write in $layers on this host ($*): make it writable or free its disk, then ship again"; }
    # (In a subshell: a failed redirection of `:` would end this shell.)
    why=$( (: > "$tmp") 2>&1 ) || nowrite "${why:-not writable}"
    case "$how" in
      zstd|gzip) ;;
      *) fail 2 "unknown compression $how" ;;
    esac
    if ! "$how" -q -d -c > "$tmp" 2> "$errf"; then
      why=$(tail -n 1 "$errf" 2>/dev/null)
      case "$why" in
        *[Ww]rite*|*"No space"*|*"Read-only"*|*"Disk quota"*) nowrite "$why" ;;
      esac
      fail 92 "layer sha256:$hex arrived corrupt or truncated ($how could not decode it: $why)"
    fi
    got=$(sha256sum "$tmp" | cut -d' ' -f1)
    [ "$got" = "$hex" ] || fail 93 "layer sha256:$hex arrived as sha256:$got"
    mv -f "$tmp" "$layers/$hex.tar" || fail 1 "cannot store the layer in $layers"
    echo "ok $got"
    ;;
  load)
    # stdin: a tar with manifest.json and the config. Args: image id hex, tag,
    # temporary tag, then every layer's diff id hex in order.
    pick_engine
    id=$1
    tag=$2
    tmptag=$3
    shift 3
    mkdir -p "$base" || fail 1 "cannot create $base"
    work=$(mktemp -d "$base/load.XXXXXX") || fail 1 "cannot create a directory in $base"
    trap 'rm -rf "$work"' EXIT
    trap 'exit 1' HUP INT TERM PIPE
    tar -x -f - -C "$work" || fail 1 "cannot unpack the image's manifest and config"
    got=$(sha256sum "$work/$id.json" | cut -d' ' -f1)
    [ "$got" = "$id" ] || fail 93 "the image config arrived as sha256:$got, not sha256:$id"
    for hex in "$@"; do
      if [ -f "$layers/$hex.tar" ]; then
        ln "$layers/$hex.tar" "$work/$hex.tar" 2>/dev/null || cp "$layers/$hex.tar" "$work/$hex.tar" \
          || fail 1 "cannot stage layer $hex"
      else
        # A layer the engine holds: it does not read the file (an empty one
        # fails the engine's digest check if it ever does).
        : > "$work/$hex.tar"
      fi
    done
    if ! out=$(tar -c -f - -C "$work" . | $engine load 2>&1); then
      # A staged layer spoilt since it was checked: remove it, so that the
      # next run sends it again.
      bad=""
      for hex in "$@"; do
        f="$layers/$hex.tar"
        if [ -s "$f" ] && [ "$(sha256sum "$f" | cut -d' ' -f1)" != "$hex" ]; then
          rm -f "$f"; bad="$bad sha256:$hex"
        fi
      done
      [ -n "$bad" ] && fail 93 "staged layer(s)$bad were corrupt on this host; removed them: ship again to send them anew"
      fail 95 "$engine load failed: $out"
    fi
    loaded=$($engine image inspect --format '{{.Id}}' "$tmptag" 2>&1) || fail 95 "$engine load did not make $tmptag: $out"
    case "$loaded" in sha256:*) ;; *) loaded="sha256:$loaded" ;; esac
    if [ "$loaded" != "sha256:$id" ]; then
      $engine rmi "$tmptag" >/dev/null 2>&1
      fail 96 "the loaded image has id $loaded, not sha256:$id; removed it"
    fi
    $engine tag "$tmptag" "$tag" || fail 1 "$engine tag failed"
    if [ "$engine" = podman ]; then podman untag "$id" "$tmptag" >/dev/null 2>&1
    else docker rmi "$tmptag" >/dev/null 2>&1; fi
    for hex in "$@"; do rm -f "$layers/$hex.tar"; done
    echo "loaded sha256:$id"
    ;;
  tag)
    # The image is already there: only the tag is set.
    pick_engine
    $engine tag "$1" "$2" || fail 1 "$engine tag failed"
    echo "tagged"
    ;;
  *) fail 2 "unknown command $cmd" ;;
esac
