//! `check`: verifies the live database against the Supabase contract,
//! independently of the ledger (a ledger can say "applied" while someone has
//! since revoked a grant). Each check is one catalog question answered by
//! true/false; the report lists every one that fails.

use super::error::{BootstrapError, query_err};
use super::extensions::{self, ExtensionAction, ServerState};
use super::ledger;
use super::report::{CheckReport, Finding};
use super::roles::{self, ROLES};
use super::runner::{self, Settings};
use postgres_protocol::escape::escape_literal;

const SCHEMA_OWNERS: &[(&str, &str)] = &[
    ("extensions", "postgres"),
    ("auth", "supabase_admin"),
    ("storage", "supabase_admin"),
    ("realtime", "supabase_admin"),
    ("_realtime", "supabase_admin"),
    ("graphql_public", "supabase_admin"),
    ("supabase_functions", "supabase_admin"),
    ("pgbouncer", "pgbouncer"),
];

const API_ROLES: &[&str] = &["postgres", "anon", "authenticated", "service_role"];

/// `(what, SQL returning one boolean)`.
fn catalog_checks() -> Vec<(String, String)> {
    let mut c: Vec<(String, String)> = Vec::new();
    let q = escape_literal;
    for r in ROLES {
        let attrs = r.attributes();
        c.push((
            format!("role {} exists", r.name),
            format!(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {})",
                q(r.name)
            ),
        ));
        for (label, col, want) in attrs {
            c.push((
                format!("role {} is {}{}", r.name, if want { "" } else { "NO" }, label),
                format!(
                    "SELECT coalesce((SELECT {col} = {want} FROM pg_roles WHERE rolname = {}), false)",
                    q(r.name)
                ),
            ));
        }
        for m in r.member_of {
            c.push((
                format!("role {} is a member of {m}", r.name),
                format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid \
                     JOIN pg_roles u ON u.oid = am.member WHERE g.rolname = {} AND u.rolname = {})",
                    q(m),
                    q(r.name)
                ),
            ));
        }
        for setting in r.config {
            c.push((
                format!("role {} has setting {setting}", r.name),
                format!(
                    "SELECT coalesce((SELECT {} = ANY(s.setconfig) FROM pg_db_role_setting s \
                     JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = 0 AND r.rolname = {}), false)",
                    q(setting),
                    q(r.name)
                ),
            ));
        }
    }
    for (schema, owner) in SCHEMA_OWNERS {
        c.push((
            format!("schema {schema} exists, owned by {owner}"),
            format!(
                "SELECT coalesce((SELECT pg_get_userbyid(nspowner) = {} FROM pg_namespace WHERE nspname = {}), false)",
                q(owner),
                q(schema)
            ),
        ));
    }
    let usage = |schema: &str, roles: &[&str], c: &mut Vec<(String, String)>| {
        for r in roles {
            c.push((
                format!("{r} has USAGE on schema {schema}"),
                guarded(
                    &[r],
                    &format!("to_regnamespace({}) IS NOT NULL", q(schema)),
                    &format!("has_schema_privilege({}, {}, 'USAGE')", q(r), q(schema)),
                ),
            ));
        }
    };
    usage("extensions", API_ROLES, &mut c);
    usage("public", API_ROLES, &mut c);
    usage("storage", API_ROLES, &mut c);
    usage("graphql_public", API_ROLES, &mut c);
    usage("auth", &["anon", "authenticated", "service_role"], &mut c);
    c.push((
        "supabase_auth_admin has CREATE on schema auth".into(),
        guarded(
            &["supabase_auth_admin"],
            "to_regnamespace('auth') IS NOT NULL",
            "has_schema_privilege('supabase_auth_admin', 'auth', 'CREATE')",
        ),
    ));
    c.push((
        "supabase_storage_admin has CREATE on schema storage".into(),
        guarded(
            &["supabase_storage_admin"],
            "to_regnamespace('storage') IS NOT NULL",
            "has_schema_privilege('supabase_storage_admin', 'storage', 'CREATE')",
        ),
    ));
    c.push((
        "PUBLIC has no CREATE on schema public".into(),
        "SELECT NOT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a \
         WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE')"
            .into(),
    ));
    c.push((
        "no table, view or sequence in public is granted to PUBLIC".into(),
        "SELECT NOT EXISTS (SELECT 1 FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace, \
           aclexplode(coalesce(k.relacl, acldefault('r', k.relowner))) a \
           WHERE n.nspname = 'public' AND k.relkind IN ('r','v','m','S','f','p') AND a.grantee = 0)"
            .into(),
    ));
    // Default privileges: (owner role, schema, object type letter, grantee).
    let defaults: &[(&str, &str, &str)] = &[
        ("postgres", "public", "r"),
        ("postgres", "public", "f"),
        ("postgres", "public", "S"),
        ("supabase_admin", "public", "r"),
        ("supabase_admin", "public", "f"),
        ("supabase_admin", "public", "S"),
        ("supabase_admin", "graphql_public", "r"),
        ("supabase_admin", "graphql_public", "f"),
        ("postgres", "storage", "r"),
        ("supabase_storage_admin", "storage", "r"),
    ];
    for (owner, schema, kind) in defaults {
        for grantee in ["anon", "authenticated", "service_role"] {
            c.push((
                format!("default privileges of {owner} in {schema} ({kind}) grant to {grantee}"),
                default_acl_sql(owner, schema, kind, grantee),
            ));
        }
    }
    for (owner, schema) in [
        ("supabase_auth_admin", "auth"),
        ("supabase_admin", "realtime"),
        ("supabase_admin", "_realtime"),
    ] {
        for grantee in ["postgres", "dashboard_user"] {
            c.push((
                format!("default privileges of {owner} in {schema} (tables) grant to {grantee}"),
                default_acl_sql(owner, schema, "r", grantee),
            ));
        }
    }
    // Tables and their owners.
    for (t, owner) in [
        ("auth.users", "supabase_auth_admin"),
        ("auth.refresh_tokens", "supabase_auth_admin"),
        ("auth.instances", "supabase_auth_admin"),
        ("auth.audit_log_entries", "supabase_auth_admin"),
        ("auth.schema_migrations", "supabase_auth_admin"),
        ("storage.buckets", "supabase_storage_admin"),
        ("storage.objects", "supabase_storage_admin"),
        ("storage.migrations", "supabase_storage_admin"),
        ("supabase_functions.migrations", "supabase_functions_admin"),
        ("supabase_functions.hooks", "supabase_functions_admin"),
    ] {
        c.push((
            format!("table {t} exists, owned by {owner}"),
            format!(
                "SELECT coalesce((SELECT pg_get_userbyid(relowner) = {} FROM pg_class WHERE oid = to_regclass({})), false)",
                q(owner),
                q(t)
            ),
        ));
    }
    c.push((
        "auth.schema_migrations holds GoTrue's first migrations".into(),
        // query_to_xml runs the query only when reached: the table may not exist.
        "SELECT CASE WHEN to_regclass('auth.schema_migrations') IS NULL THEN false ELSE \
         (xpath('//n/text()', query_to_xml('SELECT count(*) AS n FROM auth.schema_migrations \
          WHERE version = ''20171026211738''', false, false, '')))[1]::text = '1' END"
            .into(),
    ));
    for r in ["anon", "authenticated"] {
        c.push((
            format!("{r} cannot read auth.users"),
            guarded(
                &[r],
                "to_regclass('auth.users') IS NOT NULL",
                &format!("NOT has_table_privilege({}, 'auth.users', 'SELECT')", q(r)),
            ),
        ));
    }
    for r in ["anon", "authenticated", "service_role"] {
        c.push((
            format!("{r} may SELECT storage.objects (row level security filters)"),
            guarded(
                &[r],
                "to_regclass('storage.objects') IS NOT NULL",
                &format!("has_table_privilege({}, 'storage.objects', 'SELECT')", q(r)),
            ),
        ));
    }
    c.push((
        "row level security is enabled on storage.objects".into(),
        "SELECT coalesce((SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass('storage.objects')), false)"
            .into(),
    ));
    // Functions: the contract's (one list, shared with the digests `apply`
    // records), plus pg_graphql's entry point, which pg_graphql may replace.
    for f in roles::FUNCTIONS
        .iter()
        .copied()
        .chain(["graphql_public.graphql(text,text,jsonb,jsonb)"])
    {
        c.push((
            format!("function {f} exists"),
            format!("SELECT to_regprocedure({}) IS NOT NULL", q(f)),
        ));
    }
    for r in ["anon", "authenticated", "service_role"] {
        c.push((
            format!("{r} may execute auth.uid()"),
            guarded(
                &[r],
                "to_regprocedure('auth.uid()') IS NOT NULL",
                &format!("has_function_privilege({}, 'auth.uid()', 'EXECUTE')", q(r)),
            ),
        ));
    }
    c.push((
        "pgbouncer.get_auth is SECURITY DEFINER, executable by pgbouncer and not by PUBLIC (anon)".into(),
        guarded(
            &["pgbouncer", "anon"],
            "to_regprocedure('pgbouncer.get_auth(text)') IS NOT NULL",
            "(SELECT prosecdef FROM pg_proc WHERE oid = to_regprocedure('pgbouncer.get_auth(text)')) \
             AND has_function_privilege('pgbouncer', 'pgbouncer.get_auth(text)', 'EXECUTE') \
             AND NOT has_function_privilege('anon', 'pgbouncer.get_auth(text)', 'EXECUTE')",
        ),
    ));
    for t in [
        "issue_pg_cron_access",
        "issue_pg_net_access",
        "issue_pg_graphql_access",
        "issue_graphql_placeholder",
        "pgrst_ddl_watch",
        "pgrst_drop_watch",
    ] {
        c.push((
            format!("event trigger {t} exists and is enabled"),
            format!(
                "SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = {} AND evtenabled <> 'D')",
                q(t)
            ),
        ));
    }
    c.push((
        "publication supabase_realtime exists".into(),
        "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')".into(),
    ));
    c.push((
        "database _supabase exists, owned by supabase_admin".into(),
        "SELECT coalesce((SELECT pg_get_userbyid(datdba) = 'supabase_admin' FROM pg_database WHERE datname = '_supabase'), false)"
            .into(),
    ));
    c
}

