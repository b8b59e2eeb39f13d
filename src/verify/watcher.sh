# pgha-image verify: the watcher that removes a run's objects should verify
# be killed. Run by `sh -c` in its own process group (see runtime.rs).
# Usage: sh -c SCRIPT pgha-verify-watcher ENGINE LABEL_FILTER SECONDS RUN_DIR
IFS= read -r line
[ "$line" = done ] && exit 0
end=$(( $(date +%s) + $3 )); quiet=0
while :; do
  c=$("$1" ps -a -q --filter "$2" 2>/dev/null)
  [ -n "$c" ] && "$1" rm -f -v $c >/dev/null 2>&1
  n=$("$1" network ls -q --filter "$2" 2>/dev/null)
  [ -n "$n" ] && "$1" network rm $n >/dev/null 2>&1
  v=$("$1" volume ls -q --filter "$2" 2>/dev/null)
  [ -n "$v" ] && "$1" volume rm -f $v >/dev/null 2>&1
  if [ -z "$c$n$v" ]; then quiet=$((quiet + 1)); else quiet=0; fi
  [ $quiet -ge 2 ] && [ "$(date +%s)" -ge $end ] && break
  sleep 1
done
chmod -R u+rwx "$4" 2>/dev/null; rm -rf "$4"
