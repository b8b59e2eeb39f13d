# pgha-image's base probe: run once in the base image, as root, with no
# network (`run --rm -i --network none --entrypoint /bin/sh BASE -s`), it
# prints the base's facts as KEY=VALUE lines (src/context/probe.rs parses
# them). POSIX sh and coreutils only; python3 only for Spilo's preload list.
# Nothing is written in the container.
set -u

echo "probe=1"

if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    echo "os=${NAME:-unknown} ${VERSION_ID:-}"
fi

g=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
if [ -z "$g" ] && command -v ldd >/dev/null 2>&1; then
    g=$(ldd --version 2>&1 | awk 'NR==1{print $NF}')
fi
[ -n "$g" ] && echo "glibc=$g"

# libcurl: the installed package's upstream version (Debian/Ubuntu: libcurl4,
# libcurl4t64), else what curl says it links.
c=$(dpkg-query -W -f '${db:Status-Abbrev} ${Version}\n' libcurl4 libcurl4t64 libcurl3-gnutls 2>/dev/null \
    | awk '$1=="ii"{print $2; exit}')
if [ -z "$c" ] && command -v curl >/dev/null 2>&1; then
    c=$(curl --version 2>/dev/null | sed -n 's#.*libcurl/\([0-9.]*\).*#\1#p' | head -n 1)
fi
c=$(echo "$c" | sed 's/^[0-9]*://; s/[-+~].*//')
[ -n "$c" ] && echo "lib.libcurl=$c"

# The major whose postgres is on PATH.
p=$(command -v postgres 2>/dev/null)
if [ -n "$p" ]; then
    p=$(readlink -f "$p")
    case "$p" in
        /usr/lib/postgresql/*/bin/postgres) echo "main=$(echo "$p" | cut -d/ -f5)" ;;
    esac
fi

for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/postgres" ] || continue
    m=$(echo "$bin" | cut -d/ -f5)
    echo "pg=$m"
    echo "pg.$m.version=$("$bin/postgres" --version 2>/dev/null | awk '{print $3}')"
    # pg_config: the major's own, else the one of the same major on PATH.
    pc=""
    if [ -x "$bin/pg_config" ]; then
        pc="$bin/pg_config"
    elif command -v pg_config >/dev/null 2>&1 && pg_config --version 2>/dev/null | grep -q " $m[.]"; then
        pc=$(command -v pg_config)
    fi
    if [ -n "$pc" ]; then
        echo "pg.$m.configure=$("$pc" --configure 2>/dev/null | tr '\n' ' ')"
    fi
    for ctl in /usr/share/postgresql/"$m"/extension/*.control; do
        [ -f "$ctl" ] || continue
        name=$(basename "$ctl" .control)
        case "$name" in *--*) continue ;; esac
        v=$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\{0,1\}\([^']*\)'\{0,1\}.*/\1/p" "$ctl" | head -n 1)
        [ -n "$v" ] && echo "ext.$m.$name=$v"
    done
    # Libraries without a control file (output plugins such as wal2json):
    # the version of the package that installed them, when it is not the
    # server's own package.
    for so in /usr/lib/postgresql/"$m"/lib/*.so; do
        [ -f "$so" ] || continue
        name=$(basename "$so" .so)
        [ -f "/usr/share/postgresql/$m/extension/$name.control" ] && continue
        pkg=$(dpkg-query -S "$so" 2>/dev/null | head -n 1 | cut -d: -f1)
        case "$pkg" in "" | "postgresql-$m" | "postgresql-$m,"*) continue ;; esac
        v=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null | sed 's/^[0-9]*://; s/[-+~].*//')
        [ -n "$v" ] && echo "ext.$m.$name=$v"
    done
done

# The preload list the base uses by itself, computed as Spilo computes it:
# the generated list of /scripts/configure_spilo.py, with Spilo's table
# (spilo_commons.append_extensions) for the major it runs (PGVERSION, else
# the postgres on PATH). No line when any of that is missing.
if command -v python3 >/dev/null 2>&1 && [ -r /scripts/configure_spilo.py ]; then
    major="${PGVERSION:-}"
    [ -x "/usr/lib/postgresql/$major/bin/postgres" ] || major=$(postgres --version 2>/dev/null | awk '{print $3}' | cut -d. -f1)
    PGHA_MAJOR="$major" python3 - <<'PY' 2>/dev/null
import os, re, sys
sys.path.insert(0, "/scripts")
text = open("/scripts/configure_spilo.py").read()
m = re.search(r"""shared_preload_libraries['"]?\s*:\s*['"]([^'"]*)['"]""", text)
if m:
    import spilo_commons
    print("preload=" + spilo_commons.append_extensions(m.group(1), float(os.environ["PGHA_MAJOR"])))
PY
fi
echo "done=1"
