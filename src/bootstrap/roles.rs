//! The roles and functions the contract owns, held to it on every run.
//!
//! A migration runs once; a role can be changed at any time afterwards, and
//! a role that existed before the bootstrap (adopted) may come with members
//! of its own. So every `apply` compares each contract role with the
//! contract's table ([`ROLES`], the one definition `check` uses too) and
//! establishes it:
//!
//! - attributes (SUPERUSER, LOGIN, INHERIT, …) are set as specified;
//! - memberships the contract gives are granted;
//! - **members the contract does not give are revoked**, with a warning
//!   naming each and an event row in the ledger. Whoever is a member of
//!   `supabase_admin` can become a superuser; of `service_role`, bypass row
//!   level security; of `anon`/`authenticated`, act as the API. The contract
//!   owns those roles; a site that wants other roles to act as them grants
//!   its own roles *to* `authenticator` (PostgREST's way), which is left alone.
//!
//! `postgres` is Patroni's superuser: its attributes and its members are
//! not touched, only the memberships the contract gives it are granted; as
//! a member of a contract role it is always accepted (it gains nothing).
//!
//! The functions the contract defines are recorded by a SHA-256 of their
//! definition (body, SECURITY DEFINER, per-function settings) once the
//! bootstrap's migrations have run; a later difference is drift, refused by
//! `apply` and reported by `check` alike ([`FUNCTIONS`]).
//!
//! Their owners are part of the contract too: a SECURITY DEFINER function
//! (`pgbouncer.get_auth`, the grant helpers) runs with its owner's rights,
//! and whoever owns a function can redefine it. [`function_owners`] holds
//! the owner each must have; `apply` resets a different owner (with a
//! warning and an event, like a revoked member) and `check` reports it.

use super::error::{BootstrapError, query_err};
use super::ledger::{self, Ledger};
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

/// One role of the contract: attributes, memberships and settings.
pub struct RoleSpec {
    pub name: &'static str,
    pub superuser: bool,
    pub login: bool,
    pub inherit: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub member_of: &'static [&'static str],
    pub config: &'static [&'static str],
}

impl RoleSpec {
    /// `(keyword, pg_roles column, wanted)` for each attribute.
    pub fn attributes(&self) -> [(&'static str, &'static str, bool); 7] {
        [
            ("SUPERUSER", "rolsuper", self.superuser),
            ("LOGIN", "rolcanlogin", self.login),
            ("INHERIT", "rolinherit", self.inherit),
            ("CREATEDB", "rolcreatedb", self.createdb),
            ("CREATEROLE", "rolcreaterole", self.createrole),
            ("REPLICATION", "rolreplication", self.replication),
            ("BYPASSRLS", "rolbypassrls", self.bypassrls),
        ]
    }

    /// Created or adopted by the bootstrap (all but `postgres`).
    pub fn owned(&self) -> bool {
        self.name != "postgres"
    }
}

const fn role(name: &'static str) -> RoleSpec {
    RoleSpec {
        name,
        superuser: false,
        login: false,
        inherit: true,
        createdb: false,
        createrole: false,
        replication: false,
        bypassrls: false,
        member_of: &[],
        config: &[],
    }
}

/// The contract's role table (supabase-contract.md, "Roles").
pub const ROLES: &[RoleSpec] = &[
    RoleSpec {
        superuser: true,
        login: true,
        createdb: true,
        createrole: true,
        replication: true,
        bypassrls: true,
        config: &["search_path=\"$user\", public, auth, extensions"],
        ..role("supabase_admin")
    },
    RoleSpec {
        superuser: true,
        login: true,
        createdb: true,
        createrole: true,
        replication: true,
        bypassrls: true,
        member_of: &[
            "anon",
            "authenticated",
            "service_role",
            "pg_read_all_data",
            "pg_signal_backend",
            "pg_monitor",
        ],
        config: &["search_path=\"$user\", public, extensions"],
        ..role("postgres")
    },
    RoleSpec {
        login: true,
        inherit: false,
        member_of: &["anon", "authenticated", "service_role"],
        config: &["statement_timeout=8s", "lock_timeout=8s"],
        ..role("authenticator")
    },
    RoleSpec {
        config: &["statement_timeout=3s"],
        ..role("anon")
    },
    RoleSpec {
        config: &["statement_timeout=8s"],
        ..role("authenticated")
    },
    RoleSpec {
        bypassrls: true,
        ..role("service_role")
    },
    RoleSpec {
        login: true,
        inherit: false,
        config: &["search_path=auth", "idle_in_transaction_session_timeout=60s"],
        ..role("supabase_auth_admin")
    },
    RoleSpec {
        login: true,
        inherit: false,
        createrole: true,
        member_of: &["authenticator"],
        config: &["search_path=storage"],
        ..role("supabase_storage_admin")
    },
    RoleSpec {
        login: true,
        inherit: false,
        createrole: true,
        config: &["search_path=supabase_functions"],
        ..role("supabase_functions_admin")
    },
    RoleSpec {
        login: true,
        replication: true,
        ..role("supabase_replication_admin")
    },
    RoleSpec {
        login: true,
        bypassrls: true,
        member_of: &["pg_read_all_data"],
        ..role("supabase_read_only_user")
    },
    RoleSpec {
        createdb: true,
        createrole: true,
        replication: true,
        ..role("dashboard_user")
    },
    RoleSpec {
        login: true,
        ..role("pgbouncer")
    },
    // 0012: the PostgreSQL exporter's least-privilege login.
    RoleSpec {
        login: true,
        member_of: &["pg_monitor"],
        config: &["statement_timeout=10s"],
        ..role("pgha_monitor")
    },
];

