# pgha-image verify: the image's facts, read in one container of the image.
# Run by `sh -c` (see image.rs: `$BOOTSTRAP_BIN` is replaced by the image's
# bootstrap path before it runs). Arguments: the extensions, `--`, the majors.
# Prints sections, each after a line `@@name`.
echo @@owner; id -u postgres 2>/dev/null; id -g postgres 2>/dev/null
echo @@glibc; (getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>&1 | head -n1)
echo @@bootstrap; BIN_OUTPUT=$("$BOOTSTRAP_BIN" --version 2>&1); echo "status=$?"; printf '%s\n' "$BIN_OUTPUT" | head -n 5
echo @@packages; dpkg-query -W -f '${Package}\n' 2>/dev/null
echo @@compilers; for c in cc c++ gcc g++ clang clang++ rustc go tcc; do command -v "$c"; done
echo @@apt
find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name lock ! -name partial ! -name auxfiles 2>/dev/null | head -n 5
find /var/lib/apt/lists/partial -mindepth 1 2>/dev/null | head -n 5
find /var/cache/apt -type f \( -name '*.deb' -o -name '*.bin' \) 2>/dev/null | head -n 5
echo @@extensions
majors=""; exts=""; seen=""
for a in "$@"; do
  if [ "$a" = "--" ]; then seen=1; elif [ -n "$seen" ]; then majors="$majors $a"; else exts="$exts $a"; fi
done
for e in $exts; do
  for n in $majors; do
    share=/usr/share/postgresql/$n/extension; lib=/usr/lib/postgresql/$n/lib
    if [ -f "$share/$e.control" ]; then
      # The libraries of what CREATE EXTENSION installs: the default
      # version's script (old upgrade scripts name libraries of
      # long-gone versions); without such a script, every script.
      def=$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$share/$e.control")
      scripts="$share/$e--$def.sql"
      [ -f "$scripts" ] || scripts=$(ls "$share/$e"--*.sql 2>/dev/null)
      # The control file's module_pathname counts where a script uses it.
      files=$scripts
      grep -q MODULE_PATHNAME $scripts 2>/dev/null && files="$share/$e.control $scripts"
      for l in $(cat $files 2>/dev/null | grep -o '\$libdir/[A-Za-z0-9_.-]*' | sed 's|^\$libdir/||' | sort -u); do
        [ -f "$lib/$l.so" ] || [ -f "$lib/$l" ] || echo "$e $n the library $lib/$l.so is missing"
      done
    elif [ ! -f "$lib/$e.so" ]; then
      echo "$e $n neither $share/$e.control nor $lib/$e.so exists"
    fi
  done
done
true
