#!/usr/bin/env python3
"""pgha-image: the image's default Patroni configuration UNDER the deployment's.

Run by the image's /launch.sh wrapper before Spilo's own launch.sh. Prints, as
JSON (which Spilo reads as YAML), the deployment's SPILO_CONFIGURATION (else
PATRONI_CONFIGURATION, as Spilo reads them) merged over the image's defaults
(the file given as the only argument, /etc/pgha/spilo-defaults.json), by
Spilo's own merge rule with the deployment in the user's place:

- a mapping merges key by key;
- a scalar the deployment sets wins (a key set to null takes the default);
- a list the deployment sets replaces the default list.

So the deployment (compose, the postgres-operator) can replace any setting,
including the whole shared_preload_libraries list, and everything it does
not set comes from the image. Spilo then merges the result over its own
generated configuration by the same rule.

The REST API login: when PGHA_RESTAPI_USERNAME and PGHA_RESTAPI_PASSWORD are
set (the deployment's env file from `pgha-image secrets`), they become
restapi.authentication, unless the deployment's configuration sets one
itself. Patroni then refuses unauthenticated unsafe requests (POST, PATCH,
PUT, DELETE: switchover, failover, restart, config), and patronictl in the
container uses the same login. They cannot reach Patroni as variables:
Spilo strips its environment.

Exit status 2, naming the variable, when it is not YAML or not a mapping,
or when it is larger than MAX_BYTES or holds more than MAX_VALUES values
once its aliases are expanded (a YAML "alias bomb" of a few hundred bytes
expands to billions: it is refused before it is merged or printed).
"""

import json
import os
import sys

import yaml

# A real configuration is a few KiB and a few hundred values.
MAX_BYTES = 1024 * 1024
MAX_VALUES = 100000


def count_values(doc, limit):
    """The number of values in doc with aliases expanded, counting at most
    limit + 1 (so a bomb, or a structure that holds itself, stops early)."""
    seen = 0
    stack = [doc]
    while stack:
        v = stack.pop()
        seen += 1
        if seen > limit:
            break
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return seen


def merge_over(user, defaults):
    if isinstance(user, dict) and isinstance(defaults, dict):
        for key, value in defaults.items():
            user[key] = merge_over(user[key], value) if key in user else value
        return user
    if isinstance(user, list) and isinstance(defaults, list):
        return user
    return defaults if user is None else user


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: spilo_configuration.py DEFAULTS.json")
    with open(sys.argv[1]) as f:
        defaults = json.load(f)
    name = next((n for n in ("SPILO_CONFIGURATION", "PATRONI_CONFIGURATION") if n in os.environ), None)
    text = os.environ.get(name, "") if name else ""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_BYTES:
        print("pgha launch: {0} is larger than {1} bytes; give the configuration in full, "
              "without padding".format(name, MAX_BYTES), file=sys.stderr)
        sys.exit(2)
    try:
        user = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        print("pgha launch: {0} is not valid YAML: {1}".format(name, e), file=sys.stderr)
        sys.exit(2)
    if not isinstance(user, dict):
        print("pgha launch: {0} must be a YAML mapping, not a {1}".format(name, type(user).__name__),
              file=sys.stderr)
        sys.exit(2)
    if count_values(user, MAX_VALUES) > MAX_VALUES:
        print("pgha launch: {0} holds more than {1} values once its YAML aliases are expanded "
              "(an alias bomb, or a structure that holds itself); write the configuration out "
              "without aliases (*name)".format(name, MAX_VALUES), file=sys.stderr)
        sys.exit(2)
    rest_user = os.environ.get("PGHA_RESTAPI_USERNAME", "")
    rest_password = os.environ.get("PGHA_RESTAPI_PASSWORD", "")
    if rest_user and rest_password:
        restapi = user.get("restapi")
        if not isinstance(restapi, dict):
            restapi = user["restapi"] = {}
        if not restapi.get("authentication"):
            restapi["authentication"] = {"username": rest_user, "password": rest_password}
    json.dump(merge_over(user, defaults), sys.stdout, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