/// The members the contract gives `group`.
pub fn expected_members(group: &str) -> Vec<&'static str> {
    ROLES
        .iter()
        .filter(|r| r.member_of.contains(&group))
        .map(|r| r.name)
        .collect()
}

/// One way a contract role differs from the contract.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoleDrift {
    /// An attribute is not as specified (`attribute` is the keyword to set, e.g. `NOLOGIN`).
    Attribute { role: String, attribute: String },
    /// A membership the contract gives is missing.
    MissingMembership { group: String, member: String },
    /// A member the contract does not give.
    UnexpectedMember {
        group: String,
        member: String,
        #[serde(skip)]
        grantor: Option<String>,
    },
    /// A contract function owned by another role than the contract's.
    FunctionOwner {
        function: String,
        owner: String,
        wanted: String,
    },
}

impl RoleDrift {
    pub fn describe(&self) -> String {
        match self {
            Self::Attribute { role, attribute } => format!("role {role} is not {attribute}"),
            Self::MissingMembership { group, member } => format!("role {member} is not a member of {group}"),
            Self::UnexpectedMember { group, member, .. } => {
                format!("role {member} is a member of {group}, which the contract does not give")
            }
            Self::FunctionOwner {
                function,
                owner,
                wanted,
            } => format!("function {function} is owned by {owner}, not {wanted}"),
        }
    }

    /// What `apply` reports after establishing it.
    pub fn fixed(&self) -> String {
        match self {
            Self::Attribute { role, attribute } => format!("role {role}: set {attribute}"),
            Self::MissingMembership { group, member } => {
                format!("role {member}: granted membership in {group}")
            }
            Self::UnexpectedMember { group, member, .. } => format!(
                "warning: role {group}: revoked the membership of {member} (not in the contract; \
                 a member of {group} can act as it)"
            ),
            Self::FunctionOwner {
                function,
                owner,
                wanted,
            } => format!(
                "warning: function {function}: owner reset from {owner} to {wanted} (its owner can \
                 redefine it, and a SECURITY DEFINER function runs with its owner's rights)"
            ),
        }
    }
}

