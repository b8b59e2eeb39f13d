"""The stand-in's spilo_commons.py: Spilo's table of extensions whose library
it adds to the generated preload list, and the function that adds them,
written from the behaviour of zalando/spilo's
postgres-appliance/scripts/spilo_commons.py (tags 3.2-p2 to 4.0-p3), not from
its code. configure_spilo.py calls append_extensions() when the user's
configuration does not set shared_preload_libraries, and pgha-image's base
probe calls it the same way to learn the list a base uses by itself.

Reduced to what the stand-in has: Spilo's table also holds timescaledb and
pg_stat_kcache (preloaded) and pg_partman (extwlist only).
"""

# name: (lowest major, highest major, preloaded, in extwlist.extensions)
extensions = {
    "pg_cron": (9.5, 17, True, False),
}


def append_extensions(old, version, extwlist=False):
    """`old` (a comma-separated list) followed by the table's libraries that
    apply to PostgreSQL `version` (a float), each once, in order; a name of
    the table already in `old` stays only when it applies to `version`."""
    column = 3 if extwlist else 2
    out = []

    def maybe_append(name):
        row = extensions.get(name)
        if name and name not in out and (row is None or (row[0] <= version <= row[1] and row[column])):
            out.append(name)

    for name in old.split(","):
        maybe_append(name.strip())
    for name in extensions:
        maybe_append(name)
    return ",".join(out)