/// `(extension, what, SQL returning one boolean)`, asked when the extension exists.
fn extension_grant_checks() -> Vec<(&'static str, String, String)> {
    let mut c = Vec::new();
    for f in [
        "pgsodium.crypto_aead_det_encrypt(bytea,bytea,uuid,bytea)",
        "pgsodium.crypto_aead_det_decrypt(bytea,bytea,uuid,bytea)",
        "pgsodium.crypto_aead_det_keygen()",
    ] {
        c.push((
            "pgsodium",
            format!("service_role may execute {f}"),
            format!(
                "SELECT CASE WHEN to_regprocedure('{f}') IS NULL THEN true \
                 ELSE has_function_privilege('service_role', '{f}', 'EXECUTE') END"
            ),
        ));
    }
    c.push((
        "pgsodium",
        "service_role is a member of pgsodium_keyholder".into(),
        "SELECT to_regrole('pgsodium_keyholder') IS NULL OR pg_has_role('service_role', 'pgsodium_keyholder', 'MEMBER')"
            .into(),
    ));
    c.push((
        "supabase_vault",
        "service_role may read vault.decrypted_secrets and execute vault.create_secret".into(),
        "SELECT has_schema_privilege('service_role', 'vault', 'USAGE') \
           AND has_table_privilege('service_role', 'vault.decrypted_secrets', 'SELECT') \
           AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = 'vault' AND p.proname = 'create_secret' \
             AND NOT has_function_privilege('service_role', p.oid, 'EXECUTE'))"
            .into(),
    ));
    for role in API_ROLES {
        let r = escape_literal(role);
        c.push((
            "pg_net",
            format!("{role} may use schema net and execute net.http_get/http_post (SECURITY DEFINER, search_path=net)"),
            format!(
                "SELECT has_schema_privilege({r}, 'net', 'USAGE') AND NOT EXISTS (\
                   SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                   WHERE n.nspname = 'net' AND p.proname IN ('http_get', 'http_post') \
                   AND NOT (has_function_privilege({r}, p.oid, 'EXECUTE') AND p.prosecdef \
                            AND 'search_path=net' = ANY(coalesce(p.proconfig, '{{}}'))))"
            ),
        ));
    }
    c.push((
        "pg_cron",
        "postgres has USAGE on schema cron WITH GRANT OPTION".into(),
        "SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = 'cron' \
           AND a.grantee = 'postgres'::regrole AND a.privilege_type = 'USAGE' AND a.is_grantable)"
            .into(),
    ));
    c.push((
        "pgjwt",
        "pgjwt is in schema extensions".into(),
        "SELECT extnamespace = 'extensions'::regnamespace FROM pg_extension WHERE extname = 'pgjwt'".into(),
    ));
    c
}