/// Every difference between the live contract roles and [`ROLES`]. Roles
/// that do not exist yet are not reported here (`check` reports them).
pub async fn inspect(client: &Client) -> Result<Vec<RoleDrift>, BootstrapError> {
    let names: Vec<String> = ROLES.iter().map(|r| r.name.to_string()).collect();
    let rows = client
        .query_typed(
            "SELECT rolname::text, rolsuper, rolcanlogin, rolinherit, rolcreatedb, rolcreaterole,
                    rolreplication, rolbypassrls
             FROM pg_catalog.pg_roles WHERE rolname = ANY($1)",
            &[(&names, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(query_err("reading the contract's roles"))?;
    let mut live: BTreeMap<String, [bool; 7]> = BTreeMap::new();
    for r in rows {
        live.insert(
            r.get(0),
            [
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            ],
        );
    }
    let members = client
        .query_typed(
            "SELECT g.rolname::text, m.rolname::text, gr.rolname::text
             FROM pg_catalog.pg_auth_members am
             JOIN pg_catalog.pg_roles g ON g.oid = am.roleid
             JOIN pg_catalog.pg_roles m ON m.oid = am.member
             LEFT JOIN pg_catalog.pg_roles gr ON gr.oid = am.grantor
             WHERE g.rolname = ANY($1) OR m.rolname = ANY($1)
             ORDER BY 1, 2",
            &[(&names, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(query_err("reading the contract roles' memberships"))?;
    let pairs: Vec<(String, String, Option<String>)> = members
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut out = Vec::new();
    for spec in ROLES {
        let Some(attrs) = live.get(spec.name) else {
            continue;
        };
        if spec.owned() {
            for ((kw, _, want), have) in spec.attributes().iter().zip(attrs) {
                if want != have {
                    out.push(RoleDrift::Attribute {
                        role: spec.name.into(),
                        attribute: format!("{}{kw}", if *want { "" } else { "NO" }),
                    });
                }
            }
        }
        for group in spec.member_of {
            if !pairs.iter().any(|(g, m, _)| g == group && m == spec.name) {
                out.push(RoleDrift::MissingMembership {
                    group: group.to_string(),
                    member: spec.name.into(),
                });
            }
        }
        if spec.owned() {
            let expected = expected_members(spec.name);
            for (g, m, grantor) in &pairs {
                // postgres is Patroni's superuser: a membership gives it
                // nothing it lacks (Supabase's image grants it
                // supabase_auth_admin and supabase_storage_admin).
                if g == spec.name && m != "postgres" && !expected.contains(&m.as_str()) {
                    out.push(RoleDrift::UnexpectedMember {
                        group: g.clone(),
                        member: m.clone(),
                        grantor: grantor.clone(),
                    });
                }
            }
        }
    }
    out.extend(
        function_owners(client)
            .await?
            .into_iter()
            .filter(|o| o.owner != o.wanted)
            .map(|o| RoleDrift::FunctionOwner {
                function: o.function,
                owner: o.owner,
                wanted: o.wanted,
            }),
    );
    Ok(out)
}

fn ident(s: &str) -> String {
    postgres_protocol::escape::escape_identifier(s)
}

/// Establish the contract roles (one transaction, each change recorded as
/// an event in the ledger). Returns what was changed.
pub async fn establish(
    client: &mut Client,
    server_version_num: i32,
) -> Result<Vec<RoleDrift>, BootstrapError> {
    let drift = inspect(client).await?;
    if drift.is_empty() {
        return Ok(drift);
    }
    let what = "establishing the contract's roles";
    let tx = client.transaction().await.map_err(query_err(what))?;
    for d in &drift {
        let (sql, kind, subject) = match d {
            RoleDrift::Attribute { role, attribute } => (
                format!("ALTER ROLE {} {attribute}", ident(role)),
                "role_attribute",
                role.clone(),
            ),
            RoleDrift::MissingMembership { group, member } => (
                format!("GRANT {} TO {}", ident(group), ident(member)),
                "membership_granted",
                group.clone(),
            ),
            RoleDrift::FunctionOwner { function, wanted, .. } => (
                // The signature comes from FUNCTIONS (a constant), the role
                // from the catalog: quoted.
                format!("ALTER FUNCTION {function} OWNER TO {}", ident(wanted)),
                "function_owner_reset",
                function.clone(),
            ),
            RoleDrift::UnexpectedMember {
                group,
                member,
                grantor,
            } => {
                // From PostgreSQL 16 a membership is one grant per grantor:
                // revoke the one that exists, whoever made it.
                let by = match grantor {
                    Some(g) if server_version_num >= 160000 => format!(" GRANTED BY {} CASCADE", ident(g)),
                    _ => String::new(),
                };
                (
                    format!("REVOKE {} FROM {}{by}", ident(group), ident(member)),
                    "membership_revoked",
                    group.clone(),
                )
            }
        };
        tx.batch_execute(&sql)
            .await
            .map_err(query_err(format!("{what} ({sql})")))?;
        ledger::record_event(&tx, kind, &subject, &d.fixed())
            .await
            .map_err(query_err(what))?;
    }
    tx.commit().await.map_err(query_err(what))?;
    Ok(drift)
}

/// The functions the contract defines, by signature (`graphql_public.graphql`
/// is not among them: pg_graphql replaces it by design).
pub const FUNCTIONS: &[&str] = &[
    "auth.uid()",
    "auth.role()",
    "auth.email()",
    "auth.jwt()",
    "storage.foldername(text)",
    "storage.filename(text)",
    "storage.extension(text)",
    "storage.search(text,text,integer,integer,integer)",
    "extensions.grant_pg_cron_access()",
    "extensions.grant_pg_net_access()",
    "extensions.grant_pg_graphql_access()",
    "extensions.install_graphql_placeholder()",
    "extensions.set_graphql_placeholder()",
    "extensions.pgrst_ddl_watch()",
    "extensions.pgrst_drop_watch()",
    "pgbouncer.get_auth(text)",
    "extensions.pgha_grant_extension_access(text)",
];

/// The owner a contract function must have, when its migration gives it one
/// (`ALTER FUNCTION … OWNER TO`); the others belong to the superuser that
/// ran the migrations, which is the owner of the ledger's schema.
const FUNCTION_OWNER: &[(&str, &str)] = &[
    ("auth.uid()", "supabase_auth_admin"),
    ("auth.role()", "supabase_auth_admin"),
    ("auth.email()", "supabase_auth_admin"),
    ("auth.jwt()", "supabase_auth_admin"),
    ("storage.foldername(text)", "supabase_storage_admin"),
    ("storage.filename(text)", "supabase_storage_admin"),
    ("storage.extension(text)", "supabase_storage_admin"),
    (
        "storage.search(text,text,integer,integer,integer)",
        "supabase_storage_admin",
    ),
    ("pgbouncer.get_auth(text)", "postgres"),
];

/// One existing contract function's owner and the owner it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionOwner {
    pub function: String,
    pub owner: String,
    pub wanted: String,
}

/// The owner of each existing contract function, next to the contract's
/// (nothing before the ledger exists: then there is no contract yet).
pub async fn function_owners(client: &Client) -> Result<Vec<FunctionOwner>, BootstrapError> {
    let sigs: Vec<String> = FUNCTIONS.iter().map(|s| s.to_string()).collect();
    let wanted: Vec<Option<String>> = FUNCTIONS
        .iter()
        .map(|f| {
            FUNCTION_OWNER
                .iter()
                .find(|(sig, _)| sig == f)
                .map(|(_, o)| o.to_string())
        })
        .collect();
    let rows = client
        .query_typed(
            "SELECT f.sig, pg_catalog.pg_get_userbyid(p.proowner)::text,
                    coalesce(f.owner, (SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text
                                       FROM pg_catalog.pg_namespace n WHERE n.nspname = $3))
             FROM unnest($1::text[], $2::text[]) AS f(sig, owner)
             JOIN pg_catalog.pg_proc p ON p.oid = to_regprocedure(f.sig)
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $3)
             ORDER BY 1",
            &[
                (&sigs, Type::TEXT_ARRAY),
                (&wanted, Type::TEXT_ARRAY),
                (&ledger::SCHEMA, Type::TEXT),
            ],
        )
        .await
        .map_err(query_err("reading the owners of the contract's functions"))?;
    Ok(rows
        .into_iter()
        .map(|r| FunctionOwner {
            function: r.get(0),
            owner: r.get(1),
            wanted: r.get(2),
        })
        .collect())
}

/// The SHA-256 of each existing contract function's definition: its body,
/// SECURITY DEFINER and per-function settings (e.g. search_path).
pub async fn function_digests(client: &Client) -> Result<BTreeMap<String, String>, BootstrapError> {
    let sigs: Vec<String> = FUNCTIONS.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query_typed(
            "SELECT f.sig, encode(sha256(convert_to(p.prosrc || E'\\n' || p.prosecdef::text || E'\\n'
                      || coalesce(array_to_string(p.proconfig, E'\\n'), ''), 'UTF8')), 'hex')
             FROM unnest($1::text[]) AS f(sig)
             JOIN pg_catalog.pg_proc p ON p.oid = to_regprocedure(f.sig)",
            &[(&sigs, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(query_err("reading the contract's functions"))?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Functions whose definition differs from the one the ledger records,
/// described for a message.
pub fn changed_functions(current: &BTreeMap<String, String>, ledger: &Ledger) -> Vec<String> {
    ledger
        .functions
        .iter()
        .filter_map(|row| match current.get(&row.signature) {
            Some(now) if now != &row.sha256 => Some(format!(
                "{} (recorded sha256 {}, now {})",
                row.signature,
                &row.sha256[..12.min(row.sha256.len())],
                &now[..12.min(now.len())]
            )),
            _ => None,
        })
        .collect()
}

/// Record the digests: all of them after the bootstrap's own migrations ran
/// (`all`), else those not recorded yet (a ledger from an older version).
pub async fn record_functions(
    client: &Client,
    current: &BTreeMap<String, String>,
    ledger: &Ledger,
    all: bool,
    source: &str,
) -> Result<usize, BootstrapError> {
    let mut n = 0;
    for (sig, digest) in current {
        let recorded = ledger.function(sig).map(|r| r.sha256.as_str());
        if recorded == Some(digest.as_str()) || (!all && recorded.is_some()) {
            continue;
        }
        ledger::record_function(client, sig, digest, source)
            .await
            .map_err(query_err("recording the contract's functions"))?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_members_follow_the_table() {
        assert_eq!(expected_members("anon"), ["postgres", "authenticator"]);
        assert_eq!(expected_members("authenticator"), ["supabase_storage_admin"]);
        assert!(expected_members("supabase_admin").is_empty());
        assert!(ROLES.iter().filter(|r| !r.owned()).count() == 1);
    }

    #[test]
    fn every_explicit_function_owner_names_a_contract_function() {
        for (sig, _) in FUNCTION_OWNER {
            assert!(FUNCTIONS.contains(sig), "{sig}");
        }
    }
}