/// `test` evaluated only once the roles and the object exist (CASE keeps the
/// order; the privilege functions raise an error on unknown names).
fn guarded(roles: &[&str], exists: &str, test: &str) -> String {
    let mut conds: Vec<String> = roles
        .iter()
        .map(|r| format!("to_regrole({}) IS NOT NULL", escape_literal(r)))
        .collect();
    conds.push(exists.to_string());
    format!(
        "SELECT CASE WHEN {} THEN ({test}) ELSE false END",
        conds.join(" AND ")
    )
}

fn default_acl_sql(owner: &str, schema: &str, kind: &str, grantee: &str) -> String {
    let (owner, schema, kind, grantee) = (
        escape_literal(owner),
        escape_literal(schema),
        escape_literal(kind),
        escape_literal(grantee),
    );
    format!(
        "SELECT EXISTS (SELECT 1 FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace, \
         aclexplode(d.defaclacl) a WHERE d.defaclrole = to_regrole({owner}) AND n.nspname = {schema} \
         AND d.defaclobjtype = {kind} AND a.grantee = to_regrole({grantee}))"
    )
}

/// Run every check. An error only when the database cannot be asked.
pub async fn check(s: &Settings) -> Result<CheckReport, BootstrapError> {
    let client = s.connect().await?;
    super::extensions::refuse_unknown(&client, &s.extensions).await?;
    // What the last apply was asked for, unless this run says otherwise.
    let led = ledger::read(&client).await?;
    let s = &s.clone().with_recorded_selection(&led)?;
    let mut findings = Vec::new();
    for (what, sql) in catalog_checks() {
        let ok: Option<bool> = client
            .query_one(&sql, &[])
            .await
            .map_err(query_err(format!("checking that {what}")))?
            .get(0);
        let ok = ok.unwrap_or(false);
        findings.push(Finding { what, ok });
    }
    // Inside _supabase.
    let supabase_db_exists = findings.last().is_some_and(|f| f.ok);
    for schema in ["_analytics", "_supavisor"] {
        let what = format!("schema {schema} in database _supabase, owned by supabase_admin");
        let ok = if supabase_db_exists {
            let other = s.connect_to("_supabase").await?;
            other
                .query_one(
                    "SELECT coalesce((SELECT pg_get_userbyid(nspowner) = 'supabase_admin' FROM pg_namespace \
                     WHERE nspname = $1), false)",
                    &[&schema],
                )
                .await
                .map_err(query_err(format!("checking that {what}")))?
                .get(0)
        } else {
            false
        };
        findings.push(Finding { what, ok });
    }
    // Extensions: required ones created; optional ones created unless not installed.
    let states = extensions::server_states(&client, &s.extensions.create).await?;
    let preloaded = extensions::preloaded(&client).await?;
    let actions = extensions::decide(&s.extensions, &states, &led, &preloaded);
    let mut pending_extensions = Vec::new();
    let mut warnings = Vec::new();
    for name in &s.extensions.create {
        let needs_preload = actions.iter().find_map(|a| match a {
            ExtensionAction::NeedsPreload { name: n, library, .. } if n == name => Some(library),
            _ => None,
        });
        match states.get(name) {
            Some(ServerState::Created { .. }) => findings.push(Finding {
                what: format!("extension {name} is created"),
                ok: true,
            }),
            Some(ServerState::NotInstalled) | None if !s.extensions.is_required(name) => {
                pending_extensions.push(name.clone())
            }
            Some(ServerState::Installed { .. })
                if needs_preload.is_some() && !s.extensions.is_required(name) =>
            {
                pending_extensions.push(name.clone());
                warnings.push(format!(
                    "extension {name} is pending: {}",
                    extensions::preload_reason(needs_preload.expect("matched"))
                ));
            }
            _ => findings.push(Finding {
                what: format!("extension {name} is created"),
                ok: false,
            }),
        }
    }
    // The grants Supabase gives on what these extensions create (0011), when present.
    for (ext, what, sql) in extension_grant_checks() {
        let present: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)",
                &[&ext],
            )
            .await
            .map_err(query_err("looking up the extensions"))?
            .get(0);
        if present {
            let ok: Option<bool> = client
                .query_one(&sql, &[])
                .await
                .map_err(query_err(format!("checking that {what}")))?
                .get(0);
            findings.push(Finding {
                what,
                ok: ok.unwrap_or(false),
            });
        }
    }
    // Who may act as a contract role: exactly the members the contract gives.
    let drift = roles::inspect(&client).await?;
    for r in ROLES.iter().filter(|r| r.owned()) {
        let unexpected: Vec<&str> = drift
            .iter()
            .filter_map(|d| match d {
                roles::RoleDrift::UnexpectedMember { group, member, .. } if group == r.name => {
                    Some(member.as_str())
                }
                _ => None,
            })
            .collect();
        findings.push(Finding {
            what: if unexpected.is_empty() {
                format!("role {} has no members but the contract's", r.name)
            } else {
                format!(
                    "role {} has no members but the contract's (found: {})",
                    r.name,
                    unexpected.join(", ")
                )
            },
            ok: unexpected.is_empty(),
        });
    }
    // The contract's functions: as recorded when the bootstrap applied them.
    let digests = roles::function_digests(&client).await?;
    for sig in roles::FUNCTIONS {
        let (Some(now), Some(row)) = (digests.get(*sig), led.function(sig)) else {
            if digests.contains_key(*sig) && led.exists {
                findings.push(Finding {
                    what: format!("function {sig}: its definition is recorded in the ledger (run apply)"),
                    ok: false,
                });
            }
            continue;
        };
        findings.push(Finding {
            what: if now == &row.sha256 {
                format!("function {sig} is as recorded at apply")
            } else {
                format!(
                    "function {sig} is as recorded at apply (recorded sha256 {}, now {}: its definition was replaced)",
                    &row.sha256[..12],
                    &now[..12]
                )
            },
            ok: now == &row.sha256,
        });
    }
    // Their owners: the contract's (a SECURITY DEFINER function runs with its owner's rights).
    for o in roles::function_owners(&client).await? {
        findings.push(Finding {
            what: if o.owner == o.wanted {
                format!("function {} is owned by {}", o.function, o.wanted)
            } else {
                format!(
                    "function {} is owned by {} (found: {})",
                    o.function, o.wanted, o.owner
                )
            },
            ok: o.owner == o.wanted,
        });
    }
    // The ledger: every migration of this binary applied, none changed.
    let ledger_ok = runner::verify_ledger(s, &led).is_ok();
    findings.push(Finding {
        what: "the ledger records no changed or unknown migration".into(),
        ok: ledger_ok,
    });
    for m in runner::pending(&s.migrations, &led) {
        findings.push(Finding {
            what: format!("migration {} is applied", m.name),
            ok: false,
        });
    }
    // Secrets: what the files say is what the database holds (compared
    // here, never shown), decided as `apply` decides what to set.
    let secret_set = super::secrets::SecretSet::read(&s.secrets)?;
    let decided = super::secrets::decide(&client, &secret_set).await?;
    for (role, source, _) in &secret_set.passwords {
        findings.push(Finding {
            what: format!("the password of role {role} is the one in {}", source.describe()),
            ok: decided.unchanged.contains(role),
        });
    }
    if let Some((path, _)) = &secret_set.jwt {
        findings.push(Finding {
            what: format!(
                "app.settings.jwt_secret is the one in {} (and app.settings.jwt_exp the configured {})",
                path.display(),
                secret_set.jwt_exp
            ),
            ok: decided.jwt_matches == Some(true),
        });
    }
    let without_password = client
        .query(
            "SELECT rolname::text FROM pg_authid WHERE rolcanlogin AND rolpassword IS NULL AND rolname = ANY($1) \
             ORDER BY 1",
            &[&super::secrets::LOGIN_ROLES],
        )
        .await
        .map_err(query_err("listing roles without password"))?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    Ok(CheckReport {
        findings,
        pending_extensions,
        warnings,
        without_password,
    })
}
